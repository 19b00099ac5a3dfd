"""Loading Trans10K v1 (colour-coded) and v2 (class-id) masks as class ids."""
import io
from typing import Dict, Optional

import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from PIL import Image

# ids in the order of the official loaders
TRANS10K_METAINFO: Dict[str, dict] = {
    'v1':
    dict(
        classes=('background', 'things', 'stuff'),
        palette=[[0, 0, 0], [255, 0, 0], [255, 255, 255]]),
    'v2':
    dict(
        classes=('background', 'shelf', 'jar or tank', 'freezer', 'window',
                 'glass door', 'eyeglass', 'cup', 'wall', 'glass bowl',
                 'water bottle', 'storage box'),
        palette=[[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0],
                 [0, 0, 128], [128, 0, 128], [0, 128, 128], [128, 128, 128],
                 [64, 0, 0], [192, 0, 0], [64, 128, 0], [192, 128, 0]]),
}

# RGB colour -> class id for v1
TRANS10K_V1_COLORS: Dict[tuple, int] = {
    (0, 0, 0): 0,
    (255, 0, 0): 1,
    (0, 255, 0): 1,
    (0, 0, 255): 1,
    (255, 255, 255): 2
}


def _listed(values: list, n: int = 10) -> str:
    return f'{values[:n]}{" ..." if len(values) > n else ""}'


def decode_trans10k_mask(mask: np.ndarray,
                         version: str,
                         filename: str = '<array>',
                         ignore_index: int = 255) -> np.ndarray:
    """Decode a Trans10K mask to class ids.

    Args:
        mask (np.ndarray): (H, W) or (H, W, 3|4) RGB, as PIL reads it.
        version (str): 'v1' or 'v2'.

    Returns:
        np.ndarray: (H, W) uint8 class ids (``ignore_index`` in v2).
    """
    if version == 'v1':
        if mask.ndim == 2:
            mask = np.repeat(mask[..., None], 3, axis=2)
        rgb = mask[..., :3].astype(np.int64)
        # One int per colour so that the lookup is a vectorised np.unique.
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        uniq, inverse = np.unique(codes, return_inverse=True)
        colours = [(int(c) >> 16, (int(c) >> 8) & 255, int(c) & 255)
                   for c in uniq]
        bad = [c for c in colours if c not in TRANS10K_V1_COLORS]
        if bad:
            raise ValueError(
                f'Trans10K v1 mask {filename} contains {len(bad)} unknown '
                f'RGB colour(s) {_listed(bad)}; expected only '
                f'{sorted(TRANS10K_V1_COLORS)} (black = background, a pure '
                'primary = things, white = stuff).')
        lut = np.array([TRANS10K_V1_COLORS[c] for c in colours], np.uint8)
        return lut[inverse.reshape(codes.shape)]
    if version != 'v2':
        raise ValueError(
            f"Trans10K version must be 'v1' or 'v2', got {version!r}")
    num_classes = len(TRANS10K_METAINFO['v2']['classes'])
    if mask.ndim == 3:
        # a grey index map saved as RGB(A) is fine; colours are not ids
        rgb = mask[..., :3]
        if not ((rgb == rgb[..., :1]).all()):
            raise ValueError(
                f'Trans10K v2 mask {filename} is a colour image; expected a '
                'single-channel (L or P mode) PNG of class ids '
                f'0..{num_classes - 1}.')
        mask = rgb[..., 0]
    values = np.unique(mask)
    bad = [
        int(v) for v in values
        if not (0 <= v < num_classes or v == ignore_index)
    ]
    if bad:
        raise ValueError(
            f'Trans10K v2 mask {filename} contains unknown value(s) '
            f'{_listed(bad)}; expected class ids 0..{num_classes - 1} or '
            f'ignore_index {ignore_index}.')
    return mask.astype(np.uint8)


def _read_pil(path: str, backend_args: Optional[dict]) -> Image.Image:
    return Image.open(io.BytesIO(fileio.get(path, backend_args=backend_args)))


@TRANSFORMS.register_module()
class LoadTrans10KAnnotations(BaseTransform):
    """Load a Trans10K mask as (H, W) uint8 class ids ``gt_seg_map``.

    Args:
        version (str, optional): 'v1' or 'v2'. Default: the sample's
            ``trans10k_version`` (set by :class:`Trans10KDataset`).
        ignore_index (int): Ignore value accepted in v2 masks.
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self,
                 version: Optional[str] = None,
                 ignore_index: int = 255,
                 backend_args: Optional[dict] = None) -> None:
        if version not in (None, 'v1', 'v2'):
            raise ValueError(
                f"version must be 'v1', 'v2' or None, got {version!r}")
        self.version = version
        self.ignore_index = ignore_index
        self.backend_args = backend_args.copy() if backend_args else None

    def transform(self, results: dict) -> dict:
        if 'seg_map_path' not in results:
            return results
        version = self.version or results.get('trans10k_version')
        if version is None:
            raise ValueError(
                "LoadTrans10KAnnotations needs version='v1' or "
                "'v2' (or trans10k_version from Trans10KDataset).")
        if results.get('reduce_zero_label', False):
            raise ValueError('reduce_zero_label=True makes no sense for '
                             'Trans10K: 0 is the real background class.')
        seg_path = results['seg_map_path']
        with _read_pil(seg_path, self.backend_args) as pil:
            # v2 index maps: palette indices / grey levels are the ids; else
            # the displayed RGB, alpha dropped as by the official ``[..., :3]``
            rgb = version == 'v1' or pil.mode not in ('L', 'P', 'I', 'I;16')
            raw = np.asarray(pil.convert('RGB') if rgb else pil)
        gt = decode_trans10k_mask(raw, version, seg_path, self.ignore_index)

        img_hw = results.get('ori_shape')
        if img_hw is None and results.get('img') is not None:
            img_hw = results['img'].shape
        if img_hw is None and results.get('img_path'):
            # PIL reads only the header here, not the pixels.
            pil = _read_pil(results['img_path'], self.backend_args)
            img_hw = pil.size[::-1]
        if img_hw is not None and tuple(gt.shape) != tuple(img_hw[:2]):
            raise ValueError(
                f'Trans10K mask {seg_path} is {gt.shape[1]}x{gt.shape[0]} '
                f'(WxH) but its image {results.get("img_path", "<unknown>")}'
                f' is {img_hw[1]}x{img_hw[0]}.')

        decoded = gt
        for old_id, new_id in (results.get('label_map') or {}).items():
            gt = np.where(decoded == old_id, new_id, gt)
        results['gt_seg_map'] = gt
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(version={self.version!r}, '
                f'ignore_index={self.ignore_index}, '
                f'backend_args={self.backend_args})')
