"""Bring a loaded image to 8-bit, 3-channel BGR."""
import logging
import math
import os.path as osp
import struct
from typing import Optional, Set

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS

EXIF_MODES = ('ignore', 'apply')
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_warned: Set[str] = set()  # per process; datasets warn once when built


def warn(message: str) -> None:
    print_log(message, logger='current', level=logging.WARNING)


def warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warn(message)


def unreadable_error(path: str,
                     what: str = 'Image',
                     size: Optional[int] = None) -> ValueError:
    """The error for an image (or mask) file that does not decode."""
    if size is None:
        size = osp.getsize(path) if osp.isfile(path) else 0
    why = 'is an empty file (0 bytes)' if not size else \
        f'could not be decoded ({size} bytes): it is truncated, corrupt or ' \
        'not an image'
    return ValueError(f'{what} {path!r} {why}. Re-download or re-export it, '
                      'or remove it and its pair from the dataset.')


def png_significant_bits(data: bytes) -> Optional[int]:
    """The bit depth a PNG's ``sBIT`` chunk declares (the largest over its
    channels), or None."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        if kind == b'sBIT':
            bits = data[pos + 8:pos + 8 + length]
            return max(bits) if bits else None
        if kind == b'IDAT':
            return None
        pos += 12 + length
    return None


def depth_holding(top: int) -> int:
    """The smallest even bit depth of at least 8 that holds ``top``."""
    bits = max(8, math.ceil(math.log2(int(top) + 1)))
    return min(16, bits + bits % 2)


def to_8_bit(img: np.ndarray, bits: Optional[int] = None) -> np.ndarray:
    """Scale a uint16 image by ``255 / (2**bits - 1)`` to uint8 (``bits``
    default: :func:`depth_holding` its maximum)."""
    if bits is None:
        bits = depth_holding(img.max() if img.size else 0)
    scale = 255.0 / (2**int(bits) - 1)
    return np.clip(np.rint(img.astype(np.float32) * scale), 0,
                   255).astype(np.uint8)


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip ``img`` (H, W, C) as viewers show EXIF ``orientation``."""
    if orientation in (5, 6, 7, 8):  # transposed, then flipped as 1..4
        img, orientation = np.swapaxes(img, 0, 1), orientation - 4
    rows, cols = {2: (1, -1), 3: (-1, -1), 4: (-1, 1)}.get(orientation, (1, 1))
    return np.ascontiguousarray(img[::rows, ::cols])


def check_settings(exif_orientation: str, bit_depth: Optional[int],
                   who: str) -> None:
    """Refuse an unknown ``exif_orientation`` or a ``bit_depth`` outside
    8..16 given to ``who``."""
    if exif_orientation not in EXIF_MODES:
        raise ValueError(f'{who}: exif_orientation must be one of '
                         f'{EXIF_MODES}, got {exif_orientation!r}.')
    if bit_depth is not None and not 8 <= int(bit_depth) <= 16:
        raise ValueError(f'{who}: bit_depth must be in 8..16, got '
                         f'{bit_depth}.')


def orientation_of(pil) -> int:
    """The EXIF orientation of an opened PIL image (1, upright, if none)."""
    if pil.format == 'PNG':  # getexif() would decode a PNG to find eXIf
        from PIL import Image
        exif = Image.Exif()
        if pil.info.get('exif'):
            exif.load(pil.info['exif'])
    else:
        exif = pil.getexif()
    return int(exif.get(0x0112, 1) or 1)


def exif_message(what: str, orientation_mode: str) -> str:
    done = ("read as stored, like the masks (exif_orientation='ignore')"
            if orientation_mode == 'ignore' else
            "rotated as displayed (exif_orientation='apply'); masks are "
            'read as stored')
    return (f'{what} (viewers show it rotated or flipped): {done}. Set '
            "exif_orientation='apply' on the dataset if the masks were drawn "
            "on the images as displayed, 'ignore' if on the stored pixels.")


@TRANSFORMS.register_module()
class CheckImage(BaseTransform):
    """Bring an image to (H, W, 3) uint8 BGR after
    ``LoadImageFromFile(color_type='unchanged')``; see ``docs/own_data.md``.

    Args:
        exif_orientation (str, optional): ``'ignore'`` or ``'apply'``.
            Default: the sample's (set by the dataset), else ``'ignore'``.
        bit_depth (int, optional): Bit depth of 16-bit images (8..16).
    """

    def __init__(self,
                 exif_orientation: Optional[str] = None,
                 bit_depth: Optional[int] = None):
        check_settings(
            'ignore' if exif_orientation is None else exif_orientation,
            bit_depth,
            type(self).__name__)
        self.exif_orientation = exif_orientation
        self.bit_depth = bit_depth

    def transform(self, results: dict) -> dict:
        img, path = results['img'], results.get('img_path')
        name = repr(path) if path else 'The image array'
        if img.dtype not in (np.uint8, np.uint16):
            kind = 'floating-point' if img.dtype.kind == 'f' else 'integer'
            raise ValueError(f'Image {name} holds {kind} pixels ({img.dtype}'
                             ') of unknown range: convert it to an 8-bit (or '
                             '16-bit) PNG/JPEG.')
        if img.ndim == 2:
            img = img[..., None]
        if img.shape[2] in (2, 4):  # gray + alpha, BGRA: alpha dropped
            img = img[..., :img.shape[2] - 1]
        if img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        if img.dtype == np.uint16:
            img = to_8_bit(img, self._bits(results, path))
        mode = self.exif_orientation or results.get(
            'exif_orientation') or 'ignore'
        orientation = results.get('img_orientation')
        if orientation is None and path:  # not from one of our datasets
            try:
                from PIL import Image
                with Image.open(path) as pil:
                    orientation = orientation_of(pil)
            except Exception:  # no EXIF reader for it: cv2 read it as stored
                orientation = 1
            if orientation != 1:
                warn_once(
                    f'exif:{path}',
                    exif_message(
                        f'Image {path!r} carries EXIF orientation '
                        f'{orientation}', mode))
        if mode == 'apply' and orientation and orientation != 1:
            img = apply_orientation(img, orientation)
        results['img'] = img
        results['img_shape'] = results['ori_shape'] = img.shape[:2]
        return results

    def _bits(self, results: dict, path: Optional[str]) -> Optional[int]:
        bits = self.bit_depth or results.get('bit_depth')
        if bits is None and path:
            with open(path, 'rb') as f:
                bits = png_significant_bits(f.read(1 << 16))
        if bits is None:
            warn_once(
                f'bits:{path}',
                f'16-bit image {path or "array"!r} has no declared bit '
                'depth: scaled by its own maximum. Set bit_depth on '
                'CheckImage (or on the dataset) to scale every image alike.')
        return bits

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(exif_orientation='
                f'{self.exif_orientation!r}, bit_depth={self.bit_depth!r})')
