"""The on-disk cache of frozen SAM image embeddings: ``DIR/manifest.json``
and one ``DIR/emb/<hash>_<flip>.npy`` (C, h, w) array per image and flip."""
import hashlib
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence

MANIFEST_NAME = 'manifest.json'
CACHE_VERSION = 1
FLIP_TAGS = {None: 'noflip', 'horizontal': 'hflip'}

_HASH_MEMO: Dict[tuple, str] = {}


class EmbeddingCacheError(RuntimeError):
    """A missing, stale or incomplete embedding cache."""


def rebuild_command(cache_dir: str, config: Optional[str] = None) -> str:
    """The command that (re)builds the cache."""
    return (f'python tools/cache_embeddings.py {config or "CONFIG"} '
            f'--out {cache_dir}')


def sha256_file(path: str, chunk_size: int = 1 << 22) -> str:
    """SHA-256 of a file, memoised per process on (path, size, mtime)."""
    path = osp.abspath(os.fspath(path))
    stat = os.stat(path)
    memo_key = (path, stat.st_size, stat.st_mtime_ns)
    if memo_key not in _HASH_MEMO:
        digest = hashlib.sha256()
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(chunk_size), b''):
                digest.update(block)
        _HASH_MEMO[memo_key] = digest.hexdigest()
    return _HASH_MEMO[memo_key]


def cache_key(img_path: str, data_root: Optional[str] = None) -> str:
    """The manifest key of an image: its path relative to ``data_root``
    (posix separators), or the path itself without a root."""
    path = osp.normpath(os.fspath(img_path))
    if data_root:
        rel = osp.relpath(path, osp.normpath(os.fspath(data_root)))
        if not rel.startswith('..'):
            path = rel
    return path.replace(os.sep, '/').lstrip('/')


def flip_tag(flip: bool, direction: Optional[str] = 'horizontal') -> str:
    """'noflip' or 'hflip'; other flips have no cached embedding."""
    if not flip:
        return FLIP_TAGS[None]
    if direction not in FLIP_TAGS:
        raise EmbeddingCacheError(
            f'The embedding cache holds unflipped and horizontally flipped '
            f'embeddings only, but the pipeline flipped {direction!r}. Use '
            "RandomFlip(direction='horizontal') with cached embeddings.")
    return FLIP_TAGS[direction]


def entry_file(key: str, tag: str) -> str:
    """Relative file name of one embedding (keys hashed)."""
    name = hashlib.sha1(key.encode('utf-8')).hexdigest()[:20]
    return f'emb/{name}_{tag}.npy'


def read_manifest(cache_dir: str) -> dict:
    """The manifest of ``cache_dir``, refusing a missing or old one."""
    path = osp.join(cache_dir, MANIFEST_NAME)
    if not osp.isfile(path):
        raise EmbeddingCacheError(
            f'No SAM embedding cache in {cache_dir!r} ({MANIFEST_NAME} is '
            f'missing). Build it with: {rebuild_command(cache_dir)}')
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get('version') != CACHE_VERSION:
        raise EmbeddingCacheError(
            f'The embedding cache in {cache_dir!r} has format version '
            f'{manifest.get("version")!r}, this code reads version '
            f'{CACHE_VERSION}. Rebuild it with: '
            f'{rebuild_command(cache_dir, manifest.get("config"))}')
    return manifest


def write_manifest(cache_dir: str, manifest: dict) -> None:
    """Write the manifest atomically."""
    os.makedirs(cache_dir, exist_ok=True)
    tmp = osp.join(cache_dir, MANIFEST_NAME + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    os.replace(tmp, osp.join(cache_dir, MANIFEST_NAME))


def fingerprint(sam_checkpoint: str, arch: str, img_size: int,
                out_channels: int) -> dict:
    """What an embedding depends on (besides the image and its flip)."""
    return dict(
        sam_checkpoint=osp.abspath(sam_checkpoint),
        sam_sha256=sha256_file(sam_checkpoint),
        arch=arch,
        img_size=int(img_size),
        out_channels=int(out_channels))


def check_manifest(manifest: dict, cache_dir: str, sam_checkpoint: str,
                   arch: str, img_size: int, out_channels: int) -> None:
    """Refuse a cache computed with another checkpoint, arch or size,
    naming both and the command that rebuilds it."""
    want = fingerprint(sam_checkpoint, arch, img_size, out_channels)
    problems = []
    if manifest.get('sam_sha256') != want['sam_sha256']:
        problems.append(
            f'it was computed from SAM checkpoint '
            f'{manifest.get("sam_checkpoint")!r} (sha256 '
            f'{manifest.get("sam_sha256")}), but this model uses '
            f'{want["sam_checkpoint"]!r} (sha256 {want["sam_sha256"]})')
    for field, what in (('img_size', 'input size'), ('arch', 'arch'),
                        ('out_channels', 'embedding channels')):
        if manifest.get(field) != want[field]:
            problems.append(f'its {what} is {manifest.get(field)!r}, the '
                            f"model's is {want[field]!r}")
    if problems:
        raise EmbeddingCacheError(
            f'The SAM embedding cache in {cache_dir!r} is stale: ' +
            '; '.join(problems) + '. Rebuild it with: ' +
            rebuild_command(cache_dir, manifest.get('config')) +
            ' (or point the config at a cache built for this checkpoint).')


def find_entry(entries: Dict[str, dict], img_path: str) -> Optional[dict]:
    """The entry of the longest tail of ``img_path`` that is a key."""
    parts = osp.normpath(os.fspath(img_path)).replace(os.sep, '/').split('/')
    for start in range(len(parts)):
        entry = entries.get('/'.join(parts[start:]))
        if entry is not None:
            return entry
    return None


def check_pipeline(pipeline: Sequence[dict],
                   deterministic: Sequence[str]) -> None:
    """Refuse pipelines whose image changes randomly except by a horizontal
    flip (one cached embedding per image and flip cannot follow them)."""
    for t in pipeline:
        kind = t['type'] if isinstance(t, dict) else type(t).__name__
        kind = kind.split('.')[-1]
        if kind in deterministic or kind in ('PackSegInputs', 'PackCADInputs',
                                             'LoadCachedEmbedding'):
            continue
        if kind == 'RandomFlip':
            direction = t.get('direction', 'horizontal') \
                if isinstance(t, dict) else 'horizontal'
            if direction in ('horizontal', ['horizontal'], ('horizontal', )):
                continue
        raise EmbeddingCacheError(
            f'The pipeline has {kind}, which changes the image in a way the '
            'embedding cache cannot follow: it holds one embedding per image '
            'and horizontal flip, so the image may only be loaded, resized '
            'to the fixed input size and flipped horizontally. Remove '
            f'{kind} or train with the encoder (no embedding_source).')
