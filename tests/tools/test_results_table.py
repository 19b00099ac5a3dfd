"""tools/analysis/results_table.py: the test metrics of several work dirs
in one Markdown / CSV table."""
import csv
import io
import json

import pytest

from helpers import load_tool


def table_tool():
    return load_tool('analysis', 'results_table.py')


def write_results(work_dir, timestamp, metrics):
    folder = work_dir / timestamp
    folder.mkdir(parents=True)
    (folder / f'{timestamp}.json').write_text(
        json.dumps(dict(metrics, data_time=0.1, time=2.0)))


@pytest.fixture
def polyp_runs(tmp_path):
    for method, sm in (('convlora', 0.9123), ('lora', 0.9001)):
        test_dir = tmp_path / 'work_dirs' / method / 'polyp' / 'test'
        # an older result that must not be used
        write_results(test_dir, '20240101_000000', {'Kvasir/Sm': 0.1})
        write_results(
            test_dir, '20240102_000000', {
                'Kvasir/Sm': sm,
                'Kvasir/MAE': 0.05,
                'CVC-300/Sm': sm - 0.1,
                'CVC-300/MAE': 0.04
            })
        # training logs beside it are not results
        vis = tmp_path / 'work_dirs' / method / 'polyp' / '2024' / 'vis_data'
        vis.mkdir(parents=True)
        (vis / 'scalars.json').write_text('{"loss": 1}\n')
    return tmp_path / 'work_dirs'


def test_markdown_long_table_with_labels_from_paths(polyp_runs):
    table = table_tool().main([str(polyp_runs / '*' / 'polyp')])
    assert table == ('| test set | run | Sm | MAE |\n'
                     '| --- | --- | --- | --- |\n'
                     '| Kvasir | convlora | 0.912 | 0.050 |\n'
                     '| Kvasir | lora | 0.900 | 0.050 |\n'
                     '| CVC-300 | convlora | 0.812 | 0.040 |\n'
                     '| CVC-300 | lora | 0.800 | 0.040 |\n')


def test_csv_wide_with_chosen_metrics_and_labels(polyp_runs, tmp_path):
    out = str(tmp_path / 'table.csv')
    tool = table_tool()
    tool.main([
        str(polyp_runs / 'lora' / 'polyp' / 'test'),
        str(polyp_runs / 'convlora' / 'polyp'), '--metrics', 'Sm', '--labels',
        'LoRA', 'Conv-LoRA', '--layout', 'wide', '--format', 'csv',
        '--precision', '4', '--out', out
    ])
    rows = list(csv.reader(io.StringIO(open(out).read())))
    assert rows == [['run', 'Kvasir/Sm', 'CVC-300/Sm'],
                    ['LoRA', '0.9001', '0.8001'],
                    ['Conv-LoRA', '0.9123', '0.8123']]


def test_single_test_set_and_missing_values(tmp_path):
    write_results(tmp_path / 'a', '20240101_000000', {'BER': 2.5})
    write_results(tmp_path / 'b', '20240101_000000', {
        'BER': 3.25,
        'shadow_BER': 4.0
    })
    table = table_tool().main([str(tmp_path / 'a'), str(tmp_path / 'b')])
    assert table == ('| run | BER | shadow_BER |\n'
                     '| --- | --- | --- |\n'
                     '| a | 2.500 | - |\n'
                     '| b | 3.250 | 4.000 |\n')


def test_work_dir_without_results_is_named(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='No test results in'):
        table_tool().main([str(tmp_path / 'empty')])
    with pytest.raises(FileNotFoundError, match='matches none'):
        table_tool().main([str(tmp_path / 'nothing*')])
