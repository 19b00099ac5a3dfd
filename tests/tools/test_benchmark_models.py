"""``tools/benchmark.py models`` runs every method on a tiny setting and
reports all of them (not timings: they are not tested)."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from helpers import REPO, load_tool

SCRIPT = osp.join(REPO, 'tools', 'benchmark.py')
METHODS = ('decoder_only', 'lora', 'lora+cp', 'lora_merged', 'convlora',
           'convlora+cp', 'cad', 'cad_cached')


def test_global_blocks_keep_sam_ratio():
    scaled = load_tool('benchmark.py').models.scaled_global_indexes
    assert scaled(12, (2, 5, 8, 11), 12) == [2, 5, 8, 11]
    assert scaled(12, (2, 5, 8, 11), 6) == [2, 5]
    assert scaled(12, (2, 5, 8, 11), 4) == [3]
    assert scaled(32, (7, 15, 23, 31), 8) == [7]
    assert scaled(32, (7, 15, 23, 31), 16) == [7, 15]


def test_models_subcommand_reports_every_method(capsys, tmp_path):
    bench = load_tool('benchmark.py')
    out_json = str(tmp_path / 'rows.json')
    rows = bench.main([
        'models', '--arch', 'tiny', '--size', '64', '--with-cp', '--warmup',
        '0', '--steps', '1', '--memory-isolation', 'none', '--amp', 'bf16',
        '--json', out_json
    ])
    out = capsys.readouterr().out
    assert [r['method'] for r in rows] == list(METHODS)
    for method in METHODS:
        assert f' {method} ' in out
    assert 'target' not in out  # measurements only
    by = {r['method']: r for r in rows}
    for m in METHODS:
        assert by[m]['trainable'] > 0
        if m != 'lora_merged':
            assert by[m]['train_s'] is not None
            assert by[m]['train_mem_mib'] is not None
        if not m.endswith('+cp'):
            assert by[m]['infer_s'] is not None
    assert by['lora']['train_s_vs_lora'] == 1.0
    assert by['cad']['trainable'] == by['cad_cached']['trainable']
    with open(out_json) as f:
        assert len(json.load(f)['rows']) == len(METHODS)


@pytest.mark.slow
def test_models_cli_measures_memory_in_child_processes():
    proc = subprocess.run([
        sys.executable, SCRIPT, 'models', '--arch', 'tiny', '--size', '64',
        '--depth', '1', '--methods', 'cad_cached', '--modes', 'train',
        '--warmup', '0', '--steps', '1', '--amp', 'fp16'
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'cad_cached' in proc.stdout and 'peak RSS growth' in proc.stdout
    row = [
        line for line in proc.stdout.splitlines() if ' cad_cached ' in line
    ][0]
    assert float(row.split('|')[5]) >= 0  # train peak (MiB) from the child


def test_models_on_mobile_sam_count_tiny_vit_qkv_adapters():
    """``--arch mobile_sam``: LoRA / Conv-LoRA on TinyViT's ten attention
    qkv layers (2 of width 128, 6 of 160, 2 of 320), CAD beside it."""
    rows = load_tool('benchmark.py').main([
        'models', '--arch', 'mobile_sam', '--size', '64', '--cad-size', '32',
        '--methods', 'decoder_only', 'lora', 'convlora', 'cad', '--warmup',
        '0', '--steps', '1', '--memory-isolation', 'none', '--measure', 'time',
        '--modes', 'train'
    ])
    by = {r['method']: r['trainable'] for r in rows}
    assert by['decoder_only'] == 3_505_536  # SAM's decoder, as for ViTs
    widths = [128] * 2 + [160] * 6 + [320] * 2
    rank, experts = 3, 8
    lora = sum(rank * (c + 3 * c) for c in widths)  # A: r x C, B: 3C x r
    assert by['lora'] - by['decoder_only'] == lora == 22_272
    # per layer: 8 experts' 3x3 conv r->r with bias, gate and noise (r x E)
    expert = rank * rank * 9 + rank
    per_layer = experts * expert + 2 * rank * experts
    assert by['convlora'] - by['lora'] == len(widths) * per_layer == 7_200
    assert all(r['train_s'] is not None for r in rows)
