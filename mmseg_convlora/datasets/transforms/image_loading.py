"""Loading images with errors that name the file and the fix."""
import io
import logging
import math
import struct
from typing import Optional, Set

import cv2
import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS

EXIF_MODES = ('ignore', 'apply')
_EXIF_ORIENTATION = 0x0112
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_warned_exif: Set[str] = set()  # per process (each dataloader worker)


def pil_image(data: bytes):
    """The lazily opened PIL image (header only), or None."""
    try:
        from PIL import Image
        return Image.open(io.BytesIO(data))
    except Exception:  # not an image PIL knows; cv2 may still decode it
        return None


def exif_orientation(pil) -> int:
    """The EXIF orientation tag of a PIL image (1, upright, if none)."""
    try:
        return int(pil.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a broken EXIF block must not stop the loading
        return 1


def png_significant_bits(data: bytes) -> Optional[int]:
    """The bit depth a PNG's ``sBIT`` chunk declares (the largest over its
    channels), or None when the file is not a PNG or has no such chunk."""
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


def to_8_bit(img: np.ndarray, bits: Optional[int] = None) -> np.ndarray:
    """Scale a 16-bit image to 8 bits by its bit depth.

    ``bits`` None: the smallest even depth of at least 8 bits that holds
    the image's maximum (12-bit data in a 16-bit file -> 12, full-range
    16-bit data -> 16). Values are scaled by ``255 / (2**bits - 1)`` and
    rounded, so the depth's maximum becomes 255 (a fixed ``/ 256`` would
    leave 12-bit data almost black).
    """
    if bits is None:
        top = int(img.max()) if img.size else 0
        bits = max(8, math.ceil(math.log2(top + 1)))
        bits = min(16, bits + bits % 2)
    scale = 255.0 / (2**int(bits) - 1)
    return np.clip(np.rint(img.astype(np.float32) * scale), 0,
                   255).astype(np.uint8)


def decode_image(data: bytes,
                 path: str,
                 exif: str = 'ignore',
                 bit_depth: Optional[int] = None) -> np.ndarray:
    """Decode an image file's bytes to 8-bit, 3-channel BGR.

    As mmcv's default (``cv2.IMREAD_COLOR``): grayscale is repeated over 3
    channels, the alpha channel of RGBA (or gray + alpha) is dropped and
    palette images give their colours. Besides:

    * **EXIF orientation** (``exif``): ``'ignore'`` (default) reads the
      pixels as stored, as masks are read, so image and mask stay aligned;
      ``'apply'`` rotates/flips the image as viewers display it (for masks
      drawn on the displayed image). Either way an image with a non-trivial
      orientation is warned about once per file.
    * **16-bit images** are scaled to 8 bits by their bit depth
      (:func:`to_8_bit`): ``bit_depth`` if given, else the PNG's ``sBIT``
      chunk, else the depth inferred from the image's maximum.

    Raises:
        ValueError: The file is empty, truncated, corrupt, not an image, or a
            floating-point image (whose value range is not known).
    """
    if not data:
        raise ValueError(
            f'Image {path!r} is an empty file (0 bytes). Re-download or '
            're-export it, or remove it (and its mask) from the dataset.')
    if exif not in EXIF_MODES:
        raise ValueError(f'exif_orientation must be one of {EXIF_MODES}, '
                         f'got {exif!r}.')
    pil = pil_image(data)
    mode = getattr(pil, 'mode', None)
    if mode is not None and mode.startswith('F'):
        raise ValueError(
            f'Image {path!r} holds floating-point pixels (PIL mode '
            f'{mode!r}), whose value range is unknown. Convert it to an '
            '8-bit (or 16-bit) PNG/JPEG first.')
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    if exif == 'ignore':
        flags |= cv2.IMREAD_IGNORE_ORIENTATION
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        kind = f'a {pil.format} image that does not decode' if pil is not \
            None and pil.format else 'not an image format OpenCV reads'
        raise ValueError(
            f'Image {path!r} could not be decoded ({len(data)} bytes; '
            f'{kind}): the file is truncated, corrupt or not an image. '
            'Re-download or re-export it, or remove it (and its mask) from '
            'the dataset.')
    if img.dtype == np.uint16:
        img = to_8_bit(img, bit_depth or png_significant_bits(data))
    elif img.dtype != np.uint8:
        raise ValueError(
            f'Image {path!r} holds {img.dtype} pixels, whose value range is '
            'unknown. Convert it to an 8-bit (or 16-bit) PNG/JPEG first.')
    orientation = exif_orientation(pil) if pil is not None else 1
    if orientation != 1 and path not in _warned_exif:
        _warned_exif.add(path)
        done = ('read as stored, like its mask (the dataset\'s '
                "exif_orientation='ignore')" if exif == 'ignore' else
                "rotated as displayed (exif_orientation='apply'); its mask "
                'is read as stored')
        print_log(
            f'Image {path!r} carries EXIF orientation {orientation} (viewers '
            f'show it rotated or flipped); it is {done}. If the mask was '
            'drawn on the image as displayed, set '
            "exif_orientation='apply' on the dataset; if on the stored "
            "pixels, 'ignore'.",
            logger='current',
            level=logging.WARNING)
    return img


@TRANSFORMS.register_module()
class LoadImageChecked(LoadImageFromFile):
    """``LoadImageFromFile`` with errors that name the file and the fix.

    Drop-in replacement for mmcv's transform (same arguments and keys). With
    the defaults (``color_type='color'``, ``imdecode_backend='cv2'``) every
    image becomes 8-bit, 3-channel BGR (see :func:`decode_image`): grayscale
    -> 3 equal channels, RGBA -> alpha dropped, palette -> its colours,
    16-bit -> scaled to 8 bits by its bit depth; the EXIF orientation is
    ignored by default (image and mask are both read as stored) and warned
    about. A missing, empty, truncated or undecodable file, or a
    floating-point image, raises an error naming the file (mmcv raises
    ``AssertionError: failed to load image``). Other ``color_type`` or
    backends use mmcv's decoding, with the same error messages.

    Required keys: ``img_path``. Added keys: ``img``, ``img_shape``,
    ``ori_shape``.

    Args:
        exif_orientation (str, optional): ``'ignore'`` or ``'apply'`` (see
            :func:`decode_image`). Default: the sample's
            ``exif_orientation`` (set by the dataset), else ``'ignore'``.
        bit_depth (int, optional): Bit depth of 16-bit files (e.g. 12).
            Default: the PNG's ``sBIT`` chunk, else inferred per image.
        **kwargs: See mmcv's ``LoadImageFromFile``.
    """

    def __init__(self,
                 exif_orientation: Optional[str] = None,
                 bit_depth: Optional[int] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if exif_orientation is not None and \
                exif_orientation not in EXIF_MODES:
            raise ValueError(f'exif_orientation must be one of '
                             f'{EXIF_MODES}, got {exif_orientation!r}.')
        if bit_depth is not None and not 8 <= int(bit_depth) <= 16:
            raise ValueError(f'bit_depth must be in 8..16, got {bit_depth}.')
        self.exif_orientation = exif_orientation
        self.bit_depth = bit_depth

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
                img = decode_image(
                    data, path, self.exif_orientation
                    or results.get('exif_orientation') or 'ignore',
                    self.bit_depth)
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
