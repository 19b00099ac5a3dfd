"""Cache the frozen SAM encoder's embeddings of a config's datasets (both
horizontal flips) for training without the encoder (CAD, decoder-only).

A rerun adds missing images and replaces a stale cache; see
docs/speed_and_memory.md.
"""
import copy
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.utils import mkdir_or_exist

from mmseg_convlora.embedding_cache import cache_format
from tools.infer import model_parser

# Transforms that change the image deterministically (or not at all).
DETERMINISTIC = ('LoadImageFromFile', 'CheckImage', 'LoadImageChecked',
                 'LoadImageFromNDArray', 'Resize', 'LoadAnnotations',
                 'LoadBinaryAnnotations', 'LoadTrans10KAnnotations',
                 'ResizeCADImage')
SPLITS = ('train', 'val', 'test')
# what an embedding depends on besides the image
FINGERPRINT = ('sam_sha256', 'arch', 'img_size', 'out_channels')


def parse_args(argv=None):
    parser = model_parser(
        'Cache frozen SAM image embeddings of a dataset',
        config='train config (CAD or decoder-only)',
        checkpoint=None,
        device=True)
    parser.add_argument(
        '--out',
        help='cache directory (default: model.backbone.embedding_source.dir)')
    parser.add_argument(
        '--splits',
        nargs='+',
        choices=SPLITS,
        default=list(SPLITS),
        help='dataloaders whose datasets are cached (default: all three; '
        'a dataset shared by val and test is cached once)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--dtype',
        choices=['float16', 'float32'],
        default='float16',
        help='storage precision (float16 halves the disk use; SAM ViT '
        'embeddings are well inside its range)')
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
    backbone.update(adapter=None, checkpoint=checkpoint, with_cp=False)
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
    found = {}
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if loader:
            ds = loader['dataset']
            ident = repr(
                sorted((k, repr(v)) for k, v in ds.items() if k != 'pipeline'))
            found.setdefault(ident, (split, ds))
    return list(found.values())


def old_manifest(out: str, want: dict, dtype: str) -> dict:
    """The manifest of the cache in ``out`` if still valid, else a new one."""
    try:
        manifest = cache_format.read_manifest(out)
    except cache_format.EmbeddingCacheError:  # none, or an old format
        manifest = None
    if manifest and any(manifest.get(k) != want[k] for k in FINGERPRINT):
        print(f'{out}: replacing a stale cache (sha256 '
              f'{manifest.get("sam_sha256")}, size '
              f'{manifest.get("img_size")}) by one for sha256 '
              f'{want["sam_sha256"]}, size {want["img_size"]}')
    elif manifest and manifest.get('dtype') == dtype:
        return manifest
    return dict(version=cache_format.CACHE_VERSION, entries={}, datasets=[])


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
    manifest = old_manifest(out, want, args.dtype)
    manifest.update(
        want,
        config=osp.abspath(args.config),
        dtype=args.dtype,
        data_preprocessor={
            k: cfg.model.data_preprocessor.get(k)
            for k in ('mean', 'std', 'bgr_to_rgb', 'size', 'pad_val')
        })
    entries = manifest['entries']
    mkdir_or_exist(osp.join(out, 'emb'))

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
                if entry.get(tag) != name or not osp.isfile(
                        osp.join(out, name)):
                    todo.append((key, tag, name, pipe, info))
        print(
            f'{split}: {len(dataset)} images under {root!r}, '
            f'{len(todo)} embeddings to compute',
            flush=True)
        for i in range(0, len(todo), args.batch_size):
            chunk = todo[i:i + args.batch_size]
            packed = [pipe(copy.deepcopy(info)) for *_, pipe, info in chunk]
            with torch.no_grad():
                data = preprocessor(pseudo_collate(packed), False)
                embs = encoder(data['inputs'])[0].float().cpu().numpy()
            for (key, tag, name, *_), emb in zip(chunk, embs):
                np.save(osp.join(out, name), emb.astype(args.dtype))
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
