"""Loading images with errors that name the file and the fix."""
import io
from typing import Optional

import cv2
import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmseg.registry import TRANSFORMS


def pil_image(data: bytes):
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
    pil = pil_image(data)
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
