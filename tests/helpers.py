"""Helpers shared by the test suite (tiny model configs, running tools).

Imported by the tests as ``helpers`` (pytest puts ``tests/`` on
``sys.path`` for ``tests/conftest.py``); fixtures are in ``conftest.py``.
"""
import copy
import glob
import os
import os.path as osp
import subprocess
import sys
import uuid

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:  # the tools' helper modules
    sys.path.insert(0, REPO)

from tools.make_demo_data import save_tiny_sam_checkpoint  # noqa: F401
from tools.make_demo_data import (TINY_DECODER, TINY_EMBED_DIM, TINY_ENCODER,
                                  TINY_IMG_SIZE, build_tiny_sam)

# A TinyViT in MobileSAM's layout: at 128x128 the attention stages see 16x16
# (7x7 windows, padded to 21x21), 8x8 (one 14x14 window, padded) and 8x8
# (7x7 windows, padded to 14x14) maps.
TINY_TINY_VIT = dict(
    embed_dims=(8, 16, 24, 32),
    depths=(1, 1, 2, 1),
    num_heads=(1, 2, 2, 2),
    window_sizes=(7, 7, 14, 7))
# every config a user runs (not the _base_ pieces), relative to REPO
SHIPPED_CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if f'{os.sep}_base_{os.sep}' not in p)


def tiny_model_cfg(checkpoint,
                   adapter=None,
                   loss=None,
                   num_classes=2,
                   out_channels=1,
                   **head_kwargs):
    """Config of a tiny SAMSegmentor on the tiny checkpoint."""
    return dict(
        type='SAMSegmentor',
        sam_checkpoint=checkpoint,
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_val=0,
            seg_pad_val=255,
            size=(TINY_IMG_SIZE, TINY_IMG_SIZE)),
        backbone=dict(
            type='SAMViT',
            arch=copy.deepcopy(TINY_ENCODER),
            img_size=TINY_IMG_SIZE,
            out_channels=TINY_EMBED_DIM,
            adapter=adapter),
        decode_head=dict(
            type='SAMMaskDecoderHead'
            if out_channels == 1 else 'SAMMaskClassificationHead',
            num_classes=num_classes,
            out_channels=out_channels,
            img_size=TINY_IMG_SIZE,
            embed_dim=TINY_EMBED_DIM,
            decoder=copy.deepcopy(TINY_DECODER),
            loss_decode=loss or dict(type='StructureLoss'),
            **head_kwargs),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def run_tool(args, cwd=REPO):
    """Run a tools/ script in a subprocess; return CompletedProcess.

    No time limit: a slow (loaded) machine must not fail a correct run.
    """
    return subprocess.run(
        [sys.executable] + args, cwd=cwd, capture_output=True, text=True)


def demo_config(data_dir: str, work_dir: str, **overrides):
    """The CPU demo config pointed at ``data_dir`` (from
    ``tools/make_demo_data.py``), writing to ``work_dir``.

    Keyword overrides are merged with ``Config.merge_from_dict``.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py'))
    cfg.work_dir = work_dir
    # mmengine keeps one visualizer per name per process; a unique name
    # keeps in-process runs from writing into each other's work dirs
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex[:12]}'
    # the same for the logger and message hub, named by the experiment
    # (config name + time to the second: two runs built in one second
    # would share the log file and the runtime info)
    cfg.experiment_name = f'tiny_shadow_{uuid.uuid4().hex[:12]}'
    cfg.model.sam_checkpoint = osp.join(data_dir, 'tiny_sam.pth')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_dir
    cfg.merge_from_dict(overrides)
    return cfg


def demo_cfg_options(data_dir: str):
    """``--cfg-options`` that point the demo config at ``data_dir``."""
    opts = [f'model.sam_checkpoint={osp.join(data_dir, "tiny_sam.pth")}']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts.append(f'{loader}.dataset.data_root={data_dir}')
    return opts


def build_tiny_model(checkpoint, adapter=None, with_cp=False, **kwargs):
    """Build :func:`tiny_model_cfg` (in the mmseg scope)."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = tiny_model_cfg(checkpoint, adapter=copy.deepcopy(adapter), **kwargs)
    cfg['backbone']['with_cp'] = with_cp
    return MODELS.build(cfg)


