"""Keep the original image, resized straight to CAD's input size."""
import mmcv
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class ResizeCADImage(BaseTransform):
    """Keep the image resized to ``size x size`` as ``cad_img`` (CAD's input).

    Args:
        size (int): Square output size, the CAD adapter's ``input_size``.
        to_rgb (bool): BGR -> RGB.
        interpolation (str): ``mmcv.imresize`` interpolation.
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
                'before Resize and RandomFlip (once): it keeps the original '
                f'image, but the results already hold {moved}.')
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
