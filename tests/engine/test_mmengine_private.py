"""The private mmengine API the package uses, all of it in
``mmseg_convlora/engine/mmengine_private.py``, still is what that module
expects. Pinned to the supported mmengine version: a new release fails the
first test, and the others show what changed."""
import inspect
import os.path as osp

import mmengine
import pytest
import torch
from mmengine.hooks import CheckpointHook
from mmengine.logging import HistoryBuffer
from mmengine.optim import OptimWrapper as MMEngineOptimWrapper

import mmseg_convlora
from mmseg_convlora.engine import mmengine_private as private
from mmseg_convlora.engine.optimizers import AmpOptimWrapper, OptimWrapper

PACKAGE = osp.dirname(mmseg_convlora.__file__)


def test_mmengine_is_a_supported_version():
    assert mmengine.__version__ in private.SUPPORTED_MMENGINE, (
        f'mmengine {mmengine.__version__} is not among the versions '
        f'{private.SUPPORTED_MMENGINE} whose private API '
        'mmseg_convlora/engine/mmengine_private.py was checked against; '
        'check every entry there and this test, then add the version.')


def test_runner_private_attributes(demo_runner_factory):
    runner = demo_runner_factory(
        resume=True,
        load_from='some/ckpt.pth',
        randomness=dict(seed=3, diff_rank_seed=True))
    assert private.randomness_cfg(runner) == dict(seed=3, diff_rank_seed=True)
    assert private.resume_request(runner) == (True, 'some/ckpt.pth')
    private.set_resume_checkpoint(runner, 'other.pth')
    assert private.resume_request(runner) == (True, 'other.pth')


def test_mean_losses_matches_the_val_loop():
    losses = dict(
        loss_a=HistoryBuffer(), loss_b=HistoryBuffer(), acc=HistoryBuffer())
    for a, b in ((1.0, 4.0), (3.0, 6.0)):
        losses['loss_a'].update(a)
        losses['loss_b'].update(b)
        losses['acc'].update(0.5)
    out = private.mean_losses(losses, 'val')
    assert out == dict(loss_a=2.0, loss_b=5.0, acc=0.5, val_loss=7.0)


def test_checkpoint_hook_calls_its_private_save_step():
    """mmengine's hook saves regular checkpoints (and re-saves after a new
    best one) through ``_save_checkpoint_with_step``."""
    for name in ('_save_checkpoint', '_save_best_checkpoint'):
        assert '_save_checkpoint_with_step(' in inspect.getsource(
            getattr(CheckpointHook, name)), name
    params = list(
        inspect.signature(
            CheckpointHook._save_checkpoint_with_step).parameters)
    assert params == ['self', 'runner', 'step', 'meta']
    # the best checkpoint removes the previous one through the attribute
    # SafeCheckpointHook clears while it saves
    src = inspect.getsource(CheckpointHook._save_best_checkpoint)
    assert 'best_ckpt_path = self.best_ckpt_path' in src
    assert 'self.file_backend.remove(best_ckpt_path)' in src


def test_optim_wrapper_clips_through_its_private_method():
    for cls in (MMEngineOptimWrapper, mmengine.optim.AmpOptimWrapper):
        assert 'self._clip_grad()' in inspect.getsource(cls.step), cls
    assert '_scale_update_param' in inspect.getsource(
        mmengine.optim.AmpOptimWrapper.step)
    # the seam is in the MRO before mmengine's class
    for cls in (OptimWrapper, AmpOptimWrapper):
        mro = cls.__mro__
        assert mro.index(
            private.ClipGradSeam) < mro.index(MMEngineOptimWrapper)
    param = torch.nn.Parameter(torch.ones(3))
    wrapper = OptimWrapper(
        torch.optim.SGD([param], lr=1.0), clip_grad=dict(max_norm=1.0))
    param.grad = torch.full((3, ), 10.0)
    wrapper.step()
    norm = torch.linalg.vector_norm(torch.full((3, ), 10.0)).item()
    expected = 1 - 10.0 / norm  # clipped to norm 1, lr 1
    assert torch.allclose(param.detach(), torch.full((3, ), expected))


def test_no_private_mmengine_use_outside_the_module():
    """Only mmengine_private.py imports mmengine's underscore names or
    touches the runner's/hooks' private attributes."""
    import re
    pattern = re.compile(
        r'from mmengine[\w.]* import .*\b_[a-z]|runner\._[a-z]|'
        r'\._(save_checkpoint_with_step|clip_grad|scale_update_param|'
        r'randomness_cfg|load_from|resume)\b')
    offenders = []
    for folder, _, files in __import__('os').walk(PACKAGE):
        for name in files:
            path = osp.join(folder, name)
            if not name.endswith('.py') or name == 'mmengine_private.py':
                continue
            for i, line in enumerate(open(path), 1):
                if pattern.search(line):
                    offenders.append(f'{path}:{i}: {line.strip()}')
    assert not offenders, '\n'.join(offenders)


@pytest.fixture
def demo_runner_factory(tmp_path, tiny_sam_file):
    """Builds a Runner (not trained) of the tiny model."""
    from mmengine.runner import Runner

    from helpers import tiny_model_cfg

    def make(**kwargs):
        model = tiny_model_cfg(tiny_sam_file[0])
        return Runner(
            model=model,
            work_dir=str(tmp_path / 'w'),
            default_scope='mmseg',
            **kwargs)

    return make
