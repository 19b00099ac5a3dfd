"""A NaN loss (or gradient) stops training naming the iteration and the
loss term, or skips that step when configured, and never reaches the
weights; weights that blow up on a finite loss stop training in both modes
before they are saved."""
import copy
import os.path as osp
import types
import uuid

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmseg.registry import MODELS

from mmseg_convlora.engine.hooks import (FiniteGradientCheck,
                                         NonFiniteLossError, NonFiniteLossHook)
from helpers import demo_config

pytestmark = pytest.mark.slow


@MODELS.register_module(force=True)
class PoisonedLoss(nn.Module):
    """Squared error on the probabilities; NaN on the calls listed (still
    connected to the graph, so its gradients are NaN too)."""

    def __init__(self,
                 nan_on_calls=(2, ),
                 nan_grad_on_calls=(),
                 loss_name='loss_poison'):
        super().__init__()
        self.nan_on_calls = tuple(nan_on_calls)
        self.nan_grad_on_calls = tuple(nan_grad_on_calls)
        self.calls = 0
        self._loss_name = loss_name

    def forward(self, pred, target, ignore_index=255, **kwargs):
        self.calls += 1
        valid = (target != ignore_index).float()
        loss = ((pred.squeeze(1).sigmoid() - target.clamp(max=1).float())**2 *
                valid).sum() / valid.sum().clamp(min=1)
        if self.calls in self.nan_on_calls:
            loss = loss * float('nan')
        if self.calls in self.nan_grad_on_calls:
            # value 0, gradient 0 * inf = NaN (sqrt at 0 after abs at 0)
            loss = loss + (pred * 0).abs().sqrt().sum()
        return loss

    @property
    def loss_name(self):
        return self._loss_name


class Snapshots(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.params = {}

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        self.params[runner.iter + 1] = _trainable(runner.model)


def _trainable(model):
    return {
        n: p.detach().clone()
        for n, p in model.named_parameters() if p.requires_grad
    }


def make_runner(demo_data,
                work_dir,
                action,
                max_iters=3,
                guard=True,
                ckpt_interval=100,
                amp=False,
                **loss):
    cfg = demo_config(demo_data, work_dir, **{'model.backbone.adapter': None})
    if amp:
        cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
        cfg.optim_wrapper.dtype = 'float16'  # dynamic loss scaling
    cfg.model.decode_head.loss_decode = dict(type='PoisonedLoss', **loss)
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=max_iters, val_interval=100)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(
        type='SafeCheckpointHook', interval=ckpt_interval, by_epoch=False)
    cfg.log_processor = dict(by_epoch=False)
    hooks = [h for h in cfg.custom_hooks if h['type'] != 'NonFiniteLossHook']
    if guard:
        hooks.append(dict(type='NonFiniteLossHook', action=action))
    cfg.custom_hooks = hooks
    # own visualizer instance (see tests/engine/test_exact_resume.py)
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    runner = Runner.from_cfg(cfg)
    snaps = Snapshots()
    runner.register_hook(snaps)
    return runner, snaps


@pytest.mark.parametrize('amp', [False, True])
def test_nan_loss_stops_training_naming_iteration_and_term(
        demo_data, tmp_path, amp):
    """Without AMP the gradient check drops the step, with AMP the loss
    scaler skips it; either way training stops naming the loss term."""
    runner, snaps = make_runner(
        demo_data, str(tmp_path / 'w'), 'raise', amp=amp)
    with pytest.raises(NonFiniteLossError) as err:
        runner.train()
    msg = str(err.value)
    assert 'iteration 2' in msg and 'decode.loss_poison' in msg
    assert 'nan' in msg and 'not updated' in msg and '.jpg' in msg
    assert '--nonfinite skip' in msg
    # the weights are those after iteration 1, all finite
    now = _trainable(runner.model)
    assert list(snaps.params) == [1]
    for name, value in now.items():
        assert torch.isfinite(value).all(), name
        assert torch.equal(value, snaps.params[1][name]), name


def test_nan_loss_skipped_when_configured(demo_data, tmp_path):
    runner, snaps = make_runner(
        demo_data, str(tmp_path / 'w'), 'skip', max_iters=4)
    runner.train()  # completes
    hook = next(h for h in runner.hooks if isinstance(h, NonFiniteLossHook))
    assert hook.skipped_iters == [2]
    for name in snaps.params[1]:
        # iteration 2 did not move the weights, iteration 3 did
        assert torch.equal(snaps.params[2][name], snaps.params[1][name])
        assert torch.isfinite(snaps.params[4][name]).all(), name
    assert any(not torch.equal(snaps.params[3][n], snaps.params[2][n])
               for n in snaps.params[1])
    for state in runner.optim_wrapper.optimizer.state.values():
        for value in state.values():
            assert torch.isfinite(torch.as_tensor(value)).all()


