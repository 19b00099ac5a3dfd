"""Export a trained model as one self-contained checkpoint for inference,
checked against the trained model; see docs/inference.md."""
import copy
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.utils import mkdir_or_exist

from mmseg_convlora.apis import inference_config
from mmseg_convlora.models.adapters import LoRA, LoRALinear
from mmseg_convlora.models.utils import (load_peft_checkpoint,
                                         load_sam_state_dict, peft_signature,
                                         sub_state_dict)
from tools.infer import model_parser

ATOL = 1e-4  # of the logits, relative to their largest magnitude if > 1


def parse_args(argv=None):
    parser = model_parser('Export a trained SAM segmentor as one checkpoint')
    parser.add_argument('out', help='output file (.pth)')
    parser.add_argument(
        '--format',
        choices=['mmseg', 'sam'],
        default='mmseg',
        help='mmseg: full state dict of the deployable model (+ its config); '
        'sam: official SAM checkpoint layout (merged LoRA / decoder-only, '
        'binary head)')
    return parser.parse_args(argv)


def deploy_model_cfg(model_cfg: ConfigDict, merged_lora: bool) -> ConfigDict:
    """The model config of the exported model: no SAM file, LoRA gone."""
    cfg = copy.deepcopy(model_cfg)
    cfg.sam_checkpoint = None
    cfg.backbone.checkpoint = None
    cfg.decode_head.checkpoint = None
    if merged_lora:
        adapters = cfg.backbone.get('adapter')
        rest = [a for a in adapters
                if a['type'] != 'LoRA'] if isinstance(adapters,
                                                      (list, tuple)) else None
        cfg.backbone.adapter = rest or None
    return cfg


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
    out = {}
    for prefix, module in (('image_encoder', deploy.backbone.encoder),
                           ('prompt_encoder', head.prompt_encoder),
                           ('mask_decoder', head.mask_decoder)):
        out.update({
            f'{prefix}.{k}': v
            for k, v in module.state_dict().items()
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
    model = MODELS.build(cfg.model).eval()
    meta = load_peft_checkpoint(model, args.checkpoint)
    size = model.backbone.img_size
    x = torch.randn(
        1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model._forward(x)

    loras = [a for a in model.backbone.adapters if isinstance(a, LoRA)]
    lora_keys = set()
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            lora_keys |= {f'{name}.lora_A', f'{name}.lora_B'}
    for adapter in loras:
        adapter.merge()
    state = {k: v for k, v in model.state_dict().items() if k not in lora_keys}
    deploy_cfg = deploy_model_cfg(cfg.model, merged_lora=bool(loras))
    deploy = MODELS.build(deploy_cfg).eval()
    deploy.load_state_dict(state, strict=True)

    mkdir_or_exist(osp.dirname(osp.abspath(args.out)))
    if args.format == 'sam':
        torch.save(
            sam_layout(deploy, cfg.model.get('sam_checkpoint')), args.out)
        # the file as segment_anything's loader reads it
        deploy_cfg.sam_checkpoint = args.out
        deploy = MODELS.build(deploy_cfg).eval()
    else:
        out_cfg = copy.deepcopy(cfg)
        out_cfg.model = deploy_cfg
        out_cfg.load_from = None
        cfg_path = osp.splitext(args.out)[0] + '.py'
        out_cfg.dump(cfg_path)
        peft = dict(peft_signature(deploy), frozen_weights_saved=True)
        state = {k: v.detach().clone() for k, v in deploy.state_dict().items()}
        torch.save(
            dict(
                state_dict=state,
                meta=dict(
                    peft=peft,
                    exported_from=osp.abspath(args.checkpoint),
                    trained_meta_peft=meta.get('peft'),
                    merged_lora=bool(loras),
                    cfg=out_cfg.pretty_text)), args.out)
    with torch.no_grad():
        diff = (deploy._forward(x) - expected).float().abs().max().item()
        scale = expected.float().abs().max().item()
    kind = 'merged LoRA' if loras else ('+'.join(
        type(a).__name__ for a in model.backbone.adapters) or 'decoder-only')
    print(f'exported {kind} model to {args.out} ({args.format} format); '
          f'max |logit difference| to the trained model: {diff:.3g} '
          f'(logits up to {scale:.3g})')
    if args.format == 'mmseg':
        print(f'config: {cfg_path}  (python tools/test.py {cfg_path} '
              f'{args.out})')
    if not diff <= ATOL * max(1.0, scale):
        raise SystemExit(f'the exported model differs from the trained one '
                         f'by {diff:.3g} (> {ATOL} x {max(1.0, scale)})')
    return diff


if __name__ == '__main__':
    main()
