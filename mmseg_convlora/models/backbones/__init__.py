from .base_sam_backbone import BaseSAMBackbone
from .sam_tiny_vit import DEFAULT_TINY_VIT_QKV, SAMTinyViT
from .sam_vit import SAMViT

__all__ = ['BaseSAMBackbone', 'DEFAULT_TINY_VIT_QKV', 'SAMTinyViT', 'SAMViT']
