from .tiny_sam import (TINY_DECODER, TINY_EMBED_DIM, TINY_ENCODER,
                       TINY_IMG_SIZE, TINY_TINY_VIT, build_tiny_mobile_sam,
                       build_tiny_sam, save_tiny_mobile_sam_checkpoint,
                       save_tiny_sam_checkpoint)

__all__ = [
    'TINY_DECODER', 'TINY_EMBED_DIM', 'TINY_ENCODER', 'TINY_IMG_SIZE',
    'TINY_TINY_VIT', 'build_tiny_mobile_sam', 'build_tiny_sam',
    'save_tiny_mobile_sam_checkpoint', 'save_tiny_sam_checkpoint'
]
