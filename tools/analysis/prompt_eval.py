"""Score a binary model on its test sets with no prompt, a GT box and 1 or 3
GT points; see docs/prompts.md."""
import copy
import os.path as osp
import sys
from typing import Optional

import cv2
import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.fileio import dump
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, TRANSFORMS
from segment_anything.utils.amg import batched_mask_to_box

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

from mmseg_convlora.apis import inference_config, init_segmentor
from mmseg_convlora.engine import named_sets
from mmseg_convlora.evaluation.metrics import functional
from mmseg_convlora.evaluation.metrics.utils import get_binary_prob_and_label
from mmseg_convlora.sam_predictor import PEFTSamPredictor
from tools.analysis.results_table import render
from tools.infer import model_parser

PROMPTS = ('none', 'box', 'point1', 'point3')
METRICS = ('Dice', 'IoU', 'Sm')


def parse_args(argv=None):
    parser = model_parser(__doc__, checkpoint=None)
    parser.add_argument('checkpoint', nargs='?', help='trained checkpoint')
    parser.add_argument(
        '--zero-shot',
        action='store_true',
        help='no checkpoint, no adapters: the SAM file of '
        'model.sam_checkpoint with its own decoder')
    parser.add_argument(
        '--img-size', type=int, help='input size (with --zero-shot only)')
    parser.add_argument(
        '--decoder',
        choices=('finetuned', 'original'),
        help='decoder of the prompted predictions (default finetuned; '
        'original with --zero-shot)')
    parser.add_argument(
        '--resize', choices=('square', 'longest_side'), default='square')
    parser.add_argument(
        '--prompts',
        nargs='+',
        choices=PROMPTS,
        help='default: all (without none for --zero-shot)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='write means and per-image values')
    args = parser.parse_args(argv)
    if args.zero_shot:
        if args.checkpoint or args.decoder == 'finetuned':
            parser.error('--zero-shot takes no checkpoint and uses SAM\'s '
                         'original decoder')
        args.decoder = 'original'
        args.prompts = args.prompts or list(PROMPTS[1:])
        if 'none' in args.prompts:
            parser.error('--zero-shot has no prompt-free prediction: leave '
                         'out "none"')
    elif args.checkpoint is None or args.img_size:
        parser.error('give a CHECKPOINT (or --zero-shot); --img-size only '
                     'with --zero-shot')
    args.decoder = args.decoder or 'finetuned'
    args.prompts = args.prompts or list(PROMPTS)
    return args


def load_config(args):
    cfg = inference_config(args.config, args.cfg_options)
    if cfg.model.decode_head.get('out_channels', 1) != 1:
        raise SystemExit(f'{args.config}: prompts are evaluated on binary '
                         'models (out_channels=1).')
    if args.zero_shot:
        cfg.model.backbone.adapter = None
    if args.img_size:
        size = cfg.model.backbone.img_size = args.img_size
        cfg.model.decode_head.img_size = size
        cfg.model.data_preprocessor.size = (size, size)
    return cfg


def centre_point(mask: np.ndarray) -> np.ndarray:
    """(x, y) of the mask pixel farthest from the boundary (the image border
    counts), first in row-major order on ties."""
    padded = np.pad(mask.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(dist), dist.shape)
    return np.array([x, y], dtype=np.float64)


def gt_prompt(kind: str, mask: np.ndarray, rng: np.random.Generator) -> dict:
    """``SamPredictor.predict`` arguments of one GT prompt, with SAM's
    choice of ``multimask_output``."""
    if kind == 'box':
        box = batched_mask_to_box(torch.from_numpy(mask)).numpy()
        return dict(box=box.astype(np.float64), multimask_output=False)
    points = [centre_point(mask)]
    if kind == 'point3':
        ys, xs = np.nonzero(mask)
        for i in rng.integers(0, len(xs), 2):
            points.append(np.array([xs[i], ys[i]], dtype=np.float64))
    return dict(
        point_coords=np.stack(points),
        point_labels=np.ones(len(points), dtype=np.int64),
        # one point is ambiguous: SAM's three masks, the best by its score
        multimask_output=kind == 'point1')


def scores(prob: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> dict:
    counts = functional.binary_counts(prob > 0.5, gt, valid)
    tp, fp, fn = counts['tp'], counts['fp'], counts['fn']
    return dict(
        Dice=float(functional.dice_from_counts(tp, fp, fn)) * 100,
        IoU=float(functional.iou_from_counts(tp, fp, fn)) * 100,
        Sm=functional.s_measure(
            *functional.prepare_sod_inputs(prob, gt & valid)))


def evaluate_set(dataset_cfg: dict, segmentor: Optional[torch.nn.Module],
                 predictor: PEFTSamPredictor, args) -> dict:
    """Per-image scores of one test set: ``{images, skipped_empty,
    per_image: {prompt: {metric: [...]}}, mean: {prompt: {metric: x}}}``."""
    dataset = DATASETS.build(copy.deepcopy(dataset_cfg))
    load_image = TRANSFORMS.build(
        next(t for t in dataset_cfg['pipeline'] if 'LoadImage' in t['type']))
    rng = np.random.default_rng(args.seed)
    per_image = {p: {m: [] for m in METRICS} for p in args.prompts}
    out = dict(images=[], skipped_empty=0, per_image=per_image)
    for i in range(len(dataset)):
        data = dataset[i]
        label = data['data_samples'].gt_sem_seg.data[0].numpy()
        valid = label != args.ignore_index
        gt = label == 1
        fg = gt & valid
        if not fg.any():
            out['skipped_empty'] += 1
            continue
        info = dataset.get_data_info(i)
        out['images'].append(osp.basename(info['img_path']))
        predictor.set_image(load_image(dict(info))['img'], 'BGR')
        for kind in args.prompts:
            if kind == 'none':
                with torch.no_grad():
                    pred = segmentor.test_step(pseudo_collate([data]))[0]
                prob = get_binary_prob_and_label(pred)[0]
            else:
                kwargs = gt_prompt(kind, fg, rng)
                # SAM's multi-mask tokens are trained in SAM only
                kwargs['multimask_output'] &= args.decoder == 'original'
                logits, iou_pred, _ = predictor.predict(
                    return_logits=True, **kwargs)
                logit = logits[int(np.argmax(iou_pred))]
                prob = 1 / (1 + np.exp(-logit.astype(np.float64)))
            for name, value in scores(prob, gt, valid).items():
                per_image[kind][name].append(value)
    out['mean'] = {
        kind: {
            m: float(np.mean(v)) if v else float('nan')
            for m, v in values.items()
        }
        for kind, values in per_image.items()
    }
    return out


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    args.ignore_index = cfg.model.decode_head.get('ignore_index', 255)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    segmentor = None
    if 'none' in args.prompts:
        segmentor = init_segmentor(cfg, args.checkpoint, args.device)
    predictor = PEFTSamPredictor(
        cfg,
        args.checkpoint,
        decoder=args.decoder,
        resize=args.resize,
        device=args.device)
    results = {
        name: evaluate_set(loader['dataset'], segmentor, predictor, args)
        for name, loader in named_sets(cfg.test_dataloader)
    }
    rows = [[
        name, kind,
        len(res['images']), f'{m["Dice"]:.2f}', f'{m["IoU"]:.2f}',
        f'{m["Sm"]:.4f}'
    ] for name, res in results.items() for kind, m in res['mean'].items()]
    header = ['test set', 'prompt', 'images', *METRICS]
    print(render(header, rows), end='')
    if args.out:
        summary = dict(
            config=args.config,
            checkpoint=args.checkpoint,
            zero_shot=args.zero_shot,
            img_size=cfg.model.backbone.img_size,
            decoder=args.decoder,
            resize=args.resize,
            seed=args.seed,
            results=results)
        dump(summary, args.out, indent=1)
        print(f'written to {osp.abspath(args.out)}')
    return results


if __name__ == '__main__':
    main()
