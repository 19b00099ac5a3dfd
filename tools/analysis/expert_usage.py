"""How often each Conv-LoRA expert (scale) is selected (the paper's Fig. 8);
writes ``expert_usage.{png,json}``. See docs/train_test.md.

    python tools/analysis/expert_usage.py CONFIG CHECKPOINT [--out DIR]
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import mmseg_convlora  # noqa: F401  registers the plugin
from mmseg_convlora.models.utils import load_peft_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Conv-LoRA expert (scale) selection frequencies')
    parser.add_argument(
        'config', help='config file (with a ConvLoRA '
        'adapter)')
    parser.add_argument('checkpoint', help='checkpoint from tools/train.py')
    parser.add_argument(
        '--out',
        help='output folder (default '
        'work_dirs/expert_usage/<config name>)')
    parser.add_argument(
        '--split',
        choices=['test', 'val'],
        default='test',
        help='which dataloader(s) of the config to run')
    parser.add_argument(
        '--max-images',
        type=int,
        default=None,
        help='stop after this many images (all by default)')
    parser.add_argument(
        '--device',
        default=None,
        help="'cpu' or 'cuda' (default: cuda if available)")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'model.sam_checkpoint=/path/to/sam_vit_h_4b8939.pth')
    return parser.parse_args(argv)


def conv_lora_adapters(model) -> list:
    """The model's Conv-LoRA adapters (refusing a model without one)."""
    from mmseg_convlora.models.adapters import ConvLoRA
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
    """'window' or 'global' for the block holding the layer ``name``."""
    parts = name.split('.')
    if len(parts) > 1 and parts[0] == 'blocks' and parts[1].isdigit():
        block = model.backbone.encoder.blocks[int(parts[1])]
        return 'window' if getattr(block, 'window_size', 0) > 0 else 'global'
    return '-'


def build_loaders(cfg, split: str) -> List[tuple]:
    from mmengine.runner import Runner
    key = f'{split}_dataloader'
    if key not in cfg or cfg[key] is None:
        raise ValueError(f'The config has no {key}.')
    entries = cfg[key]
    entries = list(entries) if isinstance(entries, (list, tuple)) \
        else [entries]
    loaders = []
    for i, entry in enumerate(entries):
        entry = copy.deepcopy(entry)
        name = entry.pop('name', None) or f'{split}{i if i else ""}'
        entry.pop('evaluator', None)
        entry['num_workers'] = min(int(entry.get('num_workers', 0)), 2)
        if entry['num_workers'] == 0:
            entry['persistent_workers'] = False
        loaders.append((name, Runner.build_dataloader(entry)))
    return loaders


def count_experts(model, loaders, device, max_images: Optional[int] = None):
    """Run the model and count expert selections per layer.

    Returns:
        tuple: (counts: dict layer -> LongTensor (M,), num_images)
    """
    adapters = conv_lora_adapters(model)
    counts = {}
    seen = 0
    model.eval()
    with torch.no_grad():
        for _, loader in loaders:
            for batch in loader:
                if max_images is not None and seen >= max_images:
                    break
                if max_images is not None:
                    keep = max_images - seen
                    batch = {k: v[:keep] for k, v in batch.items()}
                model.test_step(batch)
                seen += len(batch['inputs'])
                for adp in adapters:
                    num_experts = adp.layer_args['num_experts']
                    for name, route in adp.last_routing().items():
                        counts[name] = counts.get(name, 0) + torch.bincount(
                            route['expert_ids'].reshape(-1).cpu(),
                            minlength=num_experts)
    return counts, seen


def format_table(model, counts: Dict[str, torch.Tensor]) -> str:
    num_experts = max(len(c) for c in counts.values())
    header = (f'{"layer":<22} {"attn":<6} {"samples":>8} ' +
              ' '.join(f'{"s=" + str(i + 1):>6}' for i in range(num_experts)))
    lines = [header, '-' * len(header)]
    total = torch.zeros(num_experts, dtype=torch.long)
    for name, c in counts.items():
        n = int(c.sum())
        total[:len(c)] += c
        frac = (c.double() / max(n, 1) * 100).tolist()
        lines.append(f'{name:<22} {block_kind(model, name):<6} {n:>8} ' +
                     ' '.join(f'{f:>5.1f}%' for f in frac))
    lines.append('-' * len(header))
    n = int(total.sum())
    frac = (total.double() / max(n, 1) * 100).tolist()
    lines.append(f'{"overall":<22} {"":<6} {n:>8} ' + ' '.join(f'{f:>5.1f}%'
                                                               for f in frac))
    return '\n'.join(lines)


