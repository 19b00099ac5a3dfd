"""tools/deploy/export_onnx.py: the processing it records from the config,
and the test-pipeline steps it refuses (the export itself:
tests/deploy/test_onnx_equivalence.py)."""
import sys

import pytest

from helpers import build_tiny_model, load_tool, tiny_config


def test_processing_of_a_cad_config(tiny_ckpt):
    cfg = tiny_config('configs/cad/sbu.py', tiny_ckpt)
    model = build_tiny_model(tiny_ckpt,
                             dict(type='CAD', channels=32, input_size=64))
    meta = load_tool('deploy', 'export_onnx.py').processing(cfg, model)
    assert meta['size'] == [128, 128]
    assert meta['resize'] == dict(
        scale=[128, 128], keep_ratio=False, interpolation='bilinear')
    assert meta['cad_image'] == dict(size=64, to_rgb=True)
    assert meta['mean'] == [123.675, 116.28, 103.53]
    assert meta['bgr_to_rgb'] is True and meta['threshold'] == 0.5


def test_unsupported_test_pipeline_step_is_refused(tiny_ckpt):
    cfg = tiny_config('configs/lora/sbu.py', tiny_ckpt)
    pipeline = cfg.val_dataloader.dataset.pipeline
    pipeline.insert(2, dict(type='RandomCrop', crop_size=(64, 64)))
    cfg.test_dataloader = cfg.val_dataloader
    model = build_tiny_model(tiny_ckpt, dict(type='LoRA'))
    with pytest.raises(ValueError, match='RandomCrop.*remove it'):
        load_tool('deploy', 'export_onnx.py').processing(cfg, model)


def test_missing_exporter_names_the_requirements(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'onnxscript', None)
    with pytest.raises(SystemExit, match='requirements-deploy.txt'):
        load_tool('deploy', 'export_onnx.py').main(
            ['cfg.py', 'ckpt.pth', '--out',
             str(tmp_path / 'm.onnx')])
