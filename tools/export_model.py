"""Export a trained model as one self-contained checkpoint for inference.

    python tools/export_model.py CONFIG CHECKPOINT OUT [--format mmseg|sam]

``mmseg``: full state dict (LoRA merged) and its config; ``sam``: an
official SAM checkpoint. Outputs are checked against the trained model;
see docs/inference.md.
"""
import argparse
import copy
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch
from mmengine.config import ConfigDict, DictAction
from mmengine.registry import init_default_scope

import mmseg_convlora  # noqa: F401  registers the plugin
from mmseg_convlora.apis import inference_config
from mmseg_convlora.models.adapters import LoRA, LoRALinear
from mmseg_convlora.models.utils import (load_peft_checkpoint,
                                         load_sam_state_dict, peft_signature,
                                         sub_state_dict)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a trained SAM segmentor as one checkpoint')
    parser.add_argument(
        'config', help='the config the model was trained '
        'with')
    parser.add_argument('checkpoint', help='checkpoint written by training')
    parser.add_argument('out', help='output file (.pth)')
    parser.add_argument(
        '--format',
        choices=['mmseg', 'sam'],
        default='mmseg',
        help='mmseg: full state dict of the deployable model (+ its config); '
        'sam: official SAM checkpoint layout (merged LoRA / decoder-only, '
        'binary head)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config')
    parser.add_argument(
        '--atol',
        type=float,
        default=1e-4,
        help='tolerance of the output check (logits)')
    return parser.parse_args(argv)


def deploy_model_cfg(model_cfg: ConfigDict, merged_lora: bool) -> ConfigDict:
    """The model config of the exported model: no SAM file, LoRA gone."""
    cfg = copy.deepcopy(model_cfg)
    cfg.sam_checkpoint = None
    cfg.backbone.checkpoint = None
    cfg.decode_head.checkpoint = None
    if merged_lora:
        adapters = cfg.backbone.get('adapter')
        if isinstance(adapters, (list, tuple)):
            rest = [a for a in adapters if a['type'] != 'LoRA']
            cfg.backbone.adapter = rest or None
        else:
            cfg.backbone.adapter = None
    return cfg


@torch.no_grad()
def reference_output(model, size: int) -> tuple:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, size, size, generator=gen)
    return x, model._forward(x)


def sam_layout(deploy, sam_checkpoint: str) -> dict:
    """An official SAM state dict of a decoder-only binary model."""
    head = deploy.decode_head
    if head.out_channels != 1 or head.sam_multimask_tokens is None:
        raise SystemExit(
            '--format sam needs a binary head trained with '
            'keep_sam_multimask_tokens=True: segment_anything always puts '
            "SAM's four mask tokens in the token sequence, while the "
            'default (the Conv-LoRA reference) keeps only the first. Use '
            '--format mmseg.')
    if deploy.backbone.adapters:
        names = [type(a).__name__ for a in deploy.backbone.adapters]
        raise SystemExit(f'--format sam holds SAM\'s weights only; {names} '
                         'cannot be merged into them. Use --format mmseg.')
    if sam_checkpoint is None:
        raise SystemExit('--format sam copies the unused hypernetwork MLPs '
                         '1-3 from the SAM checkpoint; the config names '
                         'none (model.sam_checkpoint).')
    official = load_sam_state_dict(sam_checkpoint)
    out = {
        f'image_encoder.{k}': v
        for k, v in deploy.backbone.encoder.state_dict().items()
    }
    out.update({
        f'prompt_encoder.{k}': v
        for k, v in head.prompt_encoder.state_dict().items()
    })
    out.update({
        f'mask_decoder.{k}': v
        for k, v in head.mask_decoder.state_dict().items()
    })
    out['mask_decoder.mask_tokens.weight'] = torch.cat(
        [head.query_tokens.detach(), head.sam_multimask_tokens])
    for k, v in sub_state_dict(official, 'mask_decoder.').items():
        if k.startswith('output_hypernetworks_mlps.') and \
                not k.startswith('output_hypernetworks_mlps.0.'):
            out[f'mask_decoder.{k}'] = v
    if set(out) != set(official):
        raise SystemExit(
            'internal error: the exported keys differ from the SAM file: '
            f'{sorted(set(out) ^ set(official))[:8]}')
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def main(argv=None):
    args = parse_args(argv)
    # embedding-cache training configs export a model with its encoder
    cfg = inference_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import MODELS

    model_cfg = cfg.model
    model = MODELS.build(model_cfg)
    meta = load_peft_checkpoint(model, args.checkpoint)
    model.eval()
    size = model.backbone.img_size
    x, expected = reference_output(model, size)

    loras = [a for a in model.backbone.adapters if isinstance(a, LoRA)]
    lora_keys = set()
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            lora_keys |= {f'{name}.lora_A', f'{name}.lora_B'}
    for adapter in loras:
        adapter.merge()
    state = {k: v for k, v in model.state_dict().items() if k not in lora_keys}
    deploy_cfg = deploy_model_cfg(model_cfg, merged_lora=bool(loras))
    deploy = MODELS.build(deploy_cfg)
    deploy.load_state_dict(state, strict=True)
    deploy.eval()
    got = deploy._forward(x) if args.format == 'mmseg' else None

    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    if args.format == 'sam':
        sam_state = sam_layout(deploy, model_cfg.get('sam_checkpoint'))
        torch.save(sam_state, args.out)
        check_cfg = copy.deepcopy(deploy_cfg)
        check_cfg.sam_checkpoint = args.out
        check = MODELS.build(check_cfg).eval()
        with torch.no_grad():
            got = check._forward(x)
    else:
        out_cfg = copy.deepcopy(cfg)
        out_cfg.model = deploy_cfg
        out_cfg.load_from = None
        cfg_path = osp.splitext(args.out)[0] + '.py'
        out_cfg.dump(cfg_path)
        peft = peft_signature(deploy)
        peft['frozen_weights_saved'] = True
        torch.save(
            dict(
                state_dict={
                    k: v.detach().clone()
                    for k, v in deploy.state_dict().items()
                },
                meta=dict(
                    peft=peft,
                    exported_from=osp.abspath(args.checkpoint),
                    trained_meta_peft=meta.get('peft'),
                    merged_lora=bool(loras),
                    cfg=out_cfg.pretty_text)), args.out)
    with torch.no_grad():
        diff = (got.float() - expected.float()).abs().max().item()
        scale = expected.float().abs().max().item()
    kind = 'merged LoRA' if loras else ('+'.join(
        type(a).__name__ for a in model.backbone.adapters) or 'decoder-only')
    print(f'exported {kind} model to {args.out} ({args.format} format); '
          f'max |logit difference| to the trained model: {diff:.3g} '
          f'(logits up to {scale:.3g})')
    if args.format == 'mmseg':
        print(f'config: {cfg_path}  (python tools/test.py {cfg_path} '
              f'{args.out})')
    if not diff <= args.atol * max(1.0, scale):
        raise SystemExit(f'the exported model differs from the trained one '
                         f'by {diff:.3g} (> {args.atol} x {max(1.0, scale)})')
    return diff


if __name__ == '__main__':
    main()
