"""tools/analysis/prompt_eval.py and paired_bootstrap.py."""
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from segment_anything.utils.amg import batched_mask_to_box

from mmseg_convlora.apis import init_segmentor
from mmseg_convlora.evaluation.metrics import BinarySegMetric, SODMetric
from helpers import REPO, demo_cfg_options, load_tool

DEMO = osp.join(REPO, 'configs', 'demo', 'tiny_shadow.py')
prompt_eval = load_tool('analysis', 'prompt_eval.py')
paired_bootstrap = load_tool('analysis', 'paired_bootstrap.py')


def test_centre_point_is_farthest_from_the_boundary():
    mask = np.zeros((9, 12), dtype=bool)
    mask[2:7, 5:10] = True  # 5 x 5: the centre pixel is row 4, column 7
    assert prompt_eval.centre_point(mask).tolist() == [7.0, 4.0]
    # the image border counts as boundary: the middle, not a corner
    assert prompt_eval.centre_point(np.ones((5, 5), bool)).tolist() == [2, 2]


def test_gt_prompts():
    mask = np.zeros((20, 30), dtype=bool)
    mask[3:12, 10:19] = True  # 9 x 9, centre row 7, column 14
    mask[15, 2] = True
    rng = np.random.default_rng(0)
    box = prompt_eval.gt_prompt('box', mask, rng)
    assert box['box'].tolist() == batched_mask_to_box(
        torch.from_numpy(mask)).tolist() == [2, 3, 18, 15]
    assert box['multimask_output'] is False
    one = prompt_eval.gt_prompt('point1', mask, rng)
    assert one['point_coords'].tolist() == [[14, 7]]
    assert one['multimask_output'] is True
    three = prompt_eval.gt_prompt('point3', mask, rng)
    assert three['point_labels'].tolist() == [1, 1, 1]
    assert three['point_coords'][0].tolist() == [14, 7]
    x, y = three['point_coords'].astype(int).T
    assert mask[y, x].all() and three['multimask_output'] is False


@pytest.mark.parametrize('argv',
                         [[DEMO], [DEMO, 'x.pth', '--zero-shot'],
                          [DEMO, '--zero-shot', '--decoder', 'finetuned'],
                          [DEMO, '--zero-shot', '--prompts', 'none'],
                          [DEMO, 'x.pth', '--img-size', '1024']])
def test_contradictory_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        prompt_eval.parse_args(argv)


def package_metrics(checkpoint, options):
    """Dice, IoU (BinarySegMetric) and Sm (SODMetric), as tools/test.py
    computes them, on the demo's test set."""
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(options)
    model = init_segmentor(cfg, checkpoint)
    dataset = prompt_eval.DATASETS.build(cfg.test_dataloader.dataset)
    metrics = BinarySegMetric(), SODMetric(sod_metrics=['Sm'])
    for i in range(len(dataset)):
        data = dataset[i]
        with torch.no_grad():
            pred = model.test_step(
                dict(
                    inputs=[data['inputs']],
                    data_samples=[data['data_samples']]))[0].to_dict()
        for m in metrics:
            m.process({}, [pred])
    out = {}
    for m in metrics:
        out.update(m.compute_metrics(m.results))
    return out


@pytest.mark.slow
def test_demo_model_end_to_end(trained_demo, demo_data, tmp_path):
    work, _ = trained_demo
    ckpt = glob.glob(osp.join(work, 'best_BER_*.pth'))[0]
    options = dict(o.split('=', 1) for o in demo_cfg_options(demo_data))
    opts = ['--cfg-options'] + demo_cfg_options(demo_data)
    out = str(tmp_path / 'eval.json')
    prompt_eval.main([DEMO, ckpt, '--out', out] + opts)
    with open(out) as f:
        saved = json.load(f)
    res = saved['results']['test']
    assert len(res['images']) == 8 and res['skipped_empty'] == 0
    for kind in prompt_eval.PROMPTS:
        for metric, values in res['per_image'][kind].items():
            assert len(values) == 8
            assert res['mean'][kind][metric] == pytest.approx(np.mean(values))
    # the prompt-free row is what tools/test.py's metrics report
    expected = package_metrics(ckpt, options)
    for metric in ('Dice', 'IoU', 'Sm'):
        assert res['mean']['none'][metric] == pytest.approx(
            expected[metric], abs=1e-9)
    # seeded: the same numbers again; SAM's decoder gives others
    again = prompt_eval.main([DEMO, ckpt, '--prompts', 'point3'] + opts)
    assert again['test']['per_image']['point3'] == res['per_image']['point3']
    original = prompt_eval.main(
        [DEMO, ckpt, '--prompts', 'box', '--decoder', 'original'] + opts)
    assert original['test']['per_image']['box'] != res['per_image']['box']
    # zero-shot SAM at another input size
    zero = str(tmp_path / 'zero.json')
    prompt_eval.main(
        [DEMO, '--zero-shot', '--img-size', '256', '--out', zero] + opts)
    with open(zero) as f:
        saved = json.load(f)
    assert saved['img_size'] == 256 and saved['decoder'] == 'original'
    assert list(
        saved['results']['test']['mean']) == ['box', 'point1', 'point3']


def test_bootstrap_by_hand():
    # resampled means of [0, 1] are 0, 0.5 or 1 (1/4, 1/2, 1/4)
    assert paired_bootstrap.bootstrap(np.array([0., 1.])) == (0.5, 0., 1.)
    assert paired_bootstrap.bootstrap(np.full(3, 2.)) == (2., 2., 2.)


def write_eval(path, images, values, prompt='none'):
    with open(path, 'w') as f:
        json.dump(
            dict(
                results=dict(
                    Kvasir=dict(
                        images=images, per_image={prompt: dict(
                            Dice=values)}))), f)
    return str(path)


def test_paired_bootstrap_pairs_by_image_and_averages_seeds(tmp_path):
    a1 = write_eval(tmp_path / 'a1.json', ['x', 'y'], [90., 80.])
    a2 = write_eval(tmp_path / 'a2.json', ['y', 'x'], [80., 80.])
    b = write_eval(tmp_path / 'b.json', ['y', 'x'], [80., 70.], 'box')
    # A - B: x 90 - 70, y 80 - 80
    out = paired_bootstrap.main([a1, b, '--prompt-b', 'box'])
    assert out == dict(Kvasir=dict(mean=10., low=0., high=20.))
    # A over two seeds: x (90 + 80) / 2 - 70 = 15, y 0
    out = paired_bootstrap.main([f'{a1},{a2}', b, '--prompt-b', 'box'])
    assert out == dict(Kvasir=dict(mean=7.5, low=0., high=15.))
    other = write_eval(tmp_path / 'c.json', ['x', 'z'], [1., 2.])
    with pytest.raises(SystemExit):
        paired_bootstrap.main([a1, other])
    with pytest.raises(SystemExit):
        paired_bootstrap.main([a1, b])  # b has no prompt-free values
