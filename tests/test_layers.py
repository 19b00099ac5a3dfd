"""The package's layers: no module imports a module of a higher layer or of
another part of its own layer, function-local imports included. The
optional features sit above the core, which never imports them."""
import ast
import os
import os.path as osp

import pytest

from helpers import REPO

PACKAGE = 'mmseg_convlora'
# Lowest first; the parts of one layer do not import each other.
LAYERS = [
    ('compat', 'utils'),
    ('models.utils', ),
    ('models.adapters', 'models.losses'),
    ('models.backbones', ),
    ('models.heads', ),
    ('models.segmentors', ),
    ('models', ),
    ('datasets', 'evaluation'),
    ('engine', ),
    ('apis', ),
    # optional features
    ('deploy', 'embedding_cache', 'peft_backbone', 'sam_predictor'),
    ('', ),  # the package itself: registers everything
]
RANK = {
    '.'.join(filter(None, (PACKAGE, part))): rank
    for rank, parts in enumerate(LAYERS)
    for part in parts
}


def modules():
    """(dotted name, path) of every module of the package."""
    root = osp.join(REPO, PACKAGE)
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            if name.endswith('.py'):
                path = osp.join(folder, name)
                dotted = osp.splitext(osp.relpath(path, REPO))[0]
                dotted = dotted.replace(os.sep, '.')
                yield dotted.removesuffix('.__init__'), path


def part_of(module: str) -> str:
    """The part of :data:`LAYERS` that ``module`` belongs to."""
    parts = [p for p in RANK if module == p or module.startswith(p + '.')]
    return max(parts, key=len)


def imports(module: str, path: str):
    """(line, imported module) of every import in the file, nested ones
    included; ``from . import x`` counts as importing ``x``."""
    is_package = path.endswith('__init__.py')
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = module.split('.')
                anchor = anchor[:len(anchor) - node.level + is_package]
                base = '.'.join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f'{base}.{alias.name}'
                known = sub.replace('.', os.sep)
                yield node.lineno, sub if osp.exists(
                    osp.join(REPO, known + '.py')) or osp.isdir(
                        osp.join(REPO, known)) else base


def upward_imports(files):
    """Imports of a higher layer (or a peer part) in ``files``, (dotted
    name, path) pairs."""
    found = []
    for module, path in files:
        part = part_of(module)
        for line, target in imports(module, path):
            top = target.split('.')[0]
            if top in ('tools', 'tests', 'helpers'):
                found.append(f'{path}:{line} imports {target}')
            if top != PACKAGE:
                continue
            other = part_of(target)
            if other != part and RANK[other] >= RANK[part]:
                found.append(f'{path}:{line}: {part} (layer {RANK[part]}) '
                             f'imports {target} (layer {RANK[other]})')
    return found


def test_every_module_belongs_to_a_layer():
    top_level = {m.split('.')[1] for m, _ in modules() if '.' in m}
    unknown = sorted(t for t in top_level if f'{PACKAGE}.{t}' not in RANK)
    assert not unknown, f'add {unknown} to LAYERS in {__file__}'


def test_no_upward_imports():
    assert upward_imports(modules()) == []


@pytest.mark.parametrize('source,target', [
    ('from ...peft_backbone import PEFTBackbone',
     'mmseg_convlora.peft_backbone'),
    ('def f():\n    from ...apis import init_segmentor',
     'mmseg_convlora.apis'),
    ('from .. import heads', 'mmseg_convlora.models.heads'),
    ('import mmseg_convlora.engine.hooks', 'mmseg_convlora.engine.hooks'),
    ('from tools.make_demo_data import TINY_ENCODER', 'tools.make_demo_data'),
])
def test_an_upward_import_is_found(source, target, tmp_path):
    """Top-level and function-local, absolute and relative imports."""
    probe = tmp_path / 'probe.py'
    probe.write_text(source)
    found = upward_imports([('mmseg_convlora.models.backbones.sam_vit',
                             str(probe))])
    assert len(found) == 1 and f'imports {target}' in found[0], found
