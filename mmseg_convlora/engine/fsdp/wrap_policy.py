import torch.nn as nn
from mmengine.registry import FUNCTIONS


@FUNCTIONS.register_module()
def sam_vit_block_wrap_policy(module: nn.Module,
                              recurse: bool,
                              nonwrapped_numel: int = 0,
                              **kwargs) -> bool:
    """FSDP ``auto_wrap_policy``: one FSDP unit per SAM ViT block, the rest
    in the root unit (``dict(type='sam_vit_block_wrap_policy')``)."""
    if recurse:
        return True
    from segment_anything.modeling.image_encoder import Block
    return isinstance(module, Block)
