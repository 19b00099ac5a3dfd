"""Test-only hooks and metric, imported by training subprocesses through
``custom_imports=dict(imports=['fault_hooks'])`` with this folder on
``PYTHONPATH`` (see tests/engine/test_distributed.py and
test_exact_resume.py). Not collected by pytest (no ``test_`` prefix)."""
import fnmatch
import json
import os
import os.path as osp
import signal

import torch
from mmengine.dist import get_rank
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS, METRICS


@HOOKS.register_module()
class SelfKillHook(Hook):
    """SIGKILL this process when iteration ``at_iter + 1`` starts (nothing
    is cleaned up or flushed, as with ``kill -9``)."""

    def __init__(self, at_iter: int):
        self.at_iter = at_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.at_iter:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillDuringWriteHook(Hook):
    """SIGKILL this process half-way through the ``occurrence``-th atomic
    write of a file whose name matches ``name`` (a glob), as a kill while a
    checkpoint is saved."""

    def __init__(self, name: str, occurrence: int = 1):
        self.name, self.left = name, occurrence

    def before_run(self, runner):
        import mmseg_convlora.engine.atomic_files as af
        real = af._write_all

        def write(f, data):
            target = osp.basename(f.name)[1:].split(af.TMP_MARK)[0]
            if fnmatch.fnmatch(target, self.name):
                self.left -= 1
                if self.left == 0:
                    f.write(data[:len(data) // 2])
                    f.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
            real(f, data)

        af._write_all = write


@HOOKS.register_module()
class DumpRankStateHook(Hook):
    """After training, each rank saves its model's full state dict to
    ``out_dir/rank{r}.pth``."""

    priority = 'VERY_LOW'

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        os.makedirs(self.out_dir, exist_ok=True)
        torch.save(
            {
                k: v.detach().cpu().clone()
                for k, v in model.state_dict().items()
            }, osp.join(self.out_dir, f'rank{get_rank()}.pth'))


@METRICS.register_module()
class RecordSamplesMetric(BaseMetric):
    """Reports how many samples (and distinct images) the evaluator saw
    after mmengine gathered the ranks' results, and lists them in
    ``out_file``."""

    def __init__(self, out_file: str, **kwargs):
        super().__init__(**kwargs)
        self.out_file = out_file

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            self.results.append(sample['img_path'])

    def compute_metrics(self, results):
        with open(self.out_file, 'w') as f:
            json.dump(list(results), f)
        return dict(num_samples=len(results), num_unique=len(set(results)))