def plot(model,
         counts: Dict[str, torch.Tensor],
         path: str,
         title: str = '') -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(counts)
    num_experts = max(len(c) for c in counts.values())
    freq = np.zeros((len(names), num_experts))
    for i, name in enumerate(names):
        c = counts[name].double().numpy()
        freq[i, :len(c)] = c / max(c.sum(), 1)
    total = sum(counts[n].double().numpy() for n in names)
    total = total / max(total.sum(), 1)

    height = 1.6 + 0.32 * len(names)
    fig, (ax0, ax1) = plt.subplots(
        1,
        2,
        figsize=(4 + 0.55 * num_experts * 2, max(height, 3.2)),
        gridspec_kw=dict(width_ratios=[1.2, 1]))
    im = ax0.imshow(freq, aspect='auto', cmap='viridis', vmin=0, vmax=1)
    ax0.set_xticks(range(num_experts))
    ax0.set_xticklabels([str(i + 1) for i in range(num_experts)])
    ax0.set_xlabel('expert scale')
    ax0.set_yticks(range(len(names)))
    ax0.set_yticklabels([
        f'{n.replace(".attn.qkv", "")} ({block_kind(model, n)[0]})'
        for n in names
    ],
                        fontsize=7)
    ax0.set_title('selection frequency per layer')
    if len(names) * num_experts <= 400:
        for i in range(len(names)):
            for j in range(num_experts):
                ax0.text(
                    j,
                    i,
                    f'{freq[i, j]:.2f}',
                    ha='center',
                    va='center',
                    fontsize=6,
                    color='white' if freq[i, j] < 0.5 else 'black')
    fig.colorbar(im, ax=ax0, fraction=0.046, pad=0.04)
    ax1.bar(range(1, num_experts + 1), total, color='tab:blue')
    ax1.set_xticks(range(1, num_experts + 1))
    ax1.set_xlabel('expert scale')
    ax1.set_ylabel('fraction of routed samples')
    ax1.set_ylim(0, 1)
    ax1.set_title('overall (all layers)')
    for x, y in zip(range(1, num_experts + 1), total):
        ax1.text(x, y + 0.01, f'{y:.2f}', ha='center', fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import MODELS

    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = MODELS.build(cfg.model)
    load_peft_checkpoint(model, args.checkpoint)
    model.to(device)
    loaders = build_loaders(cfg, args.split)
    counts, num_images = count_experts(model, loaders, device, args.max_images)
    if num_images == 0:
        raise RuntimeError('No images were run (empty dataset?).')

    out = args.out or osp.join('work_dirs', 'expert_usage',
                               osp.splitext(osp.basename(args.config))[0])
    os.makedirs(out, exist_ok=True)
    table = format_table(model, counts)
    sets = ', '.join(name for name, _ in loaders)
    print(f'Conv-LoRA expert usage over {num_images} images ({sets}); '
          'a sample is one image in global blocks and one window in '
          'windowed blocks.')
    print(table)
    png = osp.join(out, 'expert_usage.png')
    plot(
        model,
        counts,
        png,
        title=f'{osp.basename(args.config)}: {num_images} images')
    total = sum(c for c in counts.values())
    with open(osp.join(out, 'expert_usage.json'), 'w') as f:
        json.dump(
            dict(
                config=args.config,
                checkpoint=args.checkpoint,
                split=args.split,
                datasets=[name for name, _ in loaders],
                num_images=num_images,
                scales=list(range(1,
                                  len(total) + 1)),
                layers={
                    name:
                    dict(attn=block_kind(model, name), counts=c.tolist())
                    for name, c in counts.items()
                },
                overall=total.tolist()),
            f,
            indent=1)
    print(f'Saved {png} and {osp.join(out, "expert_usage.json")}')
    return counts


if __name__ == '__main__':
    main()
