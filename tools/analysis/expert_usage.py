"""How often each Conv-LoRA expert (scale) is selected on the test sets (the
paper's Fig. 8); writes ``expert_usage.{png,json}``. See docs/train_test.md.
"""
import os.path as osp
import sys

import numpy as np
import torch
from mmengine.fileio import dump
from mmengine.runner import Runner
from mmengine.utils import mkdir_or_exist
from prettytable import PrettyTable

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))

from mmseg_convlora.apis import init_segmentor
from mmseg_convlora.engine import named_sets
from mmseg_convlora.models.adapters import ConvLoRA
from tools.infer import model_parser


def parse_args(argv=None):
    parser = model_parser(
        __doc__, config='config with a ConvLoRA adapter', device=True)
    parser.add_argument(
        '--out',
        help='output folder (default work_dirs/expert_usage/<config name>)')
    parser.add_argument(
        '--max-images', type=int, help='stop after this many images')
    return parser.parse_args(argv)


def conv_lora_adapters(model) -> list:
    """The model's Conv-LoRA adapters (refusing a model without one)."""
    adapters = [
        a for a in getattr(model.backbone, 'adapters', [])
        if isinstance(a, ConvLoRA)
    ]
    if not adapters:
        raise ValueError(
            'The config has no ConvLoRA adapter (model.backbone.adapter), '
            'so there are no experts to count.')
    return adapters


def block_kind(model, name: str) -> str:
    """'window' or 'global' for the encoder block holding layer ``name``."""
    parts = name.split('.')
    if len(parts) > 1 and parts[0] == 'blocks' and parts[1].isdigit():
        block = model.backbone.encoder.blocks[int(parts[1])]
        return 'window' if getattr(block, 'window_size', 0) > 0 else 'global'
    return '-'


def count_experts(model, max_images=None):
    """Run the model on its config's test sets and count expert selections.

    Returns:
        tuple: ``{layer: LongTensor (num_experts,)}``, number of images,
        test set names.
    """
    adapters = conv_lora_adapters(model)
    num_experts = max(a.layer_args['num_experts'] for a in adapters)
    counts, seen, sets = {}, 0, []
    for name, entry in named_sets(model.cfg.test_dataloader):
        sets.append(name)
        entry = dict(entry)
        for key in ('name', 'evaluator', 'extra_sets'):
            entry.pop(key, None)
        for batch in Runner.build_dataloader(entry):
            if max_images is not None:
                if seen >= max_images:
                    break
                batch = {k: v[:max_images - seen] for k, v in batch.items()}
            with torch.no_grad():
                model.test_step(batch)
            seen += len(batch['inputs'])
            for adapter in adapters:
                for layer, route in adapter.last_routing().items():
                    ids = route['expert_ids'].reshape(-1).cpu()
                    counts[layer] = counts.get(layer, 0) + torch.bincount(
                        ids, minlength=num_experts)
    return counts, seen, sets


def fractions(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    return counts / np.maximum(counts.sum(-1, keepdims=True), 1)


def usage_table(layers: dict, overall: list) -> str:
    """Samples and selection percentages per layer and overall."""
    table = PrettyTable(
        ['layer', 'attn', 'samples'] +
        [f's={i + 1}' for i in range(len(overall))],
        align='r')
    table.align['layer'] = 'l'
    rows = [(name, v['attn'], v['counts']) for name, v in layers.items()]
    for name, attn, counts in rows + [('overall', '', overall)]:
        table.add_row([name, attn, sum(counts)] +
                      [f'{f:.1%}' for f in fractions(counts)])
    return table.get_string()


def plot(layers: dict, overall: list, path: str, title: str) -> None:
    """Heat map of the frequencies per layer beside a bar chart of all."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    freq = fractions([v['counts'] for v in layers.values()])
    total = fractions(overall)
    scales = range(1, len(overall) + 1)
    fig, (ax0, ax1) = plt.subplots(
        1,
        2,
        figsize=(4 + 1.1 * len(overall), max(1.6 + 0.32 * len(layers), 3.2)),
        gridspec_kw=dict(width_ratios=[1.2, 1]))
    im = ax0.imshow(freq, aspect='auto', cmap='viridis', vmin=0, vmax=1)
    fig.colorbar(im, ax=ax0, fraction=0.046, pad=0.04)
    ax0.set_xticks(range(len(overall)), scales)
    ax0.set_yticks(
        range(len(layers)), [
            f'{name.replace(".attn.qkv", "")} ({v["attn"][0]})'
            for name, v in layers.items()
        ],
        fontsize=7)
    ax0.set(xlabel='expert scale', title='selection frequency per layer')
    if freq.size <= 400:
        for (i, j), f in np.ndenumerate(freq):
            ax0.text(
                j,
                i,
                f'{f:.2f}',
                ha='center',
                va='center',
                fontsize=6,
                color='white' if f < 0.5 else 'black')
    ax1.bar_label(ax1.bar(scales, total), fmt='%.2f', fontsize=7)
    ax1.set(
        xticks=scales,
        xlabel='expert scale',
        ylabel='fraction of routed samples',
        ylim=(0, 1),
        title='overall (all layers)')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    model = init_segmentor(args.config, args.checkpoint, args.device,
                           args.cfg_options)
    counts, num_images, sets = count_experts(model, args.max_images)
    if num_images == 0:
        raise RuntimeError('No images were run (empty dataset?).')
    layers = {
        name: dict(attn=block_kind(model, name), counts=c.tolist())
        for name, c in counts.items()
    }
    overall = sum(counts.values()).tolist()
    print(f'Conv-LoRA expert usage over {num_images} images '
          f'({", ".join(sets)}); a sample is one image in global blocks and '
          'one window in windowed blocks.')
    print(usage_table(layers, overall))

    out = args.out or osp.join('work_dirs', 'expert_usage',
                               osp.splitext(osp.basename(args.config))[0])
    mkdir_or_exist(out)
    png = osp.join(out, 'expert_usage.png')
    json_file = osp.join(out, 'expert_usage.json')
    plot(layers, overall, png,
         f'{osp.basename(args.config)}: {num_images} images')
    summary = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        datasets=sets,
        num_images=num_images,
        scales=list(range(1,
                          len(overall) + 1)),
        layers=layers,
        overall=overall)
    dump(summary, json_file, indent=1)
    print(f'Saved {png} and {json_file}')
    return counts


if __name__ == '__main__':
    main()
