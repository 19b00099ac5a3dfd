"""Trainable-parameter counts: the SAM decoder head's formula and a
model's measured parts."""

# SAM's mask decoder (embed dim 256) minus 3 unused mask tokens, 3 unused
# hypernetwork MLPs and the frozen IoU head.
SAM_DECODER_BINARY_TRAINABLE = 3_505_536


def decoder_trainable_formula(num_queries: int = 1,
                              num_classes: int = 1,
                              embed_dim: int = 256) -> int:
    """Trainable parameters of the SAM decoder head (``embed_dim`` 256):
    3,505,536 (binary), plus ``256 (N - 1) + 257 (K + 1)`` for N queries
    and K > 1 classes (K = 1: binary, no classifier)."""
    if embed_dim != 256:
        raise ValueError(
            'The formula is for SAM mask decoders (embed dim 256), got '
            f'embed_dim={embed_dim}.')
    count = SAM_DECODER_BINARY_TRAINABLE + embed_dim * (num_queries - 1)
    if num_classes > 1:
        count += (embed_dim + 1) * (num_classes + 1)
    return count


def trainable_breakdown(model) -> dict:
    """A segmentor's trainable elements per part, 'decoder' (under
    ``decode_head.``), 'backbone/adapters' (under ``backbone.``) or the
    top-level module's name, each shared tensor once, in parameter order."""
    parts = {}
    names = {'decode_head': 'decoder', 'backbone': 'backbone/adapters'}
    for name, param in model.named_parameters():  # each shared tensor once
        if param.requires_grad:
            top = name.split('.')[0]
            key = names.get(top, top)
            parts[key] = parts.get(key, 0) + param.numel()
    return parts
