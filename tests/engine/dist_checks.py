"""Run with 2 processes on gloo (tests/engine/test_distributed.py):

    python -m torch.distributed.run --nproc_per_node 2 dist_checks.py

1. PyTorch's SyncBatchNorm (the runner's ``sync_bn='torch'``) refuses CPU
   tensors; CPUSyncBatchNorm on each rank's half of a batch equals
   BatchNorm on the whole batch: outputs, input gradients, parameter
   gradients (summed over ranks, as DDP then averages them) and running
   statistics.
2. MaskClassificationLoss normalises by the mean number of GT masks over
   the processes (all-reduced under gloo).
Exits non-zero (AssertionError) on a mismatch; prints OK lines.
"""
import copy
import sys

import torch
import torch.distributed as dist
import torch.nn as nn

import mmseg_convlora  # noqa: F401
from mmseg_convlora.engine.distributed import CPUSyncBatchNorm
from mmseg_convlora.models.losses.mask_classification_loss import \
    MaskClassificationLoss


class pytest_raises:
    """``pytest.raises`` for this script (no pytest in the workers)."""

    def __init__(self, exc, text):
        self.exc, self.text = exc, text

    def __enter__(self):
        return self

    def __exit__(self, typ, value, tb):
        assert typ is not None and issubclass(typ, self.exc) and \
            self.text in str(value), (typ, value)
        return True


def check_sync_bn(rank: int, world: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(4 * world, 5, 6, 7) * 3 + 1
    dy = torch.randn_like(x)
    ref = nn.BatchNorm2d(5)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-1, 1)
    # what the runner's sync_bn='torch' makes, then the DDP wrapper on CPU
    torch_sync = nn.SyncBatchNorm.convert_sync_batchnorm(
        nn.Sequential(copy.deepcopy(ref)))
    with pytest_raises(ValueError, 'expected input tensor to be on GPU'):
        torch_sync.train()(x[:2])
    sync = CPUSyncBatchNorm.convert(torch_sync)[0]
    assert isinstance(sync, CPUSyncBatchNorm)
    xr = x.clone().requires_grad_()
    out_ref = ref(xr)
    (out_ref * dy).sum().backward()

    part = slice(4 * rank, 4 * rank + 4)
    xs = x[part].clone().requires_grad_()
    out = sync(xs)
    (out * dy[part]).sum().backward()
    torch.testing.assert_close(out, out_ref[part], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xs.grad, xr.grad[part], rtol=1e-4, atol=1e-5)
    for name in ('weight', 'bias'):
        g = getattr(sync, name).grad.clone()
        dist.all_reduce(g)
        torch.testing.assert_close(
            g, getattr(ref, name).grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sync.running_mean, ref.running_mean)
    torch.testing.assert_close(sync.running_var, ref.running_var)
    sync.eval()  # eval: no communication, running statistics
    torch.testing.assert_close(sync(x[part]), ref.eval()(x[part]))
    print(f'rank {rank}: CPUSyncBatchNorm OK', flush=True)


def check_mask_loss_normaliser(rank: int, world: int) -> None:
    K, Q = 3, 4
    torch.manual_seed(0)
    cls = torch.randn(1, Q, K + 1)
    masks = torch.randn(1, Q, 16, 16)
    gt = torch.zeros(1, 32, 32, dtype=torch.long)
    gt[:, :16] = 1
    gt[:, 20:, :8] = 2  # rank 0: 3 GT masks (classes 0, 1, 2)
    if rank == 1:
        gt[:] = 255  # rank 1: none at all
    loss = MaskClassificationLoss(num_classes=K)
    # reference: the same loss if this process were alone
    torch.manual_seed(1)
    import mmseg_convlora.models.losses.mask_classification_loss as mcl
    world_size, all_reduce = mcl.get_world_size, mcl.all_reduce
    mcl.get_world_size = lambda: 1
    mcl.all_reduce = lambda t, op='sum': t
    try:
        alone = loss(cls, masks, gt)
    finally:
        mcl.get_world_size, mcl.all_reduce = world_size, all_reduce
    torch.manual_seed(1)
    shared = loss(cls, masks, gt)
    if rank == 0:
        # mean count over 2 processes = 1.5 instead of 3: mask terms x2
        for key in ('loss_mask', 'loss_dice'):
            torch.testing.assert_close(shared[key], 2 * alone[key])
        torch.testing.assert_close(shared['loss_cls'], alone['loss_cls'])
    print(f'rank {rank}: MaskClassificationLoss normaliser OK', flush=True)


def main() -> int:
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == 2, world
    check_sync_bn(rank, world)
    check_mask_loss_normaliser(rank, world)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == '__main__':
    sys.exit(main())
