"""Closed-form trainable-parameter counts of the SAM decoder head, and the
measured per-part counts of a model, for checking and reporting."""

# SAM's mask decoder (embed dim 256) minus 3 unused mask tokens, 3 unused
# hypernetwork MLPs and the frozen IoU head.
SAM_DECODER_BINARY_TRAINABLE = 3_505_536


def decoder_trainable_formula(num_queries: int = 1,
                              num_classes: int = 1,
                              embed_dim: int = 256) -> int:
    """Trainable parameters of the SAM decoder head (embed dim 256).

    Binary: 3,505,536. Multi-class with N mask tokens and K classes adds
    ``256 (N - 1)`` token parameters and the ``Linear(256, K + 1)``
    classifier, ``257 (K + 1)``.

    Args:
        num_queries (int): N (1 in binary mode).
        num_classes (int): K (1 = binary, no classifier).
        embed_dim (int): Must be SAM's 256 for the formula to apply.

    Returns:
        int: The count.
    """
    if embed_dim != 256:
        raise ValueError(
            'The formula is for SAM mask decoders (embed dim 256), got '
            f'embed_dim={embed_dim}.')
    count = SAM_DECODER_BINARY_TRAINABLE + embed_dim * (num_queries - 1)
    if num_classes > 1:
        count += (embed_dim + 1) * (num_classes + 1)
    return count


def trainable_breakdown(model) -> dict:
    """Count a model's trainable parameters per part.

    Parameters under ``decode_head.`` count as ``'decoder'``, those under
    ``backbone.`` (the adapters, prompts and any unfrozen encoder weights)
    as ``'backbone/adapters'``, any other as its top-level module's name.
    A tensor shared by several modules is counted once.

    Args:
        model (nn.Module): The segmentor.

    Returns:
        dict[str, int]: Trainable element count per part, in the order the
        parts first appear in ``model.named_parameters()``.
    """
    parts = {}
    seen = set()
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        if name.startswith('decode_head.'):
            key = 'decoder'
        elif name.startswith('backbone.'):
            key = 'backbone/adapters'
        else:
            key = name.split('.')[0]
        parts[key] = parts.get(key, 0) + param.numel()
    return parts
