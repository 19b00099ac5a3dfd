"""Cache the frozen SAM encoder's embeddings of a config's datasets (both
horizontal flips), for training without the encoder (CAD, decoder-only).

    python tools/cache_embeddings.py CONFIG [--out DIR] [--splits ...]

``--out`` defaults to ``model.backbone.embedding_source.dir``. A rerun adds
missing images and replaces a stale cache; see docs/speed_and_memory.md.
"""
import argparse
import copy
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

import mmseg_convlora  # noqa: F401  registers the plugin
from mmseg_convlora.embedding_cache import cache_format

# Transforms that change the image deterministically (or not at all).
DETERMINISTIC = ('LoadImageFromFile', 'CheckImage', 'LoadImageChecked',
                 'LoadImageFromNDArray', 'Resize', 'LoadAnnotations',
                 'LoadBinaryAnnotations', 'LoadTrans10KAnnotations',
                 'ResizeCADImage')
SPLITS = ('train', 'val', 'test')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Cache frozen SAM image embeddings of a dataset')
    parser.add_argument('config', help='train config (CAD or decoder-only)')
    parser.add_argument(
        '--out',
        help='cache directory (default: the config\'s '
        'model.backbone.embedding_source.dir)')
    parser.add_argument(
        '--splits',
        nargs='+',
        choices=SPLITS,
        default=list(SPLITS),
        help='dataloaders whose datasets are cached (default: all three; '
        'a dataset shared by val and test is cached once)')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--dtype',
        choices=['float16', 'float32'],
        default='float16',
        help='storage precision (float16 halves the disk use; SAM ViT '
        'embeddings are well inside its range)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config')
    return parser.parse_args(argv)


def build_encoder(cfg: Config, device: str):
    """The config's SAMViT without adapter and cache, and its checkpoint."""
    from mmseg.registry import MODELS
    backbone = copy.deepcopy(cfg.model.backbone)
    checkpoint = backbone.get('checkpoint') or cfg.model.get('sam_checkpoint')
    if checkpoint is None:
        raise SystemExit('The config names no SAM checkpoint '
                         '(model.sam_checkpoint); the cache records its hash.')
    backbone.pop('embedding_source', None)
    backbone['adapter'] = None
    backbone['checkpoint'] = checkpoint
    backbone['with_cp'] = False
    encoder = MODELS.build(backbone).to(device).eval()
    preprocessor = MODELS.build(cfg.model.data_preprocessor).to(device)
    return encoder, preprocessor, checkpoint


def cache_pipelines(pipeline):
    """(unflipped, flipped) pipelines: the config's deterministic image
    transforms, an explicit horizontal flip, PackSegInputs (the encoder
    needs neither the masks nor the image kept for CAD)."""
    cache_format.check_pipeline(pipeline, DETERMINISTIC)
    keep = [
        copy.deepcopy(t) for t in pipeline
        if t['type'] not in ('RandomFlip', 'PackSegInputs', 'PackCADInputs',
                             'ResizeCADImage', 'LoadCachedEmbedding')
        and not t['type'].endswith('Annotations')  # masks are not needed
    ]
    pack = dict(type='PackSegInputs')
    flip = dict(type='RandomFlip', prob=1.0, direction='horizontal')
    return Compose(keep + [pack]), Compose(keep + [flip, pack])


def unique_datasets(cfg: Config, splits):
    """(split, dataset cfg) of the chosen dataloaders, without repeats."""
    seen, out = set(), []
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        ds = loader['dataset']
        ident = repr(
            sorted((k, repr(v)) for k, v in ds.items() if k != 'pipeline'))
        if ident in seen:
            continue
        seen.add(ident)
        out.append((split, ds))
    return out


