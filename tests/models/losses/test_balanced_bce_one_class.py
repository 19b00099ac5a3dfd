"""BalancedBCELoss on a batch with one class only (a shadow-free image at
batch size 1): half the plain BCE, not ~0."""
import pytest
import torch
import torch.nn.functional as F

from mmseg_convlora.models.losses import BalancedBCELoss


@pytest.mark.parametrize('label', [0, 1])
def test_one_class_batch_gets_half_the_plain_bce(label):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 1, 6, 7, generator=g, requires_grad=True)
    target = torch.full((1, 6, 7), label, dtype=torch.long)
    target[0, 0, :3] = 255  # ignored pixels stay out
    loss = BalancedBCELoss()(logits, target)
    valid = target[0] != 255
    bce = F.binary_cross_entropy_with_logits(
        logits[0, 0][valid], torch.full((int(valid.sum()), ), float(label)))
    torch.testing.assert_close(loss, 0.5 * bce)
    loss.backward()
    assert logits.grad[0, 0][valid].abs().min() > 0


def test_two_class_batch_keeps_the_balanced_weights():
    logits = torch.tensor([[[[0.3, -1.2], [2.0, 0.1]]]])
    target = torch.tensor([[[1, 0], [0, 0]]])
    p, q = 1.0, 3.0  # foreground / background pixels
    ls = F.logsigmoid
    x = logits[0, 0]
    expected = -(q / (p + q) * ls(x[0, 0]) + p / (p + q) *
                 (ls(-x[0, 1]) + ls(-x[1, 0]) + ls(-x[1, 1]))) / 4
    torch.testing.assert_close(
        BalancedBCELoss()(logits, target), expected, rtol=1e-6, atol=1e-6)
