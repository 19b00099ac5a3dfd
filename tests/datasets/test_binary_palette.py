"""Overlays of binary datasets are readable: mmseg's visualizer writes the
class name in white on a box of the class colour."""
import pytest
from mmseg.registry import DATASETS

BINARY = ('BinarySegDataset', 'SBUShadowDataset', 'ISTDShadowDataset',
          'PolypDataset', 'CamouflageDataset', 'ISIC2017Dataset',
          'LeafDiseaseDataset', 'MassRoadsDataset')


def relative_luminance(rgb):
    """WCAG 2 relative luminance of an sRGB colour (0-255)."""
    channels = []
    for c in rgb:
        c = c / 255
        channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) /
                                                        1.055)**2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize('name', BINARY)
def test_white_label_on_foreground_colour_is_readable(name):
    palette = DATASETS.get(name).METAINFO['palette']
    contrast = 1.05 / (relative_luminance(palette[1]) + 0.05)
    assert contrast >= 3.0, (name, palette[1], contrast)  # WCAG large text
