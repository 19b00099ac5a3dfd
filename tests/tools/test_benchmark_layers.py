"""``tools/benchmark.py layers`` times every layer on both inputs and
reports the ratios (not the timings: they are not tested)."""
import json
import os.path as osp

import pytest

from helpers import REPO, load_tool

SCRIPT = osp.join(REPO, 'tools', 'benchmark.py')


@pytest.mark.parametrize('arch,size,expected', [
    ('vit_b', 1024, [(25, 14, 14, 768), (1, 64, 64, 768)]),
    ('vit_h', 1024, [(25, 14, 14, 1280), (1, 64, 64, 1280)]),
    ('vit_b', 512, [(9, 14, 14, 768), (1, 32, 32, 768)]),
    ('tiny', 64, [(1, 4, 4, 32), (1, 4, 4, 32)]),
])
def test_input_shapes_are_sams_qkv_inputs(arch, size, expected):
    shape = load_tool('benchmark.py').layers.input_shape
    assert [shape(kind, arch, size, 1)
            for kind in ('windowed', 'global')] == expected
    assert shape('windowed', arch, size, 2)[0] == 2 * expected[0][0]


@pytest.mark.parametrize('frozen_input', [False, True])
def test_layers_subcommand_reports_every_layer(capsys, tmp_path, frozen_input):
    bench = load_tool('benchmark.py')
    out_json = str(tmp_path / 'rows.json')
    rows = bench.main([
        'layers', '--arch', 'tiny', '--size', '64', '--dispatch', 'grouped',
        'dense', '--warmup', '0', '--steps', '1', '--amp', 'bf16', '--json',
        out_json
    ] + (['--frozen-input', '--clock', 'cpu'] if frozen_input else []))
    out = capsys.readouterr().out
    assert ('cpu time' if frozen_input else 'wall time') in out
    layers = ['linear', 'lora', 'convlora[grouped]', 'convlora[dense]']
    assert [(r['input'], r['layer']) for r in rows] == [
        (inp, layer) for inp in ('windowed', 'global') for layer in layers
    ]
    for layer in layers:
        assert f' {layer} ' in out
    for r in rows:
        assert r['train_ms'] > 0 and r['infer_ms'] > 0
        assert r['train_ms_vs_linear'] == pytest.approx(
            r['train_ms'] /
            rows[0 if r['input'] == 'windowed' else 4]['train_ms'])
    assert {r['train_ms_vs_lora'] for r in rows if r['layer'] == 'lora'} \
        == {1.0}
    assert 'target' not in out
    with open(out_json) as f:
        assert len(json.load(f)['rows']) == len(rows)
