"""Loading images and binary masks with clear errors.

* :class:`LoadImageChecked`: mmcv's ``LoadImageFromFile`` (same arguments,
  same result) whose errors name the file and the fix; grayscale, RGBA,
  palette and 16-bit images become 8-bit 3-channel BGR, floating-point
  images are refused.
* :class:`LoadBinaryAnnotations`: binary masks as 0/1 labels, refusing what
  cannot be meant as one.
* :class:`CheckSegLabels`: refuses label maps with values that are neither
  a class id nor the ignore index (mmseg's ``LoadAnnotations`` checks
  nothing, and its metrics silently drop such pixels).
"""
import io
from typing import Optional

import cv2
import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS


def _pil_image(data: bytes):
    """The lazily opened PIL image (header only), or None."""
    try:
        from PIL import Image
        return Image.open(io.BytesIO(data))
    except Exception:  # not an image PIL knows; cv2 may still decode it
        return None


def decode_image(data: bytes, path: str) -> np.ndarray:
    """Decode an image file's bytes to 8-bit, 3-channel BGR.

    As mmcv's default (``cv2.IMREAD_COLOR``): grayscale is repeated over 3
    channels, the alpha channel of RGBA (or gray + alpha) is dropped,
    palette images give their colours, 16-bit images are scaled to 8 bits
    (value / 256) and the EXIF orientation is applied.

    Raises:
        ValueError: The file is empty, truncated, corrupt, not an image, or a
            floating-point image (whose value range is not known).
    """
    if not data:
        raise ValueError(
            f'Image {path!r} is an empty file (0 bytes). Re-download or '
            're-export it, or remove it (and its mask) from the dataset.')
    pil = _pil_image(data)
    mode = getattr(pil, 'mode', None)
    if mode is not None and mode.startswith('F'):
        raise ValueError(
            f'Image {path!r} holds floating-point pixels (PIL mode '
            f'{mode!r}), whose value range is unknown. Convert it to an '
            '8-bit (or 16-bit) PNG/JPEG first.')
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        kind = f'a {pil.format} image that does not decode' if pil is not \
            None and pil.format else 'not an image format OpenCV reads'
        raise ValueError(
            f'Image {path!r} could not be decoded ({len(data)} bytes; '
            f'{kind}): the file is truncated, corrupt or not an image. '
            'Re-download or re-export it, or remove it (and its mask) from '
            'the dataset.')
    return img


@TRANSFORMS.register_module()
class LoadImageChecked(LoadImageFromFile):
    """``LoadImageFromFile`` with errors that name the file and the fix.

    Drop-in replacement for mmcv's transform (same arguments and keys). With
    the defaults (``color_type='color'``, ``imdecode_backend='cv2'``) every
    image becomes 8-bit, 3-channel BGR (see :func:`decode_image`): grayscale
    -> 3 equal channels, RGBA -> alpha dropped, palette -> its colours,
    16-bit -> scaled to 8 bits. A missing, empty, truncated or undecodable
    file, or a floating-point image, raises an error naming the file (mmcv
    raises ``AssertionError: failed to load image``). Other ``color_type``
    or backends use mmcv's decoding, with the same error messages.

    Required keys: ``img_path``. Added keys: ``img``, ``img_shape``,
    ``ori_shape``.
    """

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        try:
            if self.file_client_args is not None:
                client = fileio.FileClient.infer_client(
                    self.file_client_args, path)
                data = client.get(path)
            else:
                data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as err:
            if self.ignore_empty:
                return None
            raise FileNotFoundError(
                f'Image file {path!r} not found. Check data_root and '
                'data_prefix in the config (or the annotation file), or '
                'remove the entry.') from err
        try:
            if self.color_type == 'color' and self.imdecode_backend == 'cv2':
                img = decode_image(data, path)
            else:
                img = mmcv.imfrombytes(
                    data, flag=self.color_type,
                    backend=self.imdecode_backend) if data else None
                if img is None:
                    decode_image(data, path)  # raises the explained error
        except ValueError:
            if self.ignore_empty:
                return None
            raise
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


def read_palette_mask(data: bytes) -> Optional[np.ndarray]:
    """A palette ('P' mode) PNG mask as one channel, or None for others.

    If every colour the mask uses is a gray (R = G = B) the gray values are
    returned: the mask means what it shows (also with an inverted palette,
    or 0/255 stored as a palette). Otherwise the palette indices are
    returned (the VOC/mmseg convention: index = label).
    """
    pil = _pil_image(data)
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
    {0, 1}, ``seg_fields``.
    """

    def _load_seg_map(self, results: dict) -> None:
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


@TRANSFORMS.register_module()
class CheckSegLabels:
    """Refuse label maps with values that are neither a class id nor the
    ignore index; put it after the annotation loader of a multi-class
    pipeline::

        dict(type='LoadAnnotations'),
        dict(type='CheckSegLabels', num_classes=12),

    mmseg's ``LoadAnnotations`` does not look at the values; a wrong
    ``num_classes``, a forgotten ``reduce_zero_label`` or colour-coded masks
    would otherwise crash the loss far from the file or, in evaluation, be
    dropped silently.

    Args:
        num_classes (int): K; valid labels are 0..K-1.
        ignore_index (int): Also accepted. Default 255.

    Required keys: ``gt_seg_map``, ``seg_map_path`` (for the message).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f'CheckSegLabels num_classes must be a positive integer, got '
                f'{num_classes!r}.')
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def __call__(self, results: dict) -> dict:
        seg = results.get('gt_seg_map')
        if seg is None:
            raise KeyError(
                'CheckSegLabels needs gt_seg_map: put it after the '
                'annotation loader in the pipeline.')
        values = np.unique(seg)
        bad = values[((values < 0) | (values >= self.num_classes))
                     & (values != self.ignore_index)]
        if bad.size:
            shown = bad[:10].tolist()
            raise ValueError(
                f'Mask {results.get("seg_map_path")!r} holds label values '
                f'{shown}{"..." if bad.size > 10 else ""} that are neither a '
                f'class id in [0, {self.num_classes}) nor the ignore index '
                f'{self.ignore_index}. Check num_classes, reduce_zero_label '
                'and label_map in the config, or convert colour-coded masks '
                'to class-index PNGs.')
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')
