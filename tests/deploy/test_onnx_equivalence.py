"""tools/deploy/export_onnx.py + ONNXSegPredictor reproduce the PyTorch
model on tiny models of every adapter (LoRA, Conv-LoRA, CAD with and without
its kept image, decoder-only alone), binary and multi-class heads, SAM's ViT
and TinyViT: probabilities within 1e-4, the same masks except at pixels
within 1e-4 of the decision, the same files from tools/infer.py, any batch
size, and the predictor runs without torch."""
import copy
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmseg_convlora.apis import InferencePipeline, get_test_pipeline
from mmseg_convlora.deploy import ONNXSegPredictor
from mmseg_convlora.engine.hooks import TrainableCheckpointHook
from helpers import (REPO, load_tool, save_tiny_mobile_sam_checkpoint,
                     tiny_config)

pytestmark = pytest.mark.slow
pytest.importorskip('onnxruntime')  # requirements-deploy.txt: Python >= 3.11
SIZES = {'a': (60, 90), 'b': (100, 70), 'c': (128, 128)}
TOL = 1e-4
CLASSES = ('background', 'square', 'disc')


def vit_convlora_lora_cad(cfg):
    """Binary; Conv-LoRA on qkv, LoRA on the MLPs, CAD on its kept image."""
    cfg.model.backbone.adapter = [
        dict(type='ConvLoRA'),
        dict(type='LoRA', targets=r'blocks\.\d+\.mlp\.lin1'),
        cfg.model.backbone.adapter
    ]


def tiny_vit_cad_multiclass(cfg):
    """Decoder-only config + CAD on the network input (no kept image), the
    multi-class head."""
    cfg.model.backbone.adapter = dict(type='CAD', channels=32, input_size=64)
    cfg.model.decode_head = dict(
        cfg.model.decode_head,
        type='SAMMaskClassificationHead',
        num_classes=3,
        out_channels=3,
        threshold=None,
        num_queries=4,
        loss_decode=None)


def vit_lora_multiclass(cfg):
    cfg.model.backbone.adapter = dict(type='LoRA')


MODELS_UNDER_TEST = {
    # name: (shipped config, change, ONNX inputs)
    'vit_convlora_lora_cad': ('configs/cad/sbu.py', vit_convlora_lora_cad, 2),
    'tiny_vit_convlora':
    ('configs/convlora/kvasir-cvc_mobile-sam.py', None, 1),
    # keep-ratio resize, padding cropped off afterwards, 150 classes
    'vit_lora_multiclass_keep_ratio':
    ('configs/sam_multiclass/convlora_sam-vit-b_ade20k-512x512.py',
     vit_lora_multiclass, 1),
    'tiny_vit_cad_multiclass':
    ('configs/decoder_only/kvasir-cvc_mobile-sam.py', tiny_vit_cad_multiclass,
     1),
    'vit_decoder_only': ('configs/decoder_only/sbu.py', None, 1),
}


class _Runner:

    def __init__(self, model):
        self.model = model
        self.cfg = dict(resume=False)


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp('photos')
    rng = np.random.default_rng(0)
    for name, (h, w) in SIZES.items():
        # colour ramps (windows and channels that differ) and noise
        y, x = np.mgrid[0:1:h * 1j, 0:1:w * 1j]
        ramps = np.stack([255 * x, 255 * y, 128 + 0 * x], axis=-1)
        noise = rng.normal(0, 30, (h, w, 3))
        img = np.clip(ramps + noise, 0, 255).astype(np.uint8)
        assert cv2.imwrite(str(root / f'{name}.png'), img)
    return root


@pytest.fixture(scope='module')
def sam_file(tiny_ckpt, tmp_path_factory):
    """The tiny SAM and, beside it, a tiny MobileSAM whose batch norms are
    identities: with the random statistics of the shared test file its
    output changes by 1e-5 from one image to another, too little to tell a
    wrong export from float rounding."""
    folder = tmp_path_factory.mktemp('sam')
    shutil.copy(tiny_ckpt, folder / 'tiny_sam.pth')
    mobile = str(folder / 'tiny_mobile_sam.pth')
    save_tiny_mobile_sam_checkpoint(mobile)
    state = torch.load(mobile)
    for key, value in state.items():
        if key.endswith(('running_var', 'bn.weight')):
            value.fill_(1)
        elif key.endswith('running_mean'):
            value.zero_()
    torch.save(state, mobile)
    return str(folder / 'tiny_sam.pth')


