from .binary_loading import LoadBinaryAnnotations, binarize_mask
from .check_image import CheckImage
from .check_seg_labels import CheckSegLabels
from .image_loading import LoadImageChecked
from .pack_cad_inputs import PackCADInputs
from .resize_cad_image import ResizeCADImage
from .trans10k_loading import LoadTrans10KAnnotations

__all__ = [
    'CheckImage', 'CheckSegLabels', 'LoadBinaryAnnotations',
    'LoadImageChecked', 'LoadTrans10KAnnotations', 'PackCADInputs',
    'ResizeCADImage', 'binarize_mask'
]