def test_without_the_guard_the_nan_corrupts_the_weights(demo_data, tmp_path):
    # the injected NaN is real: unguarded, it reaches every weight
    runner, snaps = make_runner(
        demo_data, str(tmp_path / 'w'), 'raise', max_iters=2, guard=False)
    runner.train()
    assert any(not torch.isfinite(v).all() for v in snaps.params[2].values())


def test_skip_mode_gives_up_when_every_step_is_non_finite(demo_data, tmp_path):
    runner, _ = make_runner(
        demo_data, str(tmp_path / 'w'), 'skip', max_iters=4)
    hook = next(h for h in runner.hooks if isinstance(h, NonFiniteLossHook))
    hook.max_consecutive_skips = 1
    runner.model.decode_head.loss_decode.nan_on_calls = (2, 3)
    with pytest.raises(NonFiniteLossError, match='2 iterations in a row'):
        runner.train()


def test_nan_gradient_of_a_finite_loss_stops_before_the_step(
        demo_data, tmp_path):
    runner, snaps = make_runner(
        demo_data,
        str(tmp_path / 'w'),
        'raise',
        nan_on_calls=(),
        nan_grad_on_calls=(2, ))
    with pytest.raises(NonFiniteLossError) as err:
        runner.train()
    msg = str(err.value)
    assert 'Non-finite gradient at iteration 2' in msg
    assert 'not updated' in msg
    for name, value in _trainable(runner.model).items():
        assert torch.equal(value, snaps.params[1][name]), name


class LearningRateBlowUp(Hook):
    """Sets a learning rate of 1e6 from iteration ``at_iter + 1`` on: a
    finite loss, and weights that jump far."""

    def __init__(self, at_iter):
        self.at_iter = at_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.at_iter:
            for group in runner.optim_wrapper.optimizer.param_groups:
                group['lr'] = 1e6


@pytest.mark.parametrize('action', ['raise', 'skip'])
def test_weights_that_blow_up_stop_training_before_they_are_saved(
        demo_data, tmp_path, action):
    work = str(tmp_path / 'w')
    runner, _ = make_runner(
        demo_data, work, action, max_iters=4, ckpt_interval=1, nan_on_calls=())
    runner.register_hook(LearningRateBlowUp(at_iter=1))
    with pytest.raises(NonFiniteLossError) as err:
        runner.train()
    msg = str(err.value)
    assert 'diverged at iteration 2' in msg
    assert f'last good checkpoint is {osp.join(work, "iter_1.pth")}' in msg
    # the good checkpoint stays the latest; the diverged state is not saved
    assert not osp.exists(osp.join(work, 'iter_2.pth'))
    assert open(osp.join(work, 'last_checkpoint')).read() == 'iter_1.pth'
    ckpt = torch.load(osp.join(work, 'iter_1.pth'), weights_only=True)
    for name, value in ckpt['state_dict'].items():
        assert value.abs().max() < 1e3, name


def test_checkpoint_of_non_finite_weights_is_refused(tiny_sam_file):
    from helpers import build_tiny_model
    model = build_tiny_model(tiny_sam_file[0])
    runner = types.SimpleNamespace(
        model=model, iter=7, logger=MMLogger.get_current_instance())
    hook = NonFiniteLossHook()
    hook.before_save_checkpoint(runner, {})  # finite: fine
    with torch.no_grad():
        next(p for p in model.parameters()
             if p.requires_grad).fill_(float('inf'))
    with pytest.raises(NonFiniteLossError, match='Refusing to save'):
        hook.before_save_checkpoint(runner, {})


def test_gradient_check_drops_non_finite_gradients():
    w = nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([w], lr=0.1)
    check = FiniteGradientCheck()
    opt.register_step_pre_hook(check)
    w.grad = torch.tensor([1.0, float('inf'), 0.0])
    opt.step()
    assert not check.stepped and check.dropped == float('inf')
    assert torch.equal(w.detach(), torch.ones(3)) and not opt.state
    w.grad = torch.ones(3)
    opt.step()
    assert check.stepped and (w.detach() < 1).all()


def test_bad_action_refused():
    with pytest.raises(ValueError, match='raise.*skip'):
        NonFiniteLossHook(action='ignore')
    assert copy.deepcopy(NonFiniteLossHook()).action == 'raise'
