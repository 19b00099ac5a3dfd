"""The bad-input matrix (issue 8): each row is refused with an error naming
the file or key and the fix, or handled where its meaning is clear.

Rows already tested elsewhere are named in the table instead of being
duplicated:

==========================================  ===================================
row                                         test
==========================================  ===================================
unreadable / truncated / empty / missing    here (``LoadImageChecked``)
image
image and mask of different sizes           here (real pipeline) +
                                            test_binary_loading (transform)
grayscale, RGBA, 16-bit, palette images     here (converted), float refused
palette / gray+alpha / 1-bit masks          here
mask neither binary ...                     test_binary_loading
... nor valid class ids                     here (``CheckSegLabels``) +
                                            mask-classification loss,
                                            Trans10K loader
empty or misnamed dataset folder            test_binary_loading + here
                                            (wrong image suffix)
SAM checkpoint missing / truncated /        test_sam_vit
other arch / not SAM
resume checkpoint of another method/arch    here
impossible adapter settings                 here + test_lora / test_conv_lora
                                            / test_cad
==========================================  ===================================
"""
import os

import cv2
import numpy as np
import pytest
from mmseg.registry import DATASETS, MODELS, TRANSFORMS
from PIL import Image

from mmseg_convlora.engine.hooks import TrainableCheckpointHook
from mmseg_convlora.models.adapters import CAD, ConvLoRA, LoRA
from helpers import build_tiny_sam, tiny_model_cfg


# ----------------------------------------------------------------- images
def load_image(path):
    t = TRANSFORMS.build(dict(type='LoadImageChecked'))
    return t(dict(img_path=str(path)))


def jpeg_bytes(h=32, w=40):
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8),
                           (5, 5), 2)
    return cv2.imencode('.jpg', img)[1].tobytes()


def png_bytes(h=32, w=40):
    rng = np.random.default_rng(0)
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    return cv2.imencode('.png', img)[1].tobytes()


@pytest.mark.parametrize(
    'name,data,match', [
        ('garbage.jpg', b'this is not an image at all',
         'could not be decoded'),
        ('truncated.jpg', jpeg_bytes()[:900], 'truncated'),
        ('truncated.png', png_bytes()[:2000], 'truncated'),
        ('empty.jpg', b'', 'empty file'),
    ],
    ids=['garbage', 'truncated-jpeg', 'truncated-png', 'empty'])
def test_unreadable_or_truncated_image_names_file_and_fix(
        tmp_path, name, data, match):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValueError, match=match) as err:
        load_image(path)
    msg = str(err.value)
    assert str(path) in msg and 'remove it' in msg


def test_missing_image_names_file_and_config_keys(tmp_path):
    path = tmp_path / 'nope.jpg'
    with pytest.raises(FileNotFoundError) as err:
        load_image(path)
    assert str(path) in str(err.value) and 'data_prefix' in str(err.value)


def test_float_image_refused(tmp_path):
    path = tmp_path / 'float.tiff'
    Image.fromarray(np.random.rand(8, 8).astype(np.float32), 'F').save(path)
    with pytest.raises(ValueError, match='floating-point') as err:
        load_image(path)
    assert str(path) in str(err.value)


