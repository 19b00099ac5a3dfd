"""Loading binary masks as 0/1 labels."""
import io
from typing import List, Optional, Tuple

import mmcv
import numpy as np
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

from .check_image import unreadable_error

MASK_ENCODINGS = ('auto', '0-255', '0-1')


def read_palette_mask(data: bytes) -> Optional[np.ndarray]:
    """A palette PNG as its gray values if all its colours are gray, else as
    its indices (mmseg's convention); None for other images."""
    try:
        from PIL import Image
        pil = Image.open(io.BytesIO(data))
    except Exception:  # not an image PIL knows; cv2 may still decode it
        return None
    if pil.mode != 'P':
        return None
    index = np.array(pil)
    palette = np.array(pil.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
    used = np.unique(index)
    if used.size and used.max() < len(palette):
        colours = palette[used]
        if (colours == colours[:, :1]).all():
            return palette[:, 0][index]
    return index


def to_single_channel(mask: np.ndarray, path: str) -> np.ndarray:
    """Gray, gray + alpha or gray-as-RGB(A) masks to one (H, W) channel."""
    if mask.ndim == 2:
        return mask
    if mask.ndim == 3 and mask.shape[2] in (1, 2):  # alpha dropped
        return mask[..., 0]
    if mask.ndim == 3 and mask.shape[2] in (3, 4):
        rgb = mask[..., :3]
        if (rgb == rgb[..., :1]).all():
            return rgb[..., 0]
        raise ValueError(f'Mask {path!r} is a colour image, not a gray '
                         'binary mask: convert it to a single-channel 0/255 '
                         'PNG.')
    raise ValueError(f'Mask {path!r} has an unsupported shape {mask.shape}.')


def read_binary_mask(data: bytes,
                     path: str,
                     backend: str = 'pillow') -> np.ndarray:
    """Decode a mask file's bytes to one (H, W) channel as stored."""
    mask = read_palette_mask(data) if backend == 'pillow' else None
    if mask is None and data:
        mask = mmcv.imfrombytes(data, flag='unchanged', backend=backend)
    if mask is None:
        raise unreadable_error(path, 'Mask', len(data))
    if mask.dtype == bool:  # 1-bit PNG
        mask = mask.astype(np.uint8)
    return to_single_channel(mask, path)


def value_counts(mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The values a mask holds and their pixel counts."""
    if mask.dtype == np.uint8:
        counts = np.bincount(mask.ravel(), minlength=256)
        values = np.flatnonzero(counts)
        return values, counts[values]
    return np.unique(mask, return_counts=True)


def mask_kind(values: np.ndarray, full: int) -> str:
    """``'empty'``, ``'0-1'``, ``'0-M'``, ``'either'`` (0/1/M: 0/1 labels
    with M void, or 0/M with stray 1s) or ``'other'``."""
    present = set(values.tolist()) - {0}
    for kind, allowed in (('empty', set()), ('0-1', {1}), ('0-M', {full}),
                          ('either', {1, full})):
        if present <= allowed:
            return kind
    return 'other'


def check_encoding(encoding: str, who: str = '') -> str:
    """``encoding`` if it is in :data:`MASK_ENCODINGS`, else ValueError."""
    if encoding not in MASK_ENCODINGS:
        raise ValueError(f'{who}mask_encoding must be one of '
                         f'{MASK_ENCODINGS}, got {encoding!r}.')
    return encoding


def _refuse(path: str, values: np.ndarray, why: str) -> ValueError:
    more = '...' if len(values) > 10 else ''
    return ValueError(f'Mask {path!r} {why}: it holds the values '
                      f'{values[:10].tolist()}{more}.')


def label_lut(values: np.ndarray,
              counts: np.ndarray,
              full: int,
              path: str = '<array>',
              encoding: str = 'auto',
              void_value: Optional[int] = None,
              invert: bool = False) -> np.ndarray:
    """The label (0, 1, 255 void) of each stored mask value (see
    ``docs/own_data.md``).

    Args:
        values (np.ndarray): The stored values; ``counts`` their pixels.
        full (int): 255 for 8-bit, 65535 for 16-bit masks.

    Returns:
        np.ndarray: (full + 1, ) uint8.
    """
    if check_encoding(encoding) == '0-1' and void_value is None:
        void_value = full
    keep = values != void_value
    values, counts = values[keep], counts[keep]
    fix = ('Set mask_encoding (and void_value) on the dataset (or on '
           "LoadBinaryAnnotations): '0-1' for 0/1 labels with "
           f"{full} = void, '0-255' for 0/{full} masks.")
    lut = np.zeros(full + 1, np.uint8)
    if encoding == 'auto' and void_value is None and \
            mask_kind(values, full) == 'either':
        raise _refuse(
            path, values, f'is ambiguous: 0/1 labels with {full} = void, or '
            f'a 0/{full} mask with stray 1s? {fix}')
    if encoding == '0-1' or np.isin(values, (0, 1)).all():
        if not np.isin(values, (0, 1)).all():
            raise _refuse(
                path, values, 'is not a 0/1 mask (mask_encoding '
                f"'0-1', void value {void_value})")
        lut[1] = 1
    elif np.isin(values, (0, full)).all():
        lut[full] = 1
    else:
        margin = full / 8
        near = counts[(values <= margin) | (values >= full - margin)].sum()
        if values.max() < full - margin or \
                near < 0.9 * counts.sum():
            raise _refuse(
                path, values, 'is not a binary mask. Binary datasets accept '
                f'0/1, 0/{full}, or anti-aliased 0/{full} masks '
                '(mask_encoding, void_value for a void value). If it holds '
                'class ids, use a multi-class dataset')
        lut[full // 2 + 1:] = 1
    if invert:
        lut = 1 - lut
    if void_value is not None:
        lut[void_value] = 255
    return lut


def binarize_mask(mask: np.ndarray,
                  path: str = '<array>',
                  encoding: str = 'auto',
                  void_value: Optional[int] = None,
                  invert: bool = False) -> np.ndarray:
    """A (H, W) mask as stored -> (H, W) uint8 labels 0/1 (and 255 void);
    see :func:`label_lut`."""
    full = 65535 if mask.dtype == np.uint16 else 255
    values, counts = value_counts(mask)
    return label_lut(values, counts, full, path, encoding, void_value,
                     invert)[mask]


def decide_encoding(kinds: List[Tuple[str, str]]) -> str:
    """``'0-1'`` or ``'0-255'`` for a dataset from the (path,
    :func:`mask_kind`) of all its masks; masks that disagree, or are all
    ambiguous, raise a ValueError naming a file of each kind."""
    first = {}
    for path, kind in kinds:
        first.setdefault('0-M' if kind == 'other' else kind, path)
    ones, high, either = (first.get(k) for k in ('0-1', '0-M', 'either'))
    fix = ("Set mask_encoding='0-1' (0/1 labels, 255 = void) or '0-255' on "
           'the dataset, or re-export the masks alike.')
    if high and (ones or either):
        other = ones or either
        held = '0/1' if ones else '0, 1 and 255'
        raise ValueError(
            f'Masks disagree: {other!r} holds {held} (0/1 labels?) but '
            f'{high!r} holds 0/255. {fix}')
    if either and not ones:
        raise ValueError(
            f'Masks are ambiguous: {either!r} and all others with values '
            'hold 0, 1 and 255 (0/1 labels, 255 = void, or 0/255 with stray '
            f'1s?). {fix}')
    return '0-1' if ones else '0-255'


@TRANSFORMS.register_module()
class LoadBinaryAnnotations(LoadAnnotations):
    """Load a binary mask as (H, W) uint8 ``gt_seg_map`` 0/1 (255 void).

    The encoding is the dataset's unless given here.

    Args:
        mask_encoding (str, optional): ``'auto'``, ``'0-255'`` or ``'0-1'``.
        void_value (int, optional): Stored value of void pixels.
        invert_masks (bool, optional): The stored low value is the object.
        **kwargs: See mmseg's ``LoadAnnotations``.
    """

    def __init__(self,
                 mask_encoding: Optional[str] = None,
                 void_value: Optional[int] = None,
                 invert_masks: Optional[bool] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if mask_encoding is not None:
            check_encoding(mask_encoding)
        self.mask_encoding = mask_encoding
        self.void_value = void_value
        self.invert_masks = invert_masks

    def _load_seg_map(self, results: dict) -> None:
        if 'seg_map_path' not in results:
            return
        path = results['seg_map_path']
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as err:
            raise FileNotFoundError(f'Mask file {path!r} not found (image '
                                    f'{results.get("img_path")!r}).') from err

        def setting(name):
            own = getattr(self, name)
            return own if own is not None else results.get(name)

        mask = binarize_mask(
            read_binary_mask(data, path, self.imdecode_backend),
            path,
            encoding=setting('mask_encoding') or 'auto',
            void_value=setting('void_value'),
            invert=bool(setting('invert_masks')))
        shape = results.get('ori_shape')
        if shape is not None and tuple(mask.shape) != tuple(shape[:2]):
            raise ValueError(
                f'Mask {path!r} is {mask.shape[1]}x{mask.shape[0]} (WxH) but '
                f'its image {results.get("img_path")!r} is {shape[1]}x'
                f'{shape[0]}. Image and mask must have the same size.')
        results['gt_seg_map'] = mask
        results['seg_fields'].append('gt_seg_map')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(mask_encoding={self.mask_encoding!r}'
                f', void_value={self.void_value!r}, invert_masks='
                f'{self.invert_masks!r})')
