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


MASK_ENCODINGS = ('auto', '0-255', '0-1')


def _refuse(path: str, values: np.ndarray, why: str) -> ValueError:
    shown = values[:10].tolist()
    return ValueError(f'Mask {path!r} {why}: it holds the values {shown}'
                      f'{"..." if len(values) > 10 else ""}.')


def binarize_mask(mask: np.ndarray,
                  path: str = '<array>',
                  min_extreme_fraction: float = 0.9,
                  encoding: str = 'auto',
                  void_value: Optional[int] = None,
                  ignore_index: int = 255) -> np.ndarray:
    """Turn a binary mask as stored on disk into 0/1 labels (and
    ``ignore_index`` for void pixels).

    Encodings (``M`` = 255 for 8-bit, 65535 for 16-bit files):

    * ``'0-255'``: background 0, object ``M``. Anti-aliased or
      JPEG-compressed masks are accepted when at least
      ``min_extreme_fraction`` (90%) of the pixels lie within ``M/8`` of 0
      or ``M`` and the maximum is within ``M/8`` of ``M``; they are
      thresholded at ``M/2`` (``> 127`` for 8-bit, the ``> 0.5`` convention
      of the metrics). Values 0/1 only (an object-free mask written as 0/1)
      are read as labels.
    * ``'0-1'``: background 0, object 1 (mmseg's convention); with the
      default ``void_value`` 255 marks void pixels, which become
      ``ignore_index``. Any other value is refused.
    * ``'auto'`` (default): values in {0, 1} -> '0-1', in {0, M} -> '0-255'
      (so a {0, 255} mask is foreground 255, unless the dataset declares
      '0-1'), anti-aliased/JPEG masks -> '0-255'. A mask holding 0, 1 *and*
      ``M`` and nothing else is ambiguous (0/1 labels with ``M`` = void, or
      a thresholded 0/``M`` mask with stray 1s) and refused, naming the
      file and the setting that decides it.

    ``void_value`` (any encoding): the stored value of void pixels, mapped
    to ``ignore_index``. Default: ``M`` for '0-1', none otherwise.
    Anything else (class ids such as {0, 1, 2}, or {0, 7, 200}) is refused,
    because reading it as binary would silently invent labels.

    Args:
        mask (np.ndarray): (H, W) integer array.
        path (str): File name for error messages.
        min_extreme_fraction (float): See above.
        encoding (str): ``'auto'``, ``'0-255'`` or ``'0-1'``.
        void_value (int, optional): See above.
        ignore_index (int): Label of void pixels. Default 255.

    Returns:
        np.ndarray: (H, W) uint8 array of 0, 1 (and ``ignore_index``).

    Raises:
        ValueError: The mask is not a binary mask in the encoding, or is
            ambiguous under ``'auto'``.
    """
    if encoding not in MASK_ENCODINGS:
        raise ValueError(f'mask_encoding must be one of {MASK_ENCODINGS}, '
                         f'got {encoding!r}.')
    full = 65535 if mask.dtype == np.uint16 else 255
    if encoding == '0-1' and void_value is None:
        void_value = full
    void = None
    if void_value is not None:
        void = mask == void_value
        mask = np.where(void, 0, mask)
    values = np.unique(mask)
    fix = ('Set mask_encoding (and void_value) on the dataset (or on '
           "LoadBinaryAnnotations): '0-1' for 0/1 labels with "
           f"{full} = void, '0-255' for 0/{full} masks.")
    if encoding == 'auto' and void is None and set(
            values.tolist()) == {0, 1, full}:
        raise _refuse(
            path, values, f'is ambiguous: 0/1 labels with {full} = void, or '
            f'a 0/{full} mask with stray 1s? {fix}')
    if encoding == '0-1':
        if not np.isin(values, (0, 1)).all():
            raise _refuse(
                path, values, 'is not a 0/1 mask (mask_encoding '
                f"'0-1', void value {void_value})")
        labels = mask.astype(np.uint8)
    elif np.isin(values, (0, 1)).all():
        labels = mask.astype(np.uint8)
    elif np.isin(values, (0, full)).all():
        labels = (mask == full).astype(np.uint8)
    else:
        margin = full / 8
        near_extreme = (mask <= margin) | (mask >= full - margin)
        if void is not None:
            near_extreme = near_extreme[~void]
        if values.max() >= full - margin and near_extreme.size and \
                near_extreme.mean() >= min_extreme_fraction:
            labels = (mask > full // 2).astype(np.uint8)
        else:
            raise ValueError(
                f'Mask {path!r} is not a binary mask: it holds the values '
                f'{values[:10].tolist()}{"..." if len(values) > 10 else ""}. '
                f'Binary datasets accept 0/1, 0/{full}, or anti-aliased '
                f'0/{full} masks (mask_encoding, void_value for a void '
                'value). If this file holds class ids, use a multi-class '
                'dataset; otherwise re-export it as 0/255.')
    if void is not None:
        labels[void] = ignore_index
    return labels


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
    """Load a binary mask as 0/1 ``gt_seg_map`` (255 for void pixels).

    Masks on disk are usually 0/255. Fed to mmseg as they are, 255 is the
    ignore index and the foreground would silently never be trained; this
    transform maps every accepted encoding to 0/1 (see
    :func:`binarize_mask`) and checks that the mask has the size of the
    image it belongs to.

    The encoding is the dataset's (``mask_encoding`` / ``void_value`` of
    :class:`BinarySegDataset`, passed in each sample) unless given here.
    Palette PNGs whose colours are all gray are read by colour, other
    palette PNGs by index (:func:`read_palette_mask`); gray + alpha masks
    drop the alpha channel. Masks are read as stored (a mask's EXIF
    orientation is never applied), like images by default (see
    :class:`LoadImageChecked`).

    Required keys: ``seg_map_path``; ``ori_shape`` and ``img_path`` when an
    image was loaded before. Added keys: ``gt_seg_map`` (H, W) uint8 in
    {0, 1, 255}, ``seg_fields``. A sample without ``seg_map_path`` (an
    image given to mmseg's ``inference_model`` / ``MMSegInferencer``;
    datasets always set it) passes unchanged.

    Args:
        mask_encoding (str, optional): ``'auto'``, ``'0-255'`` or ``'0-1'``
            (see :func:`binarize_mask`). Default: the sample's
            ``mask_encoding`` (set by the dataset), else ``'auto'``.
        void_value (int, optional): Stored value of void pixels (loaded as
            255, ignored by losses and metrics). Default: the sample's
            ``void_value``, else 255 for ``'0-1'`` and none otherwise.
        **kwargs: See mmseg's ``LoadAnnotations``.
    """

    def __init__(self,
                 mask_encoding: Optional[str] = None,
                 void_value: Optional[int] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if mask_encoding is not None and mask_encoding not in \
                MASK_ENCODINGS:
            raise ValueError(f'mask_encoding must be one of '
                             f'{MASK_ENCODINGS}, got {mask_encoding!r}.')
        self.mask_encoding = mask_encoding
        self.void_value = void_value

    def _load_seg_map(self, results: dict) -> None:
        if 'seg_map_path' not in results:
            return
        path = results['seg_map_path']
        try:
            img_bytes = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as err:
            raise FileNotFoundError(f'Mask file {path!r} not found (image '
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
        encoding = self.mask_encoding or results.get('mask_encoding') or \
            'auto'
        void_value = self.void_value if self.void_value is not None else \
            results.get('void_value')
        mask = binarize_mask(
            to_single_channel(mask, path),
            path,
            encoding=encoding,
            void_value=void_value)
        ori_shape: Optional[tuple] = results.get('ori_shape')
        if ori_shape is not None and tuple(mask.shape) != tuple(ori_shape[:2]):
            raise ValueError(
                f'Mask {path!r} is {mask.shape[1]}x{mask.shape[0]} (WxH) but '
                f'its image {results.get("img_path")!r} is {ori_shape[1]}x'
                f'{ori_shape[0]}. Image and mask must have the same size.')
        results['gt_seg_map'] = mask
        results['seg_fields'].append('gt_seg_map')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(mask_encoding={self.mask_encoding!r}'
                f', void_value={self.void_value!r}, imdecode_backend='
                f'{self.imdecode_backend!r})')
