"""Importing the plugin changes nothing that mmengine, mmseg, mmcv, torch or
segment_anything own: no registry name of theirs resolves to another object,
no attribute of their classes and modules is assigned, torch's safe globals
stay as they were; and mmseg's own models build as without the plugin."""
import json
import subprocess
import sys

from helpers import REPO

# Imports every registering module of the libraries, then records, for each
# registry, what every name resolves to (through the parent registries), the
# __dict__ of the classes and modules the plugin extends or used to patch,
# and torch's safe globals; before and after importing the plugin, in one
# process (objects are compared by identity).
SNAPSHOT = r'''
import importlib, json, sys, types
import torch
import mmengine.registry, mmseg.registry
from mmseg.utils import register_all_modules
register_all_modules(init_default_scope=False)
import mmcv.transforms, mmengine.fileio.backends, segment_anything
from mmengine.fileio.backends.registry_utils import backends
from mmengine.hooks import CheckpointHook
from mmengine.logging import HistoryBuffer, MessageHub, MMLogger
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import (AmpOptimWrapper, DefaultOptimWrapperConstructor,
                            OptimWrapper)
from mmengine.registry import Registry
from mmengine.runner import Runner
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.segmentors import EncoderDecoder

OWNED = [HistoryBuffer, MessageHub, MMLogger, CheckpointHook, OptimWrapper,
         AmpOptimWrapper, DefaultOptimWrapperConstructor, Runner,
         MMDistributedDataParallel, EncoderDecoder, BaseDecodeHead,
         torch.nn.SyncBatchNorm, torch.optim.Optimizer, torch.nn.Module,
         torch.serialization, torch.distributed, segment_anything,
         importlib.import_module('mmcv.ops'), mmengine.registry]


def ident(obj):
    return f'{getattr(obj, "__module__", "?")}.' \
        f'{getattr(obj, "__qualname__", type(obj).__name__)}@{id(obj)}'


def snapshot():
    registries = {}
    for name, mod in list(sys.modules.items()):
        if name.startswith(('mmengine', 'mmseg.', 'mmcv')):
            for attr, value in list(vars(mod).items()):
                if isinstance(value, Registry):
                    registries.setdefault(id(value), (f'{name}.{attr}', value))
    resolved = {}
    for label, registry in registries.values():
        chain, r = [], registry
        while r is not None:
            chain.append(r)
            r = r.parent
        names = {}
        for r in reversed(chain):
            names.update(r.module_dict)
        resolved[f'{label} ({registry.name})'] = {
            k: ident(v) for k, v in names.items()}
    attrs = {
        ident(o): {
            k: ident(v) for k, v in vars(o).items()
            # importing a submodule binds it in its package
            if not isinstance(v, types.ModuleType)
        } for o in OWNED
    }
    return dict(
        registries=resolved,
        attrs=attrs,
        backends={k: ident(v) for k, v in backends.items()},
        safe_globals=sorted(map(str, torch.serialization.get_safe_globals())))


before = snapshot()
import mmseg_convlora  # noqa: E402,F401
print(json.dumps(dict(bare=before, plugin=snapshot())))
'''


def test_import_changes_nothing_the_libraries_own():
    proc = subprocess.run([sys.executable, '-c', SNAPSHOT],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    both = json.loads(proc.stdout.strip().splitlines()[-1])
    bare, plugin = both['bare'], both['plugin']
    assert len(bare['registries']) > 20
    changed = []
    for registry, names in bare['registries'].items():
        after = plugin['registries'][registry]
        changed += [
            f'{registry}: {name} {obj} -> {after.get(name)}'
            for name, obj in names.items() if after.get(name) != obj
        ]
    assert not changed, '\n'.join(changed)
    for owner, attrs in bare['attrs'].items():
        assert plugin['attrs'][owner] == attrs, owner
    for name, backend in bare['backends'].items():
        assert plugin['backends'][name] == backend, name
    assert plugin['safe_globals'] == bare['safe_globals']


BUILD = r'''
import json, sys
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS, OPTIM_WRAPPERS, OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.utils import register_all_modules
register_all_modules()
if sys.argv[1] == 'plugin':
    import mmseg_convlora  # noqa: F401
init_default_scope('mmseg')
cfg = Config.fromfile(sys.argv[2])
torch.manual_seed(0)
model = MODELS.build(cfg.model)
constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
    type=cfg.optim_wrapper.get('constructor',
                               'DefaultOptimWrapperConstructor'),
    optim_wrapper_cfg={k: v for k, v in cfg.optim_wrapper.items()
                       if k != 'constructor'}))
wrapper = constructor(model)
print(json.dumps(dict(
    modules=[(n, f'{type(m).__module__}.{type(m).__qualname__}')
             for n, m in model.named_modules()],
    wrapper=f'{type(wrapper).__module__}.{type(wrapper).__qualname__}',
    checksum=sum(float(p.sum()) for p in model.parameters()))))
'''


def test_mmseg_config_builds_the_same_objects(tmp_path):
    """mmseg's FCN config (mmseg's config, mmseg's classes) builds the same
    module tree and optimizer wrapper with and without the plugin."""
    import os.path as osp

    import mmseg
    configs = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')
    cfg = tmp_path / 'fcn.py'
    cfg.write_text(
        f'_base_ = [{osp.join(configs, "_base_/models/fcn_r50-d8.py")!r}, '
        f'{osp.join(configs, "_base_/schedules/schedule_20k.py")!r}]\n'
        "norm_cfg = dict(type='BN', requires_grad=True)\n"
        'model = dict(data_preprocessor=dict(type="SegDataPreProcessor"), '
        'backbone=dict(depth=18, norm_cfg=norm_cfg, init_cfg=None, '
        'pretrained=None), pretrained=None, decode_head=dict(in_channels=512,'
        ' channels=64, norm_cfg=norm_cfg), auxiliary_head=dict('
        'in_channels=256, channels=32, norm_cfg=norm_cfg))\n')
    built = []
    for mode in ('bare', 'plugin'):
        proc = subprocess.run([sys.executable, '-c', BUILD, mode,
                               str(cfg)],
                              cwd=REPO,
                              capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        built.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert built[0]['wrapper'] == 'mmengine.optim.optimizer.' \
        'optimizer_wrapper.OptimWrapper'
    assert built[0] == built[1]
