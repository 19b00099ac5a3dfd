"""Keep the original image, resized straight to CAD's input size."""
import mmcv
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class ResizeCADImage(BaseTransform):
    """Keep a copy of the original image resized to ``size x size`` for CAD.

    CAD's reference code feeds its adapter the original image resized
    straight to 512 x 512; without this step :class:`CAD` builds its input by
    downsampling the 1024 x 1024 network input instead (a different image:
    two resizes, the first one an enlargement). Place this step right after
    the image is loaded, before ``Resize`` and ``RandomFlip``, and pack with
    :class:`PackCADInputs` (which applies ``RandomFlip``'s decision to the
    copy and stores it in the data sample as ``cad_image``).

    Required keys: ``img``. Added keys: ``cad_img`` ((size, size, 3)
    uint8, RGB with ``to_rgb=True``).

    Args:
        size (int): Square output size; must equal the CAD adapter's
            ``input_size``. Default 512.
        to_rgb (bool): Convert the loaded BGR image to RGB, the channel
            order ``SegDataPreProcessor(bgr_to_rgb=True)`` gives the network
            input and thus CAD's fallback input. Default True.
        interpolation (str): ``mmcv.imresize`` interpolation. Default
            'bilinear' (as mmseg's ``Resize``).
    """

    def __init__(self,
                 size: int = 512,
                 to_rgb: bool = True,
                 interpolation: str = 'bilinear'):
        if not isinstance(size, int) or size <= 0:
            raise ValueError(
                f'ResizeCADImage size must be a positive int, got {size!r}.')
        self.size = size
        self.to_rgb = to_rgb
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        moved = [key for key in ('scale', 'flip', 'cad_img') if key in results]
        if moved:
            raise ValueError(
                'ResizeCADImage must come right after the image is loaded, '
                'before Resize and RandomFlip (and only once): it keeps the '
                f'original image, but the results already hold {moved}. '
                'Move it up in the pipeline.')
        img = results['img']
        cad = mmcv.imresize(
            img, (self.size, self.size), interpolation=self.interpolation)
        if self.to_rgb:
            cad = mmcv.bgr2rgb(cad)
        results['cad_img'] = cad
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, '
                f'to_rgb={self.to_rgb}, '
                f'interpolation={self.interpolation!r})')
