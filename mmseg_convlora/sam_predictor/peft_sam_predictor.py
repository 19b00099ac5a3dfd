"""Point and box prompts on a fine-tuned model, with SamPredictor's API."""
import copy
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
from mmseg.registry import TRANSFORMS
from mmseg.structures import SegDataSample
from segment_anything import SamPredictor
from segment_anything.modeling import MaskDecoder, Sam

from ..apis.inference import ConfigLike, get_test_pipeline, init_segmentor
from ..models.utils.sam_checkpoint import load_sam_state_dict, sub_state_dict
from .adapted_image_encoder import AdaptedImageEncoder
from .square_resize import SquareResize

DECODERS = ('finetuned', 'original')
RESIZES = ('square', 'longest_side')


class PEFTSamPredictor(SamPredictor):
    """``segment_anything.SamPredictor`` on a fine-tuned model.

    Args:
        config, checkpoint, device, cfg_options: As :func:`init_segmentor`.
        decoder (str): 'finetuned' (binary models: the trained mask token
            is SAM's token 0) or 'original' (the SAM file's decoder).
        resize (str): 'square' (the configs' resize) or 'longest_side'.
    """

    def __init__(self,
                 config: ConfigLike,
                 checkpoint: Optional[str] = None,
                 decoder: str = 'finetuned',
                 resize: str = 'square',
                 device: str = 'cpu',
                 cfg_options: Optional[dict] = None):
        for name, value, allowed in (('decoder', decoder, DECODERS),
                                     ('resize', resize, RESIZES)):
            if value not in allowed:
                raise ValueError(f'{name} must be one of {allowed}, got '
                                 f'{value!r}.')
        segmentor = init_segmentor(config, checkpoint, 'cpu', cfg_options)
        super().__init__(promptable_sam(segmentor, decoder).to(device))
        if resize == 'square':
            self.transform = SquareResize(segmentor.backbone.img_size)
        self.decoder = decoder
        self.cad_resize = next((TRANSFORMS.build(t)
                                for t in get_test_pipeline(segmentor.cfg)
                                if t.get('type') == 'ResizeCADImage'), None)

    def set_image(self, image: np.ndarray, image_format: str = 'RGB') -> None:
        """``SamPredictor.set_image``, also making CAD's input image."""
        encoder = self.model.image_encoder
        if self.cad_resize is not None:
            bgr = image[..., ::-1] if image_format == 'RGB' else image
            cad = self.cad_resize(dict(img=np.ascontiguousarray(bgr)))
            cad = cad['cad_img']
            encoder.data_samples = [
                SegDataSample(
                    cad_image=torch.from_numpy(
                        np.ascontiguousarray(cad.transpose(2, 0, 1))))
            ]
        try:
            super().set_image(image, image_format)
        finally:
            encoder.data_samples = None

    def predict_torch(self,
                      point_coords: Optional[torch.Tensor],
                      point_labels: Optional[torch.Tensor],
                      boxes: Optional[torch.Tensor] = None,
                      mask_input: Optional[torch.Tensor] = None,
                      multimask_output: bool = True,
                      return_logits: bool = False):
        """``SamPredictor.predict_torch``, refusing multi-mask output of a
        decoder that has none."""
        if multimask_output and self.model.mask_decoder.num_mask_tokens == 1:
            raise ValueError(
                'This decoder has one mask token (trained with '
                'keep_sam_multimask_tokens=False): use multimask_output=False'
                ", or decoder='original'.")
        return super().predict_torch(point_coords, point_labels, boxes,
                                     mask_input, multimask_output,
                                     return_logits)


def promptable_sam(segmentor: nn.Module, decoder: str = 'finetuned') -> Sam:
    """A ``segment_anything`` ``Sam`` in eval mode sharing a fine-tuned
    segmentor's modules; ``decoder`` as in :class:`PEFTSamPredictor`."""
    head = segmentor.decode_head
    sam_file = segmentor.frozen_weights_from.get('decode_head')
    if decoder == 'original':
        mask_decoder = original_mask_decoder(head, sam_file)
    elif head.out_channels != 1:
        raise ValueError(
            "decoder='finetuned' needs a binary head (a multi-class head has "
            "no prompt-driven mask token): use decoder='original' (the "
            "fine-tuned encoder with SAM's own decoder).")
    else:
        mask_decoder = finetuned_mask_decoder(head, sam_file)
    pre = segmentor.data_preprocessor
    sam = Sam(
        image_encoder=AdaptedImageEncoder(segmentor),
        prompt_encoder=head.prompt_encoder,
        mask_decoder=mask_decoder,
        pixel_mean=pre.mean.flatten().tolist(),
        pixel_std=pre.std.flatten().tolist())
    # SamPredictor flips given images to this order; the config's
    # preprocessor decides what the encoder was trained on.
    sam.image_format = 'RGB' if pre.channel_conversion else 'BGR'
    return sam.eval().requires_grad_(False)


def _with_tokens(head: nn.Module, num_tokens: int) -> MaskDecoder:
    """A copy of ``head``'s decoder with ``num_tokens`` new mask tokens."""
    dec = copy.deepcopy(head.mask_decoder)
    dec.num_mask_tokens = num_tokens
    dec.mask_tokens = nn.Embedding(num_tokens, head.embed_dim)
    return dec


def original_mask_decoder(head: nn.Module,
                          sam_file: Optional[str]) -> MaskDecoder:
    """SAM's mask decoder as in the SAM file, shaped like ``head``'s."""
    if sam_file is None:
        raise ValueError(
            "SAM's original mask decoder is read from the SAM checkpoint, "
            'but the config sets no model.sam_checkpoint.')
    state = sub_state_dict(load_sam_state_dict(sam_file), 'mask_decoder.')
    num_tokens = state['mask_tokens.weight'].shape[0]
    dec = _with_tokens(head, num_tokens)
    dec.output_hypernetworks_mlps = nn.ModuleList(
        copy.deepcopy(dec.output_hypernetworks_mlps[0])
        for _ in range(num_tokens))
    dec.load_state_dict(state, strict=True)
    return dec


def finetuned_mask_decoder(head: nn.Module,
                           sam_file: Optional[str]) -> MaskDecoder:
    """The binary head's decoder with its mask token as SAM's token 0."""
    tokens = head.query_tokens.detach()
    if head.sam_multimask_tokens is None:
        dec = _with_tokens(head, 1)
        dec.mask_tokens.weight.data.copy_(tokens)
        last = dec.iou_prediction_head.layers[-1]
        iou_out = nn.Linear(last.in_features, 1)
        iou_out.weight.data.copy_(last.weight.data[:1])
        iou_out.bias.data.copy_(last.bias.data[:1])
        dec.iou_prediction_head.layers[-1] = iou_out
        return dec
    dec = original_mask_decoder(head, sam_file)
    # transformer, upscaling, IoU token, hypernetwork MLP 0 (and the frozen
    # IoU head) as trained; MLPs 1-3 stay SAM's
    result = dec.load_state_dict(head.mask_decoder.state_dict(), strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    with torch.no_grad():
        dec.mask_tokens.weight.copy_(
            torch.cat([tokens, head.sam_multimask_tokens]))
    return dec
