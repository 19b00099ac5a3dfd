"""Tiny SAM models in the official checkpoint layout, for tests and the demo.

Official SAM weights cannot be shipped or downloaded everywhere, so tests and
the CPU demo build small SAMs with ``segment_anything``'s own classes and save
their state dicts exactly as the official files are laid out
(``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``). The plugin's
real loading code then reads them.
"""
from functools import partial
from typing import Optional

import torch
import torch.nn as nn
from segment_anything.modeling import (ImageEncoderViT, MaskDecoder,
                                       PromptEncoder, Sam, TwoWayTransformer)

# 128x128 input -> 8x8 patch grid -> four 4x4 windows in windowed blocks.
TINY_ENCODER = dict(
    embed_dim=32,
    depth=2,
    num_heads=2,
    global_attn_indexes=(1, ),
    window_size=4)
TINY_DECODER = dict(depth=2, mlp_dim=64, num_heads=2, iou_head_hidden_dim=32)
TINY_EMBED_DIM = 32
TINY_IMG_SIZE = 128
# A TinyViT in MobileSAM's layout: at 128x128 the attention stages see 16x16
# (7x7 windows, padded to 21x21), 8x8 (one 14x14 window, padded) and 8x8
# (7x7 windows, padded to 14x14) maps.
TINY_TINY_VIT = dict(
    embed_dims=(8, 16, 24, 32),
    depths=(1, 1, 2, 1),
    num_heads=(1, 2, 2, 2),
    window_sizes=(7, 7, 14, 7))


def build_tiny_sam(img_size: int = TINY_IMG_SIZE,
                   encoder: Optional[dict] = None,
                   embed_dim: int = TINY_EMBED_DIM,
                   decoder: Optional[dict] = None,
                   seed: int = 0) -> Sam:
    """Build a small SAM with random (non-zero) weights.

    Position embeddings, which SAM initialises at zero, get random values
    too, so that tests notice when they are dropped or mis-resized.

    Args:
        img_size (int): Square input size.
        encoder (dict): ``embed_dim``, ``depth``, ``num_heads``,
            ``global_attn_indexes``, ``window_size`` of the ViT.
        embed_dim (int): Prompt/decoder dim (SAM: 256).
        decoder (dict): ``depth``, ``mlp_dim``, ``num_heads``,
            ``iou_head_hidden_dim`` of the mask decoder.
        seed (int): Seed of the random weights.

    Returns:
        Sam: The model, in eval mode.
    """
    enc = dict(TINY_ENCODER, **(encoder or {}))
    dec = dict(TINY_DECODER, **(decoder or {}))
    grid = img_size // 16
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=img_size,
                patch_size=16,
                embed_dim=enc['embed_dim'],
                depth=enc['depth'],
                num_heads=enc['num_heads'],
                mlp_ratio=4,
                out_chans=embed_dim,
                qkv_bias=True,
                norm_layer=partial(nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                global_attn_indexes=tuple(enc['global_attn_indexes']),
                window_size=enc['window_size']),
            prompt_encoder=PromptEncoder(
                embed_dim=embed_dim,
                image_embedding_size=(grid, grid),
                input_image_size=(img_size, img_size),
                mask_in_chans=16),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(
                    depth=dec['depth'],
                    embedding_dim=embed_dim,
                    mlp_dim=dec['mlp_dim'],
                    num_heads=dec['num_heads']),
                transformer_dim=embed_dim,
                iou_head_depth=3,
                iou_head_hidden_dim=dec['iou_head_hidden_dim']),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375])
        with torch.no_grad():
            for name, param in sam.image_encoder.named_parameters():
                if name == 'pos_embed' or 'rel_pos' in name:
                    param.normal_(0, 0.02)
    finally:
        torch.random.set_rng_state(gen_state)
    return sam.eval()


def build_tiny_mobile_sam(img_size: int = TINY_IMG_SIZE,
                          encoder: Optional[dict] = None,
                          embed_dim: int = TINY_EMBED_DIM,
                          decoder: Optional[dict] = None,
                          seed: int = 0) -> Sam:
    """A small MobileSAM (TinyViT encoder) with random weights.

    Batch-norm statistics and attention biases, which start as constants,
    get random values too, so that tests notice when they are not loaded or
    when the frozen encoder's batch norms leave eval mode.

    Args:
        img_size (int): Square input size.
        encoder (dict): ``embed_dims``, ``depths``, ``num_heads``,
            ``window_sizes`` of the TinyViT (default :data:`TINY_TINY_VIT`).
        embed_dim (int): Embedding / decoder dim (SAM: 256).
        decoder (dict): Mask decoder sizes (see :func:`build_tiny_sam`).
        seed (int): Seed of the random weights.

    Returns:
        Sam: ``segment_anything``'s ``Sam`` with the TinyViT as
        ``image_encoder``, in eval mode.
    """
    from ..models.backbones.tiny_vit import TinyViTEncoder
    enc = dict(TINY_TINY_VIT, **(encoder or {}))
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        vit_sam = build_tiny_sam(
            img_size, embed_dim=embed_dim, decoder=decoder, seed=seed)
        encoder_module = TinyViTEncoder(
            img_size=img_size, out_channels=embed_dim, **enc)
        with torch.no_grad():
            for name, param in encoder_module.named_parameters():
                if 'attention_biases' in name:
                    param.normal_(0, 0.5)
                elif name.endswith('bn.weight'):
                    param.uniform_(0.5, 1.5)
            for name, buf in encoder_module.named_buffers():
                if name.endswith('running_mean'):
                    buf.normal_(0, 0.1)
                elif name.endswith('running_var'):
                    buf.uniform_(0.5, 2.0)
        sam = Sam(
            image_encoder=encoder_module,
            prompt_encoder=vit_sam.prompt_encoder,
            mask_decoder=vit_sam.mask_decoder,
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375])
    finally:
        torch.random.set_rng_state(gen_state)
    return sam.eval()


def save_tiny_mobile_sam_checkpoint(path: str, **kwargs) -> Sam:
    """Build a tiny MobileSAM and save it like ``mobile_sam.pt``.

    The official file also carries the weights of TinyViT's ImageNet
    classifier (``image_encoder.norm_head.*``, ``image_encoder.head.*``),
    which the encoder does not use; they are written too, so that loading
    is tested against the same layout.

    Returns:
        Sam: The saved model.
    """
    sam = build_tiny_mobile_sam(**kwargs)
    state = sam.state_dict()
    width = sam.image_encoder.layers[-1].blocks[0].attn.norm.weight.shape[0]
    state['image_encoder.norm_head.weight'] = torch.ones(width)
    state['image_encoder.norm_head.bias'] = torch.zeros(width)
    state['image_encoder.head.weight'] = torch.zeros(10, width)
    state['image_encoder.head.bias'] = torch.zeros(10)
    torch.save(state, path)
    return sam


def save_tiny_sam_checkpoint(path: str, **kwargs) -> Sam:
    """Build a tiny SAM and save its state dict like the official files.

    Returns:
        Sam: The saved model.
    """
    sam = build_tiny_sam(**kwargs)
    torch.save(sam.state_dict(), path)
    return sam
