"""The h x w token grids of mmseg's ViT, MiT (SegFormer) and Swin, told to
Conv-LoRA layers (``set_token_grid``) by forward hooks while they run."""
from functools import partial
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import torch.nn as nn
from mmseg.models.backbones import (MixVisionTransformer, SwinTransformer,
                                    VisionTransformer)
from torch.nn.modules.utils import _pair

from ..models.adapters.targets import match_targets

Grid = Tuple[Tuple[int, int], int]  # ((h, w), number of prefix tokens)


class GridRule(NamedTuple):
    """The grid of the layers named by ``pattern`` (its group ``scope``
    or ``scope`` names the module to hook): ``grid(scope, inputs, output,
    groups)`` from a forward ``hook`` ('pre', 'post') or once ('static').
    """
    pattern: str
    hook: str
    grid: Callable
    scope: Optional[str] = None


def conv_output_size(size: Tuple[int, int],
                     conv: nn.Module) -> Tuple[int, int]:
    """(h, w) of the output of ``conv`` (Conv2d, Unfold) for ``size``."""
    k, s, p, d = (
        _pair(getattr(conv, a))
        for a in ('kernel_size', 'stride', 'padding', 'dilation'))
    return tuple((n + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1
                 for i, n in enumerate(size))


def _patch_grid(prefix: int, embed, inputs, output, groups) -> Grid:
    return tuple(output[1]), prefix


def _vit_rules(backbone: nn.Module) -> List[GridRule]:
    grid = partial(_patch_grid, 1 if backbone.with_cls_token else 0)
    return [GridRule(r'layers\.\d+\..+', 'post', grid, scope='patch_embed')]


def _mit_grid(block, inputs, output, groups) -> Grid:
    hw_shape, attn = inputs[1], block.attn
    if groups['proj'] in ('k_proj', 'v_proj') and attn.sr_ratio > 1:
        return conv_output_size(hw_shape, attn.sr), 0
    return tuple(hw_shape), 0


def _mit_rules(backbone: nn.Module) -> List[GridRule]:
    return [
        GridRule(
            r'(?P<scope>layers\.\d+\.1\.\d+)\.attn\.attn\.'
            r'(?P<proj>q_proj|k_proj|v_proj|out_proj)', 'pre', _mit_grid)
    ]


def _window_grid(block, inputs, output, groups) -> Grid:
    return tuple(block.attn.w_msa.window_size), 0


def _block_grid(block, inputs, output, groups) -> Grid:
    return tuple(inputs[1]), 0


def _merged_grid(merging, inputs, output, groups) -> Grid:
    h, w = inputs[1]  # mmseg's PatchMerging: adaptive padding, unfold
    if merging.adap_padding is not None:
        pad_h, pad_w = merging.adap_padding.get_pad_shape((h, w))
        h, w = h + pad_h, w + pad_w
    return conv_output_size((h, w), merging.sampler), 0


def _swin_rules(backbone: nn.Module) -> List[GridRule]:
    return [
        GridRule(
            r'(?P<scope>stages\.\d+\.blocks\.\d+)\.attn\.w_msa\.(qkv|proj)',
            'static', _window_grid),
        GridRule(r'(?P<scope>stages\.\d+\.blocks\.\d+)\.ffn\..+', 'pre',
                 _block_grid),
        GridRule(r'(?P<scope>stages\.\d+\.downsample)\.reduction', 'pre',
                 _merged_grid),
    ]


RULES = ((VisionTransformer, _vit_rules), (MixVisionTransformer, _mit_rules),
         (SwinTransformer, _swin_rules))


def supported_backbones() -> List[str]:
    """Names of the backbone classes whose token grids are known."""
    return [cls.__name__ for cls, _ in RULES]


def attach_token_grids(backbone: nn.Module, layers: Dict[str,
                                                         nn.Module]) -> List:
    """Make ``backbone`` (its attention replaced) call
    ``set_token_grid(grid, num_prefix_tokens)`` of each of ``layers`` (name
    -> layer) while it runs; return the hook handles. An unsupported
    backbone, or a layer no rule covers, is refused (ValueError)."""
    if not layers:
        return []
    rules = next((rules(backbone)
                  for cls, rules in RULES if isinstance(backbone, cls)), None)
    kind = type(backbone).__name__
    if rules is None:
        raise ValueError(
            f'Conv-LoRA needs the h x w grid of the tokens each adapted '
            f'layer sees; PEFTBackbone knows it for '
            f'{", ".join(supported_backbones())}, not for {kind} (layers '
            f'{sorted(layers)[:4]}). Use LoRA on this backbone, or Conv-LoRA '
            'on SAMViT/SAMTinyViT, whose layers see (N, h, w, C) maps.')
    names = list(layers)
    patterns = [r.pattern for r in rules]
    matches = match_targets(
        names, patterns, 'Conv-LoRA', where=kind, every_pattern=False)
    unknown = [n for n in names if n not in matches]
    if unknown:
        raise ValueError(
            f'Conv-LoRA cannot know the h x w token grid of {unknown[:4]} '
            f'in {kind}; it knows those of {patterns}. Target only these '
            'with Conv-LoRA (LoRA works on any Linear layer).')
    rule_of = {r.pattern: r for r in rules}
    groups: Dict[Tuple[str, str], List] = {}
    for name, match in matches.items():
        rule = rule_of[match.re.pattern]
        scope = rule.scope or match.group('scope')
        groups.setdefault((scope, rule.hook), []).append(
            (layers[name], rule.grid, match.groupdict()))
    handles = []
    for (scope_name, hook), entries in groups.items():
        scope = backbone.get_submodule(scope_name)
        if hook == 'static':
            for layer, grid, names in entries:
                layer.set_token_grid(*grid(scope, None, None, names))
        else:
            register = scope.register_forward_pre_hook if hook == 'pre' \
                else scope.register_forward_hook
            handles.append(register(partial(_set_grids, entries)))
    return handles


def _set_grids(entries, module, inputs, output=None) -> None:
    """Forward (pre-)hook: the grids from the scope's inputs (and output,
    e.g. a patch embedding's ``(tokens, hw_shape)``)."""
    for layer, grid, names in entries:
        layer.set_token_grid(*grid(module, inputs, output, names))
