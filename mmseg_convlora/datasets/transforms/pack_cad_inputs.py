"""``PackSegInputs`` that also packs the image kept for CAD."""
import mmcv
import numpy as np
from mmcv.transforms import to_tensor
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackCADInputs(PackSegInputs):
    """``PackSegInputs`` that also packs the image kept by
    :class:`ResizeCADImage`, flipped as ``RandomFlip`` flipped the network
    input, as the data sample's ``cad_image`` ((3, size, size) uint8).
    Transforms other than flips between the two steps are not followed.
    """

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