def build_meta_segmentor(arch, adapter=None):
    """A binary SAM segmentor of a real ``arch`` on the meta device (shapes
    only, no checkpoint), for parameter counts."""
    import torch
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = dict(
        type='SAMSegmentor',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(
            type='SAMViT', arch=arch, adapter=copy.deepcopy(adapter)),
        decode_head=dict(
            type='SAMMaskDecoderHead',
            num_classes=2,
            out_channels=1,
            loss_decode=dict(type='StructureLoss')))
    with torch.device('meta'):
        return MODELS.build(cfg)


def fake_batch(n=2, size=TINY_IMG_SIZE, seed=0):
    """Random images and square 0/1 masks as mmseg data samples.

    Returns:
        tuple: inputs (n, 3, size, size) and a list of ``SegDataSample``.
    """
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 3, size, size, generator=g)
    samples = []
    for _ in range(n):
        gt = torch.zeros(1, size, size, dtype=torch.long)
        y0, x0 = torch.randint(0, size // 2, (2, ), generator=g).tolist()
        gt[:, y0:y0 + size // 2, x0:x0 + size // 2] = 1
        sample = SegDataSample(gt_sem_seg=PixelData(data=gt))
        sample.set_metainfo(
            dict(
                img_shape=(size, size),
                pad_shape=(size, size),
                ori_shape=(size, size)))
        samples.append(sample)
    return inputs, samples


def config_pipelines(cfg):
    """Every pipeline list of the config (top-level and in dataloaders)."""
    found = [cfg.get('train_pipeline'), cfg.get('test_pipeline')]
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loaders = cfg.get(key)
        if loaders is None:
            continue
        for loader in loaders if isinstance(loaders, list) else [loaders]:
            found.append(loader.dataset.get('pipeline'))
    return [p for p in found if p]


def _tiny_sam_model(model, sam_file: str, size: int) -> None:
    """Make a SAM model config tiny (see :func:`tiny_config`)."""
    if model.backbone.type == 'SAMTinyViT':
        # a tiny MobileSAM file beside the tiny SAM one
        mobile = osp.join(osp.dirname(sam_file), 'tiny_mobile_sam.pth')
        if not osp.isfile(mobile):
            save_tiny_mobile_sam_checkpoint(mobile)
        model.sam_checkpoint = mobile
        arch = copy.deepcopy(TINY_TINY_VIT)
    else:
        arch = copy.deepcopy(TINY_ENCODER)
    model.backbone.update(
        arch=arch,
        img_size=size,
        out_channels=TINY_EMBED_DIM,
        checkpoint=None,
        with_cp=False)
    model.decode_head.update(
        img_size=size,
        embed_dim=TINY_EMBED_DIM,
        decoder=copy.deepcopy(TINY_DECODER),
        checkpoint=None)
    adapters = model.backbone.get('adapter') or []
    for adapter in adapters if isinstance(adapters, list) else [adapters]:
        if adapter['type'] == 'CAD':
            adapter.update(channels=TINY_EMBED_DIM, input_size=size // 2)
        if adapter['type'] == 'SAMAdapter':
            adapter.update(scale_factor=4)


def tiny_config(path: str, sam_file: str):
    """The shipped config ``path`` (relative to the repository) on the tiny
    SAM at 128x128 (MobileSAM configs: a tiny MobileSAM written beside
    ``sam_file``): same pipelines, datasets, adapters and head type.

    Compositions with mmseg's heads or backbones (``configs/sam_upernet``,
    ``configs/peft_backbones``) get the 128x128 pipelines and data
    preprocessor only; their models stay as configured
    (``tests/tools/test_mmseg_compositions.py`` shrinks those).
    """
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, path))
    size = TINY_IMG_SIZE
    model = cfg.model
    model.sam_checkpoint = sam_file
    model.data_preprocessor.size = (size, size)
    if model.data_preprocessor.get('test_cfg'):  # pads to SAM's square
        model.data_preprocessor.test_cfg.size = (size, size)
    if model.backbone.type != 'PEFTBackbone' and \
            model.decode_head.type.startswith('SAM'):
        _tiny_sam_model(model, sam_file, size)
    for pipeline in config_pipelines(cfg):
        for t in pipeline:
            if t['type'] == 'Resize':
                t['scale'] = (size, size)
            if t['type'] == 'ResizeCADImage':  # = CAD's input_size
                t['size'] = size // 2
    return cfg


def build_tiny_mobile_sam(img_size=TINY_IMG_SIZE,
                          encoder=None,
                          embed_dim=TINY_EMBED_DIM,
                          decoder=None,
                          seed=0):
    """A small MobileSAM (TinyViT encoder) with random weights, batch-norm
    statistics and attention biases included (so that a test notices when
    they are not loaded or leave eval mode), in eval mode."""
    import torch
    from segment_anything.modeling import Sam

    from mmseg_convlora.models.backbones.tiny_vit import TinyViTEncoder
    enc = dict(TINY_TINY_VIT, **(encoder or {}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vit_sam = build_tiny_sam(
            img_size, embed_dim=embed_dim, decoder=decoder, seed=seed)
        encoder_module = TinyViTEncoder(
            img_size=img_size, out_channels=embed_dim, **enc)
        with torch.no_grad():
            for name, param in encoder_module.named_parameters():
                if 'attention_biases' in name:
                    param.normal_(0, 0.5)
                elif name.endswith('bn.weight'):
                    param.uniform_(0.5, 1.5)
            for name, buf in encoder_module.named_buffers():
                if name.endswith('running_mean'):
                    buf.normal_(0, 0.1)
                elif name.endswith('running_var'):
                    buf.uniform_(0.5, 2.0)
        sam = Sam(
            image_encoder=encoder_module,
            prompt_encoder=vit_sam.prompt_encoder,
            mask_decoder=vit_sam.mask_decoder,
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375])
    return sam.eval()


def save_tiny_mobile_sam_checkpoint(path, **kwargs):
    """Save :func:`build_tiny_mobile_sam` like ``mobile_sam.pt``, whose
    unused ImageNet classifier weights are written too; return it."""
    import torch
    sam = build_tiny_mobile_sam(**kwargs)
    state = sam.state_dict()
    width = sam.image_encoder.layers[-1].blocks[0].attn.norm.weight.shape[0]
    state['image_encoder.norm_head.weight'] = torch.ones(width)
    state['image_encoder.norm_head.bias'] = torch.zeros(width)
    state['image_encoder.head.weight'] = torch.zeros(10, width)
    state['image_encoder.head.bias'] = torch.zeros(10)
    torch.save(state, path)
    return sam


def load_tool(*parts):
    """Import the script ``tools/<parts...>`` as a module (its ``main`` and
    functions run in this process, without a subprocess's start-up)."""
    import importlib.util
    path = osp.join(REPO, 'tools', *parts)
    name = 'tool_' + '_'.join(osp.splitext(p)[0] for p in parts)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def losses_from_log(work_dir):
    """The training losses logged by a run in ``work_dir``, in order (from
    mmengine's ``vis_data/scalars.json``)."""
    import json
    path = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))[0]
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    return [r['loss'] for r in rows if 'loss' in r]


# ------------------------------------------------------------- metrics
def gt_l():
    """A 4x4 ground truth: the top-left 3x3 block is foreground (9 of 16
    pixels)."""
    import numpy as np
    gt = np.zeros((4, 4), dtype=np.int64)
    gt[:3, :3] = 1
    return gt


def metric_sample(prob, gt, pred=None):
    """A data sample as the segmentor gives it to the metrics: foreground
    probabilities ``prob`` (H, W), the prediction (default ``prob > 0.5``)
    and the ground truth ``gt`` (H, W)."""
    import numpy as np
    import torch
    prob = torch.as_tensor(np.asarray(prob), dtype=torch.float32)[None]
    gt = torch.as_tensor(np.asarray(gt), dtype=torch.long)[None]
    pred = (prob > 0.5).long() if pred is None else torch.as_tensor(pred)
    return dict(
        seg_logits=dict(data=prob),
        pred_sem_seg=dict(data=pred),
        gt_sem_seg=dict(data=gt),
        img_path='x.png',
        ori_shape=tuple(gt.shape[-2:]))


def evaluate_metric(metric, samples):
    """``metric``'s results on ``samples`` (process, then compute)."""
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)
