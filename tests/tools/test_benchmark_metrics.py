"""``tools/benchmark.py metrics`` runs and reports every metric."""
import os.path as osp
import subprocess
import sys

import pytest

from helpers import REPO, load_tool

SCRIPT = osp.join(REPO, 'tools', 'benchmark.py')
METRIC_NAMES = ('SODMetric', 'SODMetric[Sm]', 'SODMetric[Em]',
                'SODMetric[wFm]', 'SODMetric[MAE]', 'BERMetric',
                'BERPerImageMetric', 'BinarySegMetric', 'MultiClassSegMetric')


def test_metrics_subcommand_in_process(capsys):
    bench = load_tool('benchmark.py')
    rows = bench.main(['metrics', '--num-images', '2', '--size', '64'])
    out = capsys.readouterr().out
    assert [r['name'] for r in rows] == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert name in out
    assert 'images/s' in out
    assert all(r['images_per_s'] > 0 for r in rows)


def test_parser_has_subcommands():
    bench = load_tool('benchmark.py')
    parser = bench.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([])  # a subcommand is required
    args = parser.parse_args(['metrics', '--only', 'BERMetric'])
    assert args.func is bench.metrics.run and args.only == ['BERMetric']


@pytest.mark.slow
def test_metrics_subcommand_cli():
    proc = subprocess.run([
        sys.executable, SCRIPT, 'metrics', '--num-images', '2', '--size', '32',
        '--only', 'SODMetric', 'BERMetric'
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'SODMetric' in proc.stdout and 'BERMetric' in proc.stdout
