"""SAMAdapter: the paper's per-token embedding projection, and a trained
model can be deep-copied."""
import copy
import pickle

import torch

from helpers import build_tiny_model, fake_batch


def _model(tiny_sam_file, **kwargs):
    torch.manual_seed(0)
    return build_tiny_model(tiny_sam_file[0],
                            dict(type='SAMAdapter', scale_factor=4, **kwargs))


def test_embedding_feature_projects_each_patch_token(tiny_sam_file):
    """``F_pe[b, y, x] = W_e t[b, y, x] + b_e`` with ``t`` the patch
    embedding (before the position embedding) of patch (y, x), and every
    block's prompt is ``W_s GELU(W_i f + b_i) + b_s`` of the same token."""
    model = _model(tiny_sam_file, handcrafted_tune=False).eval()
    adapter = model.backbone.adapters[0]
    encoder = model.backbone.encoder
    x, _ = fake_batch(2)
    with torch.no_grad():
        model.backbone(x)
        feature = adapter._feature
        tokens = encoder.patch_embed(x)  # (B, h, w, C)
    B, h, w, C = tokens.shape
    W_e = adapter.embedding_generator.weight
    b_e = adapter.embedding_generator.bias
    for b, yy, xx in ((0, 0, 0), (1, h - 1, 2), (1, 3, w - 1)):
        expected = W_e @ tokens[b, yy, xx] + b_e
        torch.testing.assert_close(
            feature[b, yy, xx], expected, atol=1e-5, rtol=1e-5)
    # the projection does not mix patches: changing one patch's token
    # changes only that patch's feature
    with torch.no_grad():
        other = tokens.clone()
        other[0, 1, 1] += 1.0
        moved = adapter.embedding_generator(other) - \
            adapter.embedding_generator(tokens)
    changed = moved.abs().sum(-1) > 0
    assert changed.sum() == 1 and changed[0, 1, 1]
    # block 1's input is block 0's output plus its prompt
    # P_1 = W_s GELU(W_1 f + b_1) + b_s, token by token
    seen = {}
    h0 = encoder.blocks[0].register_forward_hook(
        lambda m, args, out: seen.setdefault('out0', out.clone()))
    h1 = encoder.blocks[1].register_forward_pre_hook(
        lambda m, args: seen.setdefault('in1', args[0].clone()))
    with torch.no_grad():
        model.backbone(x)
    h0.remove()
    h1.remove()
    prompt = seen['in1'] - seen['out0']
    lin = adapter.lightweight_mlps[1][0]
    shared = adapter.shared_mlp
    for b, yy, xx in ((0, 0, 0), (1, h - 1, 2)):
        f = feature[b, yy, xx]
        hidden = torch.nn.functional.gelu(lin.weight @ f + lin.bias)
        expected = shared.weight @ hidden + shared.bias
        torch.testing.assert_close(
            prompt[b, yy, xx], expected, atol=1e-4, rtol=1e-4)


def test_trained_model_can_be_deep_copied_and_pickled(tiny_sam_file):
    model = _model(tiny_sam_file)
    model.train()
    x, samples = fake_batch(2)
    losses = model.loss(x, samples)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    adapter = model.backbone.adapters[0]
    assert adapter._feature.grad_fn is not None  # kept for with_cp

    clone = copy.deepcopy(model)
    assert clone.backbone.adapters[0]._feature is None
    pickle.loads(pickle.dumps(model))  # the same state is pickled

    kept = adapter._feature
    model.eval()
    clone.eval()
    x2, _ = fake_batch(1, seed=5)
    with torch.no_grad():
        a = model.backbone(x2)[0]
        kept_after_original = adapter._feature
        b = clone.backbone(x2)[0]
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the clone's hooks act on the clone: running it leaves the original's
    # feature alone
    assert adapter._feature is kept_after_original
    assert kept_after_original is not kept
    assert clone.backbone.adapters[0]._feature is not None
