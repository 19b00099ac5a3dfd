"""GTPromptSampler: boxes and points drawn from ground-truth masks."""
import pytest
import torch
from mmseg.registry import TASK_UTILS
from segment_anything.utils.amg import batched_mask_to_box

from mmseg_convlora.models.heads import GTPromptSampler


def blobs(n=8, h=40, w=64, seed=0):
    """Random masks of 1-3 rectangles each, with an ignored band."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    for mask in masks:
        for _ in range(int(torch.randint(1, 4, (), generator=g))):
            y0, y1 = sorted(torch.randint(0, h, (2, ), generator=g).tolist())
            x0, x1 = sorted(torch.randint(0, w, (2, ), generator=g).tolist())
            mask[y0:y1 + 1, x0:x1 + 1] = True
    valid = torch.ones_like(masks)
    valid[:, :, :3] = False  # e.g. padding
    return masks, valid


def test_builds_from_the_registry():
    sampler = TASK_UTILS.build(dict(type='GTPromptSampler', prob=0.3))
    assert isinstance(sampler, GTPromptSampler) and sampler.prob == 0.3


@pytest.mark.parametrize('kwargs', [
    dict(prob=1.5),
    dict(box_prob=-0.1),
    dict(max_points=0),
    dict(box_noise_std=-1)
])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match='GTPromptSampler'):
        GTPromptSampler(**kwargs)


def test_box_without_noise_is_sams_tight_box():
    masks, valid = blobs()
    sampler = GTPromptSampler(prob=1, box_prob=1, box_noise_std=0)
    boxes = torch.stack([p['boxes'] for p in sampler(masks, valid)])
    expected = batched_mask_to_box(masks & valid).float()
    torch.testing.assert_close(boxes, expected, rtol=0, atol=0)


def test_x_comes_first():
    """A single pixel at row 2, column 7: the box and the point are
    (x=7, y=2), SAM's order."""
    mask = torch.zeros(1, 5, 10, dtype=torch.bool)
    mask[0, 2, 7] = True
    valid = torch.ones_like(mask)
    box = GTPromptSampler(prob=1, box_prob=1)(mask, valid)[0]['boxes']
    assert box.tolist() == [7.0, 2.0, 7.0, 2.0]  # no side: no noise
    points = GTPromptSampler(prob=1, box_prob=0, max_points=1)(mask, valid)[0]
    assert points['point_coords'].tolist() == [[7.0, 2.0]]
    assert points['point_labels'].tolist() == [1]


def test_box_noise_is_bounded_clipped_and_scaled_by_side():
    torch.manual_seed(0)
    h, w = 40, 64
    limit = 20 * w / 1024  # 1.25 px at 64 px
    masks, valid = blobs(n=64, h=h, w=w)
    tight = batched_mask_to_box(masks & valid).float()
    sampler = GTPromptSampler(prob=1, box_prob=1)
    moved = 0
    for _ in range(5):
        boxes = torch.stack([p['boxes'] for p in sampler(masks, valid)])
        assert ((boxes - tight).abs() <= limit + 1e-6).all()
        assert (boxes[:, 0] <= boxes[:, 2]).all()
        assert (boxes[:, 1] <= boxes[:, 3]).all()
        assert (boxes >= 0).all() and (boxes[:, 0::2] <= w - 1).all()
        assert (boxes[:, 1::2] <= h - 1).all()
        moved += int((boxes != tight).any(1).sum())
    assert moved > 0
    # a one-column mask has width 0: its x coordinates stay, y ones move
    mask = torch.zeros(1, h, w, dtype=torch.bool)
    mask[0, 5:35, 30] = True
    box = GTPromptSampler(
        prob=1, box_prob=1, box_noise_std=1)(mask, mask | True)[0]['boxes']
    assert box[0] == box[2] == 30
    assert box[1] != 5 and box[3] != 34


def test_large_noise_saturates_at_the_limit():
    """std of 10^4 box sides: every coordinate moves by exactly the limit
    (20 px at 1024 = 5 px at 256), then is clipped to the image."""
    torch.manual_seed(0)
    mask = torch.zeros(2, 256, 256, dtype=torch.bool)
    mask[0, 100:150, 60:200] = True
    mask[1, 0:30, 240:256] = True  # touches the top and right borders
    sampler = GTPromptSampler(prob=1, box_prob=1, box_noise_std=1e4)
    for _ in range(10):
        a, b = (p['boxes'] for p in sampler(mask, torch.ones_like(mask)))
        assert ((a - torch.tensor([60., 100., 199., 149.])).abs() == 5).all()
        assert b[1] in (0., 5.) and b[2] in (250., 255.)
        assert b[0] in (235., 245.) and b[3] in (24., 34.)


def test_points_lie_on_their_class():
    torch.manual_seed(0)
    masks, valid = blobs(n=32)
    masks[0] = valid[0]  # no background: foreground points only
    sampler = GTPromptSampler(prob=1, box_prob=0, max_points=5)
    counts, labels_seen = set(), set()
    for _ in range(5):
        for i, p in enumerate(sampler(masks, valid)):
            xy, labels = p['point_coords'], p['point_labels']
            x, y = xy[:, 0].long(), xy[:, 1].long()
            assert (xy == xy.round()).all() and labels[0] == 1
            on_mask = masks[i, y, x] & valid[i, y, x]
            off_mask = ~masks[i, y, x] & valid[i, y, x]
            assert (on_mask == (labels == 1)).all()
            assert (off_mask == (labels == 0)).all()
            if i == 0:
                assert (labels == 1).all()
            counts.add(len(labels))
            labels_seen.update(labels.tolist())
    assert counts == {1, 2, 3, 4, 5} and labels_seen == {0, 1}


def test_empty_or_ignored_masks_get_no_prompt():
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[1, 2:4, 2:4] = True
    masks[2, 0:2, 0:2] = True  # only on ignored pixels
    valid = torch.ones_like(masks)
    valid[2, 0:2, 0:2] = False
    prompts = GTPromptSampler(prob=1)(masks, valid)
    assert prompts[0] is None and prompts[2] is None
    assert prompts[1] is not None


def test_probability_and_seed():
    masks, valid = blobs(n=400)
    torch.manual_seed(3)
    first = GTPromptSampler(prob=0.25)(masks, valid)
    torch.manual_seed(3)
    again = GTPromptSampler(prob=0.25)(masks, valid)
    assert [p is None for p in first] == [p is None for p in again]
    for p, q in zip(first, again):
        if p is not None:
            assert p.keys() == q.keys()
            assert all(torch.equal(p[k], q[k]) for k in p)
    share = sum(p is not None for p in first) / len(first)
    assert 0.15 < share < 0.35
    assert all(p is None for p in GTPromptSampler(prob=0)(masks, valid))
