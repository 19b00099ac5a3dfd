"""``PackSegInputs`` that also packs the image kept for CAD."""
import mmcv
import numpy as np
from mmcv.transforms import to_tensor
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackCADInputs(PackSegInputs):
    """Also packs :class:`ResizeCADImage`'s image as ``cad_image`` ((3, S, S)
    uint8), flipped as ``RandomFlip`` flipped the input (no other step
    between the two is followed)."""

    def transform(self, results: dict) -> dict:
        if 'cad_img' not in results:
            raise ValueError(
                'PackCADInputs packs the image that ResizeCADImage keeps, '
                "but there is none: add dict(type='ResizeCADImage', "
                'size=512) right after the image loading step, or use '
                'PackSegInputs.')
        cad = results['cad_img']
        if results.get('flip', False):
            cad = mmcv.imflip(cad, direction=results['flip_direction'])
        packed = super().transform(results)
        if cad.ndim == 2:
            cad = cad[..., None]
        packed['data_samples'].set_field(
            to_tensor(np.ascontiguousarray(cad.transpose(2, 0, 1))),
            'cad_image')
        return packed
