"""Loading binary masks as 0/1 labels, refusing what cannot be meant as
one."""
from typing import Optional

import mmcv
import numpy as np
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

from .image_loading import pil_image


def read_palette_mask(data: bytes) -> Optional[np.ndarray]:
    """A palette ('P' mode) PNG mask as one channel, or None for others.

    If every colour the mask uses is a gray (R = G = B) the gray values are
    returned: the mask means what it shows (also with an inverted palette,
    or 0/255 stored as a palette). Otherwise the palette indices are
    returned (the VOC/mmseg convention: index = label).
    """
    pil = pil_image(data)
    if pil is None or pil.mode != 'P':
        return None
    index = np.array(pil)
    palette = np.array(pil.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
    used = np.unique(index)
    if used.size and used.max() < len(palette):
        colours = palette[used]
        if (colours == colours[:, :1]).all():
            lut = np.zeros(256, np.uint8)
            lut[:len(palette)] = palette[:, 0]
            return lut[index]
    return index


def binarize_mask(mask: np.ndarray, path: str = '<array>',
                  min_extreme_fraction: float = 0.9) -> np.ndarray:
    """Turn a binary mask as stored on disk into 0/1 labels.

    Accepted encodings (``M`` = 255 for 8-bit, 65535 for 16-bit files):

    * values in {0, 1}: used as they are;
    * values in {0, M}: divided by M;
    * anti-aliased or JPEG-compressed 0/M masks: at least
      ``min_extreme_fraction`` (90%) of the pixels lie within 1/8 of M from
      0 or M and the maximum is within 1/8 of M from M; thresholded at M/2
      (``> 127`` for 8-bit, i.e. the ``> 0.5`` convention of the metrics).

    Anything else (class ids such as {0, 1, 2}, or {0, 7, 200}) is refused,
    because reading it as binary would silently invent labels.

    Args:
        mask (np.ndarray): (H, W) integer array.
        path (str): File name for error messages.
        min_extreme_fraction (float): See above.

    Returns:
        np.ndarray: (H, W) uint8 array of 0 and 1.

    Raises:
        ValueError: The mask is not a binary mask in any accepted encoding.
    """
    full = 65535 if mask.dtype == np.uint16 else 255
    values = np.unique(mask)
    if np.isin(values, (0, 1)).all():
        return mask.astype(np.uint8)
    if np.isin(values, (0, full)).all():
        return (mask == full).astype(np.uint8)
    margin = full / 8
    near_extreme = (mask <= margin) | (mask >= full - margin)
    if values.max() >= full - margin and near_extreme.mean() >= \
            min_extreme_fraction:
        return (mask > full // 2).astype(np.uint8)
    shown = values[:10].tolist()
    raise ValueError(
        f'Mask {path!r} is not a binary mask: it holds the values {shown}'
        f'{"..." if len(values) > 10 else ""}. Binary datasets accept 0/1, '
        f'0/{full}, or anti-aliased 0/{full} masks. If this file holds class '
        'ids, use a multi-class dataset; otherwise re-export it as 0/255.')


def to_single_channel(mask: np.ndarray, path: str) -> np.ndarray:
    """Gray, gray-as-RGB(A) or 16-bit masks to one (H, W) channel.

    Raises:
        ValueError: A colour mask whose channels differ (its meaning as a
            binary mask is not clear).
    """
    if mask.ndim == 2:
        return mask
    if mask.ndim == 3 and mask.shape[2] == 1:
        return mask[..., 0]
    if mask.ndim == 3 and mask.shape[2] == 2:  # gray + alpha: alpha dropped
        return mask[..., 0]
    if mask.ndim == 3 and mask.shape[2] in (3, 4):
        rgb = mask[..., :3]
        if (rgb == rgb[..., :1]).all():
            return rgb[..., 0]
        raise ValueError(
            f'Mask {path!r} is a colour image whose channels differ; a binary '
            'mask must be grayscale (or gray stored as RGB). Convert it to a '
            'single-channel 0/255 PNG.')
    raise ValueError(f'Mask {path!r} has an unsupported shape {mask.shape}.')


@TRANSFORMS.register_module()
class LoadBinaryAnnotations(LoadAnnotations):
    """Load a binary mask as 0/1 ``gt_seg_map``.

    Masks on disk are usually 0/255. Fed to mmseg as they are, 255 is the
    ignore index and the foreground would silently never be trained; this
    transform maps every accepted encoding to 0/1 (see
    :func:`binarize_mask`) and checks that the mask has the size of the
    image it belongs to.

    Palette PNGs whose colours are all gray are read by colour, other
    palette PNGs by index (:func:`read_palette_mask`); gray + alpha masks
    drop the alpha channel.

    Required keys: ``seg_map_path``; ``ori_shape`` and ``img_path`` when an
    image was loaded before. Added keys: ``gt_seg_map`` (H, W) uint8 in
    {0, 1}, ``seg_fields``. A sample without ``seg_map_path`` (an image
    given to mmseg's ``inference_model`` / ``MMSegInferencer``; datasets
    always set it) passes unchanged.
    """

    def _load_seg_map(self, results: dict) -> None:
        if 'seg_map_path' not in results:
            return
        path = results['seg_map_path']
        try:
            img_bytes = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f'Mask file {path!r} not found (image '
                f'{results.get("img_path")!r}).') from err
        if not img_bytes:
            raise ValueError(
                f'Mask {path!r} is an empty file (0 bytes). Re-export it or '
                'remove it and its image from the dataset.')
        mask = None
        if self.imdecode_backend == 'pillow':
            mask = read_palette_mask(img_bytes)
        if mask is None:
            mask = mmcv.imfrombytes(
                img_bytes, flag='unchanged', backend=self.imdecode_backend)
        if mask is None:
            raise ValueError(
                f'Mask {path!r} could not be decoded: the file is truncated '
                'or not an image. Re-export or remove it.')
        mask = binarize_mask(to_single_channel(mask, path), path)
        ori_shape: Optional[tuple] = results.get('ori_shape')
        if ori_shape is not None and tuple(mask.shape) != tuple(
                ori_shape[:2]):
            raise ValueError(
                f'Mask {path!r} is {mask.shape[1]}x{mask.shape[0]} (WxH) but '
                f'its image {results.get("img_path")!r} is {ori_shape[1]}x'
                f'{ori_shape[0]}. Image and mask must have the same size.')
        results['gt_seg_map'] = mask
        results['seg_fields'].append('gt_seg_map')
