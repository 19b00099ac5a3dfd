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
    embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1, ),
    window_size=4)
TINY_DECODER = dict(depth=2, mlp_dim=64, num_heads=2, iou_head_hidden_dim=32)
TINY_EMBED_DIM = 32
TINY_IMG_SIZE = 128


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


def save_tiny_sam_checkpoint(path: str, **kwargs) -> Sam:
    """Build a tiny SAM and save its state dict like the official files.

    Returns:
        Sam: The saved model.
    """
    sam = build_tiny_sam(**kwargs)
    torch.save(sam.state_dict(), path)
    return sam
