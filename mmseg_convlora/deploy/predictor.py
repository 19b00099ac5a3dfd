"""Predict with an exported model; numpy, opencv and onnxruntime only."""
import json
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

META_KEY = 'mmseg_convlora'
_CV2_INTERPOLATION = dict(
    nearest=cv2.INTER_NEAREST,
    bilinear=cv2.INTER_LINEAR,
    bicubic=cv2.INTER_CUBIC,
    area=cv2.INTER_AREA,
    lanczos=cv2.INTER_LANCZOS4)


class Prediction(NamedTuple):
    """(C, H, W) float32 ``probs`` (binary: C = 1) and (H, W) int64 class
    ids ``mask`` of one image at its original size."""
    probs: np.ndarray
    mask: np.ndarray


def resize_image(image: np.ndarray, resize: Optional[dict]) -> np.ndarray:
    """The config's ``Resize`` (``scale`` (w, h), ``keep_ratio``,
    ``interpolation``; None: none) of an (H, W, 3) uint8 image, as mmcv."""
    if resize is None:
        return image
    h, w = image.shape[:2]
    size = tuple(resize['scale'])
    if resize['keep_ratio']:  # mmcv.imrescale: fit the longer side
        factor = min(max(size) / max(h, w), min(size) / min(h, w))
        size = (int(w * factor + 0.5), int(h * factor + 0.5))
    return cv2.resize(
        image, size, interpolation=_CV2_INTERPOLATION[resize['interpolation']])


def _source_index(size_in: int, size_out: int, align_corners: bool):
    """Source rows (i0, i1) and float32 weight of i1 per output row, as
    PyTorch's bilinear interpolation computes them."""
    dst = np.arange(size_out, dtype=np.float64)
    if align_corners:
        scale = np.float32((size_in - 1) / (size_out - 1)) \
            if size_out > 1 else np.float32(0)
        src = (dst * scale).astype(np.float32)
    else:  # a float32 scale times a double (i + 0.5), as in ATen
        scale = np.float64(np.float32(size_in / size_out))
        src = np.maximum((dst + 0.5) * scale - 0.5, 0).astype(np.float32)
    i0 = np.minimum(src.astype(np.int64), size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resize_bilinear(x: np.ndarray,
                    size: Tuple[int, int],
                    align_corners: bool = False) -> np.ndarray:
    """``F.interpolate(x, size, mode='bilinear')`` of (C, h, w) float32
    maps (opencv's float resize differs by up to 5e-5)."""
    if tuple(x.shape[1:]) == tuple(size):
        return x
    r0, r1, wr = _source_index(x.shape[1], size[0], align_corners)
    c0, c1, wc = _source_index(x.shape[2], size[1], align_corners)
    cols = x[:, :, c0] * (1 - wc) + x[:, :, c1] * wc
    return cols[:, r0] * (1 - wr)[:, None] + cols[:, r1] * wr[:, None]


class ONNXSegPredictor:
    """Run an exported model with onnxruntime (see docs/deploy.md).

    Args:
        model (str): The ``.onnx`` file; its ``meta`` (dict) holds the
            processing recorded at export.
        providers (Sequence[str]): onnxruntime execution providers.
        session_options (onnxruntime.SessionOptions, optional): Options.
    """

    def __init__(self,
                 model: str,
                 providers: Sequence[str] = ('CPUExecutionProvider', ),
                 session_options=None):
        try:
            import onnxruntime as ort
        except ModuleNotFoundError as err:
            raise ModuleNotFoundError(
                f'{err}: pip install -r requirements-deploy.txt (or the '
                "package's [deploy] extra).") from err
        self.session = ort.InferenceSession(
            model, session_options, providers=list(providers))
        found = self.session.get_modelmeta().custom_metadata_map
        if META_KEY not in found:
            raise ValueError(
                f'{model!r} carries no {META_KEY!r} metadata (pre- and post-'
                'processing): export it with tools/deploy/export_onnx.py.')
        self.meta = json.loads(found[META_KEY])
        self.num_outputs = self.session.get_outputs()[0].shape[1]

    def preprocess(self, image: np.ndarray) -> Tuple[Dict, Tuple[int, int]]:
        """``{input name: (3, S, S) float32}`` of an (H, W, 3) uint8 BGR
        image and the (h, w) of the resized image inside the padding."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                'ONNXSegPredictor takes (H, W, 3) uint8 BGR images (as '
                f'cv2.imread gives), got {image.dtype} {image.shape}.')
        meta = self.meta
        inputs = {}
        cad = meta['cad_image']
        if cad is not None:
            small = cv2.resize(
                image, (cad['size'], ) * 2, interpolation=cv2.INTER_LINEAR)
            if cad['to_rgb']:
                small = small[..., ::-1]
            inputs['cad_image'] = small.transpose(2, 0, 1).astype(np.float32)
        img = resize_image(image, meta['resize'])
        if meta['bgr_to_rgb']:
            img = img[..., ::-1]
        img = img.transpose(2, 0, 1).astype(np.float32)
        if meta['mean'] is not None:
            mean = np.asarray(meta['mean'], np.float32)[:, None, None]
            std = np.asarray(meta['std'], np.float32)[:, None, None]
            img = (img - mean) / std
        (H, W), (h, w) = meta['size'], img.shape[1:]
        if h > H or w > W:
            raise ValueError(
                f'The resized image is {h}x{w}, larger than the network '
                f'input {H}x{W}: the exported Resize step does not fit it.')
        inputs['image'] = np.pad(
            img, ((0, 0), (0, H - h), (0, W - w)),
            constant_values=meta['pad_val'])
        return inputs, (h, w)

    def postprocess(self, probs: np.ndarray, valid: Tuple[int, int],
                    shape: Tuple[int, int]) -> Prediction:
        """Crop (C, S, S) ``probs`` to ``valid`` (h, w), resize to ``shape``
        (H, W), threshold or argmax."""
        probs = resize_bilinear(probs[:, :valid[0], :valid[1]], shape,
                                self.meta['align_corners'])
        if probs.shape[0] == 1:
            mask = (probs[0] > self.meta['threshold']).astype(np.int64)
        else:
            mask = probs.argmax(0)
        return Prediction(probs, mask)

    def __call__(
        self, images: Union[np.ndarray, List[np.ndarray]]
    ) -> Union[Prediction, List[Prediction]]:
        """The :class:`Prediction` of one (H, W, 3) uint8 BGR image, or of
        each in a list (run as one batch)."""
        batch = images if isinstance(images, (list, tuple)) else [images]
        prepared = [self.preprocess(image) for image in batch]
        feeds = {
            name: np.stack([inputs[name] for inputs, _ in prepared])
            for name in prepared[0][0]
        }
        probs = self.session.run(None, feeds)[0]
        out = [
            self.postprocess(p, valid, image.shape[:2])
            for p, (_, valid), image in zip(probs, prepared, batch)
        ]
        return out if isinstance(images, (list, tuple)) else out[0]
