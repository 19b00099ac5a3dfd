"""The private mmengine API the package uses, all of it in
``mmseg_convlora/engine/mmengine_private.py``, still is what that module
expects. Pinned to the supported mmengine version: a new release fails the
first test, and the others show what changed."""
import inspect
import os.path as osp

import mmengine
import pytest
import torch
from mmengine.logging import HistoryBuffer

import mmseg_convlora
from mmseg_convlora.engine import mmengine_private as private
from mmseg_convlora.engine.optimizers import CPUAmpOptimWrapper

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


def test_checkpoint_hook_order_that_safe_checkpoint_hook_relies_on():
    """mmengine deletes the oldest kept checkpoint before saving the new one
    (SafeCheckpointHook gives it one more to keep), writes the pointer after
    the save, and removes the previous best through ``best_ckpt_path``."""
    from mmengine.hooks import CheckpointHook
    src = inspect.getsource(CheckpointHook._save_checkpoint_with_step)
    assert src.index('self.keep_ckpt_ids.popleft()') < src.index(
        'runner.save_checkpoint(') < src.index("'last_checkpoint'")
    assert 'len(self.keep_ckpt_ids) == self.max_keep_ckpts' in src
    best = inspect.getsource(CheckpointHook._save_best_checkpoint)
    assert 'best_ckpt_path = self.best_ckpt_path' in best


def test_amp_optim_wrapper_reads_its_private_scale_update():
    assert 'self.loss_scaler.update(self._scale_update_param)' in \
        inspect.getsource(mmengine.optim.AmpOptimWrapper.step)
    wrapper = CPUAmpOptimWrapper(
        optimizer=torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=1),
        loss_scale=4.0)
    assert wrapper._scale_update_param == 4.0


def test_no_private_mmengine_use_outside_the_module():
    """Only mmengine_private.py imports mmengine's underscore names or
    touches the runner's/hooks' private attributes."""
    import re
    pattern = re.compile(
        r'from mmengine[\w.]* import .*\b_[a-z]|runner\._[a-z]|'
        r'\._(save_checkpoint_with_step|clip_grad|scale_update_param|'
        r'randomness_cfg|load_from|resume|log_env)\b')
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