def test_grayscale_image_becomes_three_equal_channels(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    cv2.imwrite(str(tmp_path / 'g.png'), gray)
    res = load_image(tmp_path / 'g.png')
    assert res['img'].shape == (6, 8, 3) and res['img'].dtype == np.uint8
    for c in range(3):
        assert (res['img'][..., c] == gray).all()
    assert res['ori_shape'] == (6, 8)


def test_rgba_image_drops_alpha(tmp_path):
    bgra = np.zeros((5, 7, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2] = 10, 20, 30
    bgra[:, :3, 3] = 0  # transparent part keeps its colour
    bgra[:, 3:, 3] = 255
    cv2.imwrite(str(tmp_path / 'a.png'), bgra)
    img = load_image(tmp_path / 'a.png')['img']
    assert img.shape == (5, 7, 3)
    assert (img == np.array([10, 20, 30], np.uint8)).all()


def test_16_bit_image_scaled_to_8_bit(tmp_path):
    img16 = np.array([[0, 256, 32768, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / 'd.png'), img16)
    img = load_image(tmp_path / 'd.png')['img']
    assert img.dtype == np.uint8 and img.shape == (1, 4, 3)
    # 16-bit range: x * 255 / 65535, rounded
    assert img[0, :, 0].tolist() == [0, 1, 128, 255]


def png_with_sbit(img16, bits):
    """A 16-bit gray PNG carrying an sBIT chunk (significant bits)."""
    import struct
    import zlib
    data = cv2.imencode('.png', img16)[1].tobytes()
    chunk = b'sBIT' + bytes([bits])
    sbit = struct.pack('>I', 1) + chunk + struct.pack(
        '>I',
        zlib.crc32(chunk) & 0xffffffff)
    end_ihdr = 8 + 8 + 13 + 4  # signature, IHDR header, data, CRC
    return data[:end_ihdr] + sbit + data[end_ihdr:]


def test_12_bit_data_in_a_16_bit_png_uses_its_range(tmp_path):
    """12-bit sensor data (0..4095) in a 16-bit PNG: scaled by 12 bits, not
    by 16 (which would make it almost black)."""
    img12 = np.array([[0, 1024, 2048, 4095]], np.uint16)
    cv2.imwrite(str(tmp_path / 'd12.png'), img12)
    expected = [round(v * 255 / 4095) for v in (0, 1024, 2048, 4095)]
    assert load_image(tmp_path / 'd12.png')['img'][0, :, 0].tolist() == \
        expected == [0, 64, 128, 255]
    # a declared depth wins over the inferred one: sBIT chunk ...
    dark = np.array([[0, 500, 1000]], np.uint16)  # inferred: 10 bits
    (tmp_path / 'sbit.png').write_bytes(png_with_sbit(dark, 12))
    assert load_image(tmp_path / 'sbit.png')['img'][0, :, 0].tolist() == [
        0, round(500 * 255 / 4095),
        round(1000 * 255 / 4095)
    ]
    # ... and the transform's bit_depth
    cv2.imwrite(str(tmp_path / 'dark.png'), dark)
    t = TRANSFORMS.build(dict(type='LoadImageChecked', bit_depth=16))
    assert t(dict(img_path=str(tmp_path /
                               'dark.png')))['img'][0, :,
                                                    0].tolist() == [0, 2, 4]


# ------------------------------------------------------ EXIF orientation
def exif_jpeg(path, rgb, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), quality=100)


def stored_pixels(path):
    return cv2.imread(
        str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)


def test_exif_orientation_ignored_by_default_and_warned(tmp_path, capture_log):
    """Masks are never rotated, so by default images are not either: a
    square image keeps its pixels aligned with its mask, and a warning
    names the file."""
    from mmengine.logging import MMLogger
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:4] = 255  # a white top band
    path = tmp_path / 'rotated.jpg'
    exif_jpeg(path, rgb, orientation=6)  # displayed rotated by 90 degrees
    assert not (cv2.imread(str(path)) == stored_pixels(path)).all()
    log = capture_log(MMLogger.get_current_instance())
    img = load_image(path)['img']
    assert (img == stored_pixels(path)).all()
    text = log.text()
    assert str(path) in text and 'EXIF orientation 6' in text
    assert "exif_orientation='apply'" in text
    # 'apply' rotates it as viewers show it
    t = TRANSFORMS.build(
        dict(type='LoadImageChecked', exif_orientation='apply'))
    assert (t(dict(img_path=str(path)))['img'] == cv2.imread(str(path))).all()


def test_non_square_exif_image_loads_with_its_mask(tmp_path):
    """Before, the image was rotated and the size check blamed the mask."""
    exif_jpeg(tmp_path / 'x.jpg', np.zeros((8, 12, 3), np.uint8), 8)
    cv2.imwrite(str(tmp_path / 'x.png'), np.zeros((8, 12), np.uint8))
    results = load_image(tmp_path / 'x.jpg')
    results.update(
        seg_map_path=str(tmp_path / 'x.png'),
        seg_fields=[],
        reduce_zero_label=False)
    out = TRANSFORMS.build(dict(type='LoadBinaryAnnotations'))(results)
    assert out['img'].shape[:2] == out['gt_seg_map'].shape == (8, 12)


def test_palette_image_gives_its_colours(tmp_path):
    index = np.array([[0, 1], [1, 0]], np.uint8)
    pal = Image.fromarray(index, 'P')
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # red, blue
    pal.save(tmp_path / 'p.png')
    img = load_image(tmp_path / 'p.png')['img']  # BGR
    assert img[0, 0].tolist() == [0, 0, 255
                                  ] and img[0, 1].tolist() == [255, 0, 0]


def test_image_and_mask_of_different_sizes_in_the_real_pipeline(tmp_path):
    cv2.imwrite(str(tmp_path / 'x.jpg'), np.zeros((8, 10, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'x.png'), np.zeros((8, 9), np.uint8))
    results = load_image(tmp_path / 'x.jpg')
    results.update(
        seg_map_path=str(tmp_path / 'x.png'),
        seg_fields=[],
        reduce_zero_label=False)
    with pytest.raises(ValueError, match='same size') as err:
        TRANSFORMS.build(dict(type='LoadBinaryAnnotations'))(results)
    assert 'x.png' in str(err.value) and 'x.jpg' in str(err.value)


# ------------------------------------------------------------------ masks
def load_mask(path):
    t = TRANSFORMS.build(dict(type='LoadBinaryAnnotations'))
    return t(
        dict(seg_map_path=str(path), seg_fields=[],
             reduce_zero_label=False))['gt_seg_map']


def save_palette(path, index, palette):
    img = Image.fromarray(np.asarray(index, np.uint8), 'P')
    img.putpalette(list(palette) + [0] * (768 - len(palette)))
    img.save(path)


def test_palette_mask_with_gray_colours_is_read_by_colour(tmp_path):
    # index 0 drawn white, index 1 drawn black: the foreground is index 0
    save_palette(tmp_path / 'm.png', [[0, 1], [1, 1]],
                 [255, 255, 255, 0, 0, 0])
    assert load_mask(tmp_path / 'm.png').tolist() == [[1, 0], [0, 0]]


def test_palette_mask_with_colours_is_read_by_index(tmp_path):
    # VOC style: index = label, colours only for display
    save_palette(tmp_path / 'm.png', [[0, 1], [1, 0]], [0, 0, 0, 128, 0, 0])
    assert load_mask(tmp_path / 'm.png').tolist() == [[0, 1], [1, 0]]


def test_palette_mask_with_class_ids_refused(tmp_path):
    save_palette(tmp_path / 'ids.png', [[0, 1], [2, 0]],
                 [0, 0, 0, 128, 0, 0, 0, 128, 0])
    with pytest.raises(ValueError, match='ids.png'):
        load_mask(tmp_path / 'ids.png')


def test_gray_alpha_and_one_bit_masks(tmp_path):
    gray = np.array([[0, 255], [255, 0]], np.uint8)
    la = np.stack([gray, np.full_like(gray, 128)], -1)
    Image.fromarray(la, 'LA').save(tmp_path / 'la.png')
    assert load_mask(tmp_path / 'la.png').tolist() == [[0, 1], [1, 0]]
    Image.fromarray(gray > 0).save(tmp_path / 'bw.png')  # mode '1'
    assert load_mask(tmp_path / 'bw.png').tolist() == [[0, 1], [1, 0]]


def test_empty_mask_file_is_explained(tmp_path):
    (tmp_path / 'm.png').write_bytes(b'')
    with pytest.raises(ValueError, match='empty file'):
        load_mask(tmp_path / 'm.png')


def test_multiclass_labels_out_of_range_refused_with_file():
    check = TRANSFORMS.build(dict(type='CheckSegLabels', num_classes=3))
    ok = np.array([[0, 1], [2, 255]], np.uint8)
    assert check(dict(gt_seg_map=ok, seg_map_path='a.png')) is not None
    bad = np.array([[0, 7], [2, 9]], np.uint8)
    with pytest.raises(ValueError) as err:
        check(dict(gt_seg_map=bad, seg_map_path='masks/b.png'))
    msg = str(err.value)
    assert 'masks/b.png' in msg and '[7, 9]' in msg and 'num_classes' in msg


# --------------------------------------------------------------- datasets
def test_misnamed_image_suffix_is_a_clear_error(tmp_path):
    for sub in ('images', 'masks'):
        os.makedirs(tmp_path / sub)
    cv2.imwrite(
        str(tmp_path / 'images' / 'a.png'), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'masks' / 'a.png'), np.zeros((4, 4), np.uint8))
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.build(
            dict(
                type='BinarySegDataset',
                data_root=str(tmp_path),
                data_prefix=dict(img_path='images', seg_map_path='masks'),
                pipeline=[]))
    msg = str(err.value)
    assert 'no images found' in msg and '*.jpg' in msg and 'images' in msg


# ----------------------------------------------------- resume checkpoints
class _Runner:

    def __init__(self, model, resume=False):
        self.model = model
        self.cfg = dict(resume=resume)


def _tiny(tiny_sam_file, adapter):
    return MODELS.build(tiny_model_cfg(tiny_sam_file[0], adapter=adapter))


@pytest.fixture(scope='module')
def conv_lora_checkpoint(tiny_sam_file):
    model = _tiny(tiny_sam_file, dict(type='ConvLoRA'))
    ckpt = dict(state_dict=model.state_dict(), meta={})
    TrainableCheckpointHook().before_save_checkpoint(_Runner(model), ckpt)
    return ckpt


@pytest.mark.parametrize('adapter', [dict(type='LoRA'), None])
def test_resume_checkpoint_of_another_method_refused(tiny_sam_file,
                                                     conv_lora_checkpoint,
                                                     adapter):
    model = _tiny(tiny_sam_file, adapter)
    ckpt = dict(
        conv_lora_checkpoint,
        state_dict=dict(conv_lora_checkpoint['state_dict']))
    with pytest.raises(RuntimeError) as err:
        TrainableCheckpointHook().after_load_checkpoint(_Runner(model), ckpt)
    msg = str(err.value)
    assert 'adapters' in msg and 'ConvLoRA' in msg
    assert 'config the checkpoint was trained with' in msg
    assert '--resume' not in msg
    with pytest.raises(RuntimeError) as err:
        TrainableCheckpointHook().after_load_checkpoint(
            _Runner(model, resume=True), ckpt)
    assert '--resume continues a run with the config it was started' in \
        str(err.value)


def test_resume_checkpoint_of_another_arch_refused(tiny_sam_file,
                                                   conv_lora_checkpoint):
    model = _tiny(tiny_sam_file, dict(type='ConvLoRA'))
    ckpt = dict(
        conv_lora_checkpoint,
        meta=dict(
            peft=dict(conv_lora_checkpoint['meta']['peft'], arch='vit_h')))
    with pytest.raises(RuntimeError, match="arch: checkpoint 'vit_h'"):
        TrainableCheckpointHook().after_load_checkpoint(_Runner(model), ckpt)
    # the matching checkpoint loads
    TrainableCheckpointHook().after_load_checkpoint(
        _Runner(model),
        dict(
            conv_lora_checkpoint,
            state_dict=dict(conv_lora_checkpoint['state_dict'])))


# --------------------------------------------------------------- adapters
@pytest.mark.parametrize('make,match', [
    (lambda: ConvLoRA(num_experts=0), 'num_experts'),
    (lambda: ConvLoRA(rank=0), 'rank'),
    (lambda: LoRA(rank=0), 'rank'),
    (lambda: ConvLoRA(targets=r'blocks\.\d+\.attn\.qkvv').apply_to(
        build_tiny_sam().image_encoder), 'matches no module'),
    (lambda: LoRA(targets=r'neck\.\d+').apply_to(build_tiny_sam(
    ).image_encoder), 'only nn.Linear|matches no module'),
    (lambda: CAD(num_blocks=0), 'num_blocks'),
    (lambda: CAD(input_size=100), 'divisible'),
])
def test_impossible_adapter_settings(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_impossible_adapter_setting_in_a_model_config(tiny_sam_file):
    with pytest.raises(ValueError, match='num_experts'):
        _tiny(tiny_sam_file, dict(type='ConvLoRA', num_experts=0))


def test_mask_name_mismatch_suggests_the_suffix(tmp_path):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'masks').mkdir()
    for name in ('a', 'b', 'c'):
        cv2.imwrite(
            str(tmp_path / 'images' / f'{name}.jpg'),
            np.zeros((8, 8, 3), np.uint8))
        cv2.imwrite(
            str(tmp_path / 'masks' / f'{name}_mask.png'),
            np.zeros((8, 8), np.uint8))
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.build(
            dict(
                type='BinarySegDataset',
                data_root=str(tmp_path),
                data_prefix=dict(img_path='images', seg_map_path='masks'),
                pipeline=[]))
    assert "set seg_map_suffix='_mask.png'" in str(err.value)