@torch.no_grad()
def encode(encoder, preprocessor, packed, dtype):
    data = preprocessor(
        dict(
            inputs=[p['inputs'] for p in packed],
            data_samples=[p['data_samples'] for p in packed]), False)
    emb = encoder(data['inputs'])[0]
    return [e.float().cpu().numpy().astype(dtype) for e in emb]


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    out = args.out or (cfg.model.backbone.get('embedding_source')
                       or {}).get('dir')
    if not out:
        raise SystemExit('Give --out DIR (the config sets no '
                         'model.backbone.embedding_source.dir).')
    from mmseg.registry import DATASETS

    encoder, preprocessor, checkpoint = build_encoder(cfg, args.device)
    print(f'hashing {checkpoint} ...', flush=True)
    want = cache_format.fingerprint(checkpoint, encoder.arch_name,
                                    encoder.img_size, encoder.out_channels)
    manifest = None
    if osp.isfile(osp.join(out, cache_format.MANIFEST_NAME)):
        try:
            manifest = cache_format.read_manifest(out)
        except cache_format.EmbeddingCacheError:
            manifest = None
        if manifest is not None and any(
                manifest.get(k) != want[k]
                for k in ('sam_sha256', 'arch', 'img_size', 'out_channels')):
            print(f'{out}: replacing a stale cache (sha256 '
                  f'{manifest.get("sam_sha256")}, size '
                  f'{manifest.get("img_size")}) by one for sha256 '
                  f'{want["sam_sha256"]}, size {want["img_size"]}')
            manifest = None
        elif manifest is not None and manifest.get('dtype') != args.dtype:
            manifest = None
    if manifest is None:
        manifest = dict(
            version=cache_format.CACHE_VERSION, entries={}, datasets=[])
    manifest.update(want)
    manifest.update(
        config=osp.abspath(args.config),
        dtype=args.dtype,
        data_preprocessor={
            k: cfg.model.data_preprocessor.get(k)
            for k in ('mean', 'std', 'bgr_to_rgb', 'size', 'pad_val')
        })
    entries = manifest['entries']
    dtype = np.float16 if args.dtype == 'float16' else np.float32
    os.makedirs(osp.join(out, 'emb'), exist_ok=True)

    start, done = time.time(), 0
    for split, ds_cfg in unique_datasets(cfg, args.splits):
        pipes = cache_pipelines(ds_cfg.get('pipeline', []))
        dataset = DATASETS.build(dict(copy.deepcopy(ds_cfg), pipeline=[]))
        root = dataset.data_root
        todo = []
        for idx in range(len(dataset)):
            info = dataset.get_data_info(idx)
            key = cache_format.cache_key(info['img_path'], root)
            entry = entries.setdefault(key, {})
            for tag, pipe in zip(('noflip', 'hflip'), pipes):
                name = cache_format.entry_file(key, tag)
                if entry.get(tag) == name and osp.isfile(osp.join(out, name)):
                    continue
                todo.append((key, tag, name, pipe, info))
        print(
            f'{split}: {len(dataset)} images under {root!r}, '
            f'{len(todo)} embeddings to compute',
            flush=True)
        for i in range(0, len(todo), args.batch_size):
            chunk = todo[i:i + args.batch_size]
            packed = [
                pipe(copy.deepcopy(info)) for _, _, _, pipe, info in chunk
            ]
            for (key, tag, name, _,
                 _), emb in zip(chunk,
                                encode(encoder, preprocessor, packed, dtype)):
                np.save(osp.join(out, name), emb)
                entries[key][tag] = name
            done += len(chunk)
        manifest['datasets'] = sorted(
            set(manifest.get('datasets', [])) | {f'{split}:{root}'})
        cache_format.write_manifest(out, manifest)
    cache_format.write_manifest(out, manifest)
    print(f'{done} embeddings written to {out} in {time.time() - start:.1f}s '
          f'({len(entries)} images cached; sha256 {want["sam_sha256"]}, '
          f'{want["arch"]}, {want["img_size"]}px)')
    return manifest


if __name__ == '__main__':
    main()
