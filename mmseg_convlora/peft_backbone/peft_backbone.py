"""Any mmseg backbone, frozen, with LoRA / Conv-LoRA / BitFit adapters."""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ..models.adapters.base_adapter import (BaseSAMAdapter, apply_adapters,
                                            collect_aux_losses)
from ..models.adapters.lora import LowRankAdapter
from .linear_multihead_attention import replace_multihead_attention
from .token_grids import attach_token_grids


@MODELS.register_module()
class PEFTBackbone(BaseModule):
    """Parameter-efficient fine-tuning of any mmseg backbone.

    The backbone is built, loaded and frozen at once; see
    ``docs/compose_with_mmseg.md``.

    Args:
        backbone (dict): Config of the mmseg backbone.
        adapter (dict | list[dict]): Adapters with ``applies_to='any'``.
        pretrained (str, optional): Shorthand for the backbone's
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``.
        init_cfg (None): Must be None (see ``backbone``).
    """

    def __init__(self,
                 backbone: dict,
                 adapter: Union[dict, Sequence[dict]],
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        if init_cfg is not None:
            raise ValueError(
                f'PEFTBackbone: init_cfg={init_cfg!r} belongs in the wrapped '
                'backbone config, model.backbone.backbone.init_cfg.')
        super().__init__(init_cfg=None)
        adapter_cfgs = [adapter] if isinstance(adapter, dict) else \
            list(adapter or [])
        if not adapter_cfgs:
            raise ValueError(
                'PEFTBackbone needs at least one adapter, e.g. adapter=dict('
                "type='LoRA', targets=...); without one nothing would train.")
        if pretrained is not None:
            if backbone.get('init_cfg') is not None:
                raise ValueError(
                    f'PEFTBackbone: model.pretrained ({pretrained!r}) and the '
                    f"wrapped backbone's init_cfg ({backbone['init_cfg']!r}) "
                    'both give the weights; keep one of them.')
            backbone = dict(
                backbone,
                init_cfg=dict(type='Pretrained', checkpoint=pretrained))
        self.backbone = MODELS.build(backbone)
        cfg = getattr(self.backbone, 'init_cfg', None)
        path = cfg.get('checkpoint') if isinstance(cfg, dict) else None
        if isinstance(path, str) and '://' not in path and \
                not osp.isfile(path):
            raise FileNotFoundError(
                f'PEFTBackbone: the {type(self.backbone).__name__} weights '
                f'{path!r} (model.backbone.backbone.init_cfg.checkpoint) do '
                'not exist. Download them (docs/compose_with_mmseg.md), or '
                'set model.backbone.backbone.init_cfg=None for random ones.')
        self.backbone.init_weights()
        replace_multihead_attention(self.backbone)
        self.backbone.requires_grad_(False)

        self.adapters = nn.ModuleList(MODELS.build(c) for c in adapter_cfgs)
        # Plain list: these modules live inside ``self.backbone``;
        # registering them twice would duplicate their state-dict keys.
        self._adapter_modules: List[nn.Module] = apply_adapters(
            self.adapters, self.backbone, 'PEFTBackbone', ('any', ))
        adapted: Dict[str, nn.Module] = {}  # LoRA/Conv-LoRA layers by name
        for adp in self.adapters:
            if isinstance(adp, LowRankAdapter):
                adapted.update(adp.named_layers)
        attach_token_grids(self.backbone, {
            n: m
            for n, m in adapted.items() if hasattr(m, 'set_token_grid')
        })
        self._call_check: Optional[_CallCheck] = _CallCheck(adapted)
        self._aux_pending = False
        # The weights are final; the runner's init_weights must not
        # re-initialise the backbone (mmengine skips initialised children).
        self._is_init = True

    def init_weights(self) -> None:
        """Nothing to do: the weights were set at construction."""

    @property
    def arch_name(self) -> str:
        """The wrapped backbone's class name (recorded in checkpoints)."""
        return type(self.backbone).__name__

    def train(self, mode: bool = True) -> 'PEFTBackbone':
        super().train(mode)
        # The frozen backbone keeps its inference behaviour; the adapter
        # modules placed inside it follow ``mode``.
        self.backbone.eval()
        for module in self._adapter_modules:
            module.train(mode)
        return self

    def forward(self, x: torch.Tensor):
        """The backbone's output for ``x`` (B, 3, H, W)."""
        training = self.training and torch.is_grad_enabled()
        if training and self._aux_pending:
            raise RuntimeError(
                'PEFTBackbone: the auxiliary losses of the previous training '
                f'step ({self._aux_loss_names()}) were never collected, so '
                "they train nothing. Use model type='SAMSegmentor' (it adds "
                'them to the loss) or call aux_losses() after each forward.')
        out = self.backbone(x)
        if self._call_check is not None:
            self._call_check.verify()
            self._call_check = None
        self._aux_pending = training and bool(self._aux_loss_names())
        return out

    def _aux_loss_names(self) -> str:
        return ', '.join(
            type(adp).__name__ for adp in self.adapters
            if type(adp).aux_losses is not BaseSAMAdapter.aux_losses)

    def aux_losses(self) -> Dict[str, torch.Tensor]:
        """Losses the adapters produced in the last forward pass."""
        self._aux_pending = False
        return collect_aux_losses(self.adapters)


class _CallCheck:
    """Refuses adapted layers that the first forward pass did not call
    (their parent used their weights directly)."""

    def __init__(self, layers: Dict[str, nn.Module]):
        self.names = {id(m): n for n, m in layers.items()}
        self.called = set()
        self.handles = [
            m.register_forward_hook(self._record) for m in layers.values()
        ]

    def _record(self, module, inputs, output) -> None:
        self.called.add(id(module))

    def verify(self) -> None:
        for handle in self.handles:
            handle.remove()
        missing = sorted(n for i, n in self.names.items()
                         if i not in self.called)
        if missing:
            raise RuntimeError(
                f'PEFTBackbone: the adapted layers {missing[:6]} were not '
                'called in the forward pass (their parent uses their weights '
                'directly, or skips them), so they train nothing: choose '
                'targets whose forward the backbone calls.')
