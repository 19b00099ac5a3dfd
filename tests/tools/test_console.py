"""Console noise: a MobileSAM training run (configs/*/kvasir-cvc_mobile-sam.py
on tiny data) and tools/infer.py print none of the library notices that the
package's own settings used to cause."""
import glob
import logging
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
from mmseg.registry import METRICS, MODELS

from helpers import TINY_DECODER, TINY_EMBED_DIM, run_tool, tiny_config

NOISE = (
    'Gradient accumulative may slightly decrease performance',
    'before `optimizer.step()`',
    'The prefix is not set in metric class',
    '``build_loss`` would be deprecated',
    'Failed to search registry',
    'Failed to add',
)


def assert_quiet(text):
    assert [n for n in NOISE if n in text] == []


@pytest.mark.parametrize('metric', [
    'SODMetric', 'BinarySegMetric', 'BERMetric', 'BERPerImageMetric',
    'MultiClassSegMetric'
])
def test_metrics_need_no_prefix(metric, capture_log):
    from mmengine.logging import MMLogger
    log = capture_log(MMLogger.get_current_instance())
    METRICS.build(dict(type=metric))
    assert 'prefix' not in log.text(logging.WARNING)


@pytest.mark.parametrize('head',
                         ['SAMMaskDecoderHead', 'SAMMaskClassificationHead'])
def test_heads_build_their_losses_without_build_loss(head):
    kwargs = dict(num_classes=3, out_channels=3) \
        if head == 'SAMMaskClassificationHead' else {}
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        built = MODELS.build(
            dict(
                type=head,
                embed_dim=TINY_EMBED_DIM,
                decoder=TINY_DECODER,
                img_size=64,
                **kwargs))
    assert built.loss_decode.__class__.__name__ in ('StructureLoss',
                                                    'MaskClassificationLoss')


def write_kvasir_cvc(root, n=4):
    """Kvasir-SEG + CVC-ClinicDB in the converter's layout, tiny."""
    rng = np.random.default_rng(0)
    for folder in ('train', 'val', 'test/Kvasir', 'test/CVC-ClinicDB'):
        for sub in ('images', 'masks'):
            (root / folder / sub).mkdir(parents=True)
        for i in range(n):
            mask = np.zeros((48, 64), np.uint8)
            cv2.circle(mask, (int(rng.integers(16, 48)), 24), 10, 255, -1)
            img = rng.integers(0, 90, (48, 64, 3), dtype=np.uint8)
            img[mask > 0] += 120
            cv2.imwrite(str(root / folder / 'images' / f'{i}.jpg'), img)
            cv2.imwrite(str(root / folder / 'masks' / f'{i}.png'), mask)


@pytest.mark.slow
def test_mobile_sam_train_and_infer_print_no_library_notices(
        tmp_path, tiny_sam_file):
    data = tmp_path / 'kvasir_cvc'
    write_kvasir_cvc(data)
    cfg = tiny_config('configs/convlora/kvasir-cvc_mobile-sam.py',
                      tiny_sam_file[0])
    config = str(tmp_path / 'kvasir-cvc_mobile-sam.py')
    cfg.dump(config)
    work = str(tmp_path / 'work')
    train = run_tool([
        'tools/train.py', config, '--trial', '2', '--work-dir', work,
        '--cfg-options', f'data_root={data}'
    ])
    assert train.returncode == 0, train.stderr
    assert 'Epoch(val) [1][1/1]' in train.stdout
    assert_quiet(train.stdout + train.stderr)

    (best, ) = glob.glob(osp.join(work, 'best_Sm_epoch_1.pth'))
    infer = run_tool([
        'tools/infer.py', config, best,
        str(data / 'val' / 'images'), '--out',
        str(tmp_path / 'preds')
    ])
    assert infer.returncode == 0, infer.stderr
    assert len(glob.glob(str(tmp_path / 'preds' / 'masks' / '*.png'))) == 4
    assert_quiet(infer.stdout + infer.stderr)
    assert infer.stderr == ''


@pytest.mark.slow
def test_demo_run_prints_no_library_notices(trained_demo):
    assert_quiet(trained_demo[1])
