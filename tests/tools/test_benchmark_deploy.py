"""``tools/benchmark.py deploy`` exports a tiny model and reports eager and
onnxruntime side by side with their differences (not timings: they are
not tested)."""
import pytest

from helpers import load_tool

pytest.importorskip('onnxruntime')  # requirements-deploy.txt: Python >= 3.11


@pytest.mark.slow
def test_deploy_subcommand_reports_both_backends(capsys):
    rows = load_tool('benchmark.py').main([
        'deploy', '--cases', 'tiny:64', '--method', 'convlora', '--warmup',
        '0', '--steps', '1', '--threads', '1', '--profile'
    ])
    (row, ) = rows
    assert row['case'] == 'tiny:64'
    assert row['eager_img_s'] > 0 and row['onnxruntime_img_s'] > 0
    assert row['onnxruntime_max_abs_diff'] < 1e-4
    assert row['onnxruntime_mask_diffs_off_threshold'] == 0
    assert 'MatMul' in row['profile']['onnxruntime']
    out = capsys.readouterr().out
    assert 'tiny:64' in out and 'onnxruntime/eager' in out
