from .sam_mask_decoder_head import SAMMaskDecoderHead, semantic_inference

__all__ = ['SAMMaskDecoderHead', 'semantic_inference']