@pytest.fixture(scope='module')
def exported(sam_file, tmp_path_factory):
    """name -> (config, model, config file, checkpoint, .onnx), exported
    once per module."""
    done = {}

    def get(name):
        if name in done:
            return done[name]
        path, change, _ = MODELS_UNDER_TEST[name]
        tmp = tmp_path_factory.mktemp(name)
        cfg = tiny_config(path, sam_file)
        if change is not None:
            change(cfg)
        init_default_scope('mmseg')
        torch.manual_seed(0)  # the adapters' initialisation
        model = MODELS.build(copy.deepcopy(cfg.model)).eval()
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.requires_grad:
                    p.add_(0.05 * torch.randn(p.shape, generator=gen))
                if pname.endswith('w_gate'):  # windows routed apart
                    p.normal_(0, 3, generator=gen)
        meta = dict(
            dataset_meta=dict(
                classes=CLASSES, palette=[[0, 0, 0], [255, 0, 0], [0, 0, 255]])
        ) if model.decode_head.out_channels == 3 else {}
        ckpt = dict(state_dict=model.state_dict(), meta=meta)
        TrainableCheckpointHook().before_save_checkpoint(_Runner(model), ckpt)
        files = [str(tmp / f) for f in ('cfg.py', 'ckpt.pth', 'model.onnx')]
        cfg.dump(files[0])
        torch.save(ckpt, files[1])
        load_tool('deploy', 'export_onnx.py').main(
            [files[0], files[1], '--out', files[2]])
        done[name] = (cfg, model, *files)
        return done[name]

    return get


def pytorch_prediction(model, cfg, path):
    data = InferencePipeline(get_test_pipeline(cfg))(path)
    with torch.no_grad():
        return model.test_step(
            dict(inputs=[data['inputs']],
                 data_samples=[data['data_samples']]))[0]


def decision_margin(probs, threshold):
    """Distance of every pixel to a different decision."""
    if probs.shape[0] == 1:
        return np.abs(probs[0] - threshold)
    top2 = np.sort(probs, axis=0)[-2:]
    return top2[1] - top2[0]


@pytest.mark.parametrize('name', list(MODELS_UNDER_TEST))
def test_onnx_predictor_and_infer_tool_match_pytorch(name, exported, images,
                                                     tmp_path):
    cfg, model, cfg_file, ckpt, onnx_file = exported(name)
    predictor = ONNXSegPredictor(onnx_file)
    # the tool's own check: a random batch straight into the network
    assert load_tool('deploy', 'export_onnx.py').check(model, onnx_file) < TOL
    assert len(predictor.session.get_inputs()) == MODELS_UNDER_TEST[name][2]
    paths = [str(images / f'{n}.png') for n in SIZES]
    loaded = [cv2.imread(p) for p in paths]
    batch = predictor(loaded)  # one batch of 3
    for path, image, batched in zip(paths, loaded, batch):
        sample = pytorch_prediction(model, cfg, path)
        want = sample.seg_logits.data.numpy()
        got = predictor(image)  # a batch of 1
        assert got.probs.shape == want.shape == (want.shape[0],
                                                 *image.shape[:2])
        assert want.std() > 1e-3  # not a constant map

        np.testing.assert_allclose(got.probs, want, rtol=0, atol=TOL)
        np.testing.assert_allclose(batched.probs, got.probs, atol=1e-5)
        differ = got.mask != sample.pred_sem_seg.data[0].numpy()
        margin = decision_margin(want, model.decode_head.threshold)
        assert not (differ & (margin > TOL)).any()
    adapters = list(model.backbone.adapters) or [None]
    routing = getattr(adapters[0], 'last_routing', dict)()
    if routing:  # Conv-LoRA: some layer routes its windows apart
        assert max(r['expert_ids'].unique().numel()
                   for r in routing.values()) > 1

    infer = load_tool('infer.py')
    outs = {}
    for backend, weights in (('pytorch', ckpt), ('onnxruntime', onnx_file)):
        outs[backend] = str(tmp_path / backend)
        infer.main([
            cfg_file, weights,
            str(images), '--out', outs[backend], '--backend', backend
        ])
    files = sorted(
        osp.relpath(osp.join(d, f), outs['pytorch'])
        for d, _, fs in os.walk(outs['pytorch']) for f in fs)
    assert len(files) >= 3 * 3
    for rel in files:
        a = cv2.imread(osp.join(outs['pytorch'], rel), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(
            osp.join(outs['onnxruntime'], rel), cv2.IMREAD_UNCHANGED)
        # 8-bit files: at most one level where a value sits on a rounding
        # or decision boundary, on a few pixels
        diff = np.abs(a.astype(int) - b.astype(int))
        assert (diff > 0).mean() < 0.01, rel
        if rel.startswith('probs'):
            assert diff.max() <= 1, rel


def test_predictor_runs_without_torch(exported, images):
    """In a process where torch, mmcv, mmengine and mmseg cannot be
    imported, ``mmseg_convlora.deploy`` predicts what it predicts here."""
    onnx_file = exported('vit_convlora_lora_cad')[-1]
    image = str(images / 'a.png')
    script = f"""
import json, sys
BLOCKED = {{'torch', 'torchvision', 'mmcv', 'mmengine', 'mmseg',
           'segment_anything'}}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)
sys.meta_path.insert(0, Block())
import cv2
from mmseg_convlora.deploy import ONNXSegPredictor
pred = ONNXSegPredictor({onnx_file!r})(cv2.imread({image!r}))
assert not BLOCKED & set(m.split('.')[0] for m in sys.modules)
print(json.dumps(pred.probs.tolist()))
"""
    proc = subprocess.run([sys.executable, '-c', script],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    probs = np.array(json.loads(proc.stdout.splitlines()[-1]), np.float32)
    here = ONNXSegPredictor(onnx_file)(cv2.imread(image)).probs
    np.testing.assert_array_equal(probs, here)
