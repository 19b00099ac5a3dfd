"""The FSDP wrap policy for SAM ViT encoders, registered by name."""
import torch.nn as nn
from mmengine.registry import FUNCTIONS


def sam_vit_block_wrap_policy(module: nn.Module,
                              recurse: bool,
                              nonwrapped_numel: int = 0,
                              **kwargs) -> bool:
    """FSDP ``auto_wrap_policy``: one FSDP unit per SAM ViT block.

    Registered in mmengine's ``FUNCTIONS`` so a config can name it:
    ``auto_wrap_policy=dict(type='sam_vit_block_wrap_policy')``. Everything
    else (patch embedding, neck, prompt encoder, mask decoder) stays in the
    root unit.
    """
    if recurse:
        return True
    from segment_anything.modeling.image_encoder import Block
    return isinstance(module, Block)


def _register_fsdp_policy() -> None:
    if 'sam_vit_block_wrap_policy' not in FUNCTIONS.module_dict:
        FUNCTIONS.register_module(
            name='sam_vit_block_wrap_policy', module=sam_vit_block_wrap_policy)


_register_fsdp_policy()
