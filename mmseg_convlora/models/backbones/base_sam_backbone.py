"""What the SAM-family image-encoder backbones share."""
import logging
from abc import abstractmethod
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ..adapters.base_adapter import (BaseSAMAdapter, apply_adapters,
                                     collect_aux_losses)
from ..utils.config_check import check_config_keys
from ..utils.sam_checkpoint import (load_sam_part, load_sam_state_dict,
                                    sub_state_dict)

EMBEDDING_STRIDE = 16


def resolve_arch(arch: Union[str, dict], presets: dict, family: str,
                 required: Sequence[str], other: Tuple[str, dict, str]):
    """The preset name (None for a dict) and spec of ``arch``; ``other``
    names the other SAM encoder: (description, its presets, its type)."""
    if not isinstance(arch, str):
        spec = dict(arch)
        missing = set(required) - set(spec)
        if missing:
            raise ValueError(f'Custom {family} arch dict lacks {missing}.')
        return None, spec
    if arch not in presets:
        what, other_presets, other_type = other
        hint = (f' ({arch!r} is {what}: use type={other_type!r}, '
                f'arch={arch!r})') if arch in other_presets else ''
        raise ValueError(f'Unknown {family} arch {arch!r}; choose one of '
                         f'{sorted(presets)} or pass a dict{hint}.')
    return arch, dict(presets[arch])


class BaseSAMBackbone(BaseModule):
    """A frozen SAM-family image encoder with adapters: (B, 3, S, S) -> the
    ``out_indices`` maps, then the embedding (B, C_out, S / 16, S / 16).

    Args:
        arch_name (str): Name of the encoder arch (recorded in checkpoints).
        img_size (int): Square input size S, a multiple of 16.
        out_channels (int): Channels of the embedding (SAM: 256).
        checkpoint (str, optional): Official SAM file whose
            ``image_encoder.*`` weights are loaded; None: random weights.
        frozen (bool): Freeze the encoder (in eval mode). Default True.
        adapter (dict | list[dict], optional): Adapter config(s).
        with_cp (bool): Activation checkpointing of the encoder's blocks.
        embedding_source (dict, optional): Module giving the embedding
            from the data samples instead of the encoder (not built then).
        out_indices (Sequence[int], optional): Blocks (or stages) whose
            (B, C, H, W) outputs are also returned.
        out_embedding (bool): Return the neck's embedding. Default True.
        embedding_cache (dict | str, optional): Deprecated name of
            ``embedding_source=dict(type='CachedEmbeddings', dir=...)``.
    """

    #: What ``out_indices`` counts, for messages.
    out_layer_kind = 'block'
    #: The ``applies_to`` values of the adapters this backbone takes.
    accepted_adapters: Tuple[str, ...] = ('any', 'sam', 'sam_vit')

    def __init__(self,
                 arch_name: str,
                 img_size: int,
                 out_channels: int = 256,
                 checkpoint: Optional[str] = None,
                 frozen: bool = True,
                 adapter: Optional[Union[dict, Sequence[dict]]] = None,
                 with_cp: bool = False,
                 embedding_source: Optional[dict] = None,
                 out_indices: Optional[Sequence[int]] = None,
                 out_embedding: bool = True,
                 init_cfg: Optional[dict] = None,
                 embedding_cache: Optional[Union[dict, str]] = None):
        super().__init__(init_cfg=init_cfg)
        if embedding_cache is not None:
            embedding_source = self._renamed_embedding_cache(
                embedding_cache, embedding_source)
        if img_size % EMBEDDING_STRIDE:
            raise ValueError(
                f'{type(self).__name__}: img_size={img_size} must be a '
                f'multiple of {EMBEDDING_STRIDE} (the embedding is img_size '
                f'/ {EMBEDDING_STRIDE} on a side).')
        self.arch_name = arch_name
        self.img_size = img_size
        self.out_channels = out_channels
        self.frozen = frozen
        self.with_cp = with_cp
        adapter = [adapter] if isinstance(adapter, dict) else adapter or []
        for cfg in adapter:
            check_config_keys(MODELS, cfg, 'model.backbone.adapter')
        self.out_embedding = out_embedding
        self.out_indices = self._check_out_indices(out_indices)
        # A plain list: these modules live inside ``self.encoder``.
        self._adapter_modules: List[nn.Module] = []
        self.encoder = self.embedding_source = None
        if embedding_source is None:
            self.encoder = self.build_encoder()
            if checkpoint is not None:
                self.load_sam_checkpoint(checkpoint)
            if frozen:
                self.encoder.requires_grad_(False)
        self.adapters = nn.ModuleList(MODELS.build(cfg) for cfg in adapter)
        if embedding_source is not None:
            self._check_embedding_source(out_indices)
            self.embedding_source = MODELS.build(embedding_source)
            self.embedding_source.bind(self, checkpoint)
            return
        self._adapter_modules = apply_adapters(self.adapters, self.encoder,
                                               type(self).__name__,
                                               self.accepted_adapters)
        if not out_embedding:
            for adp in self.adapters:
                if type(adp).forward_embedding is not \
                        BaseSAMAdapter.forward_embedding:
                    raise ValueError(
                        f'{type(adp).__name__} adds to the neck embedding, '
                        'but out_embedding=False drops it; set '
                        'out_embedding=True.')

    @staticmethod
    def _renamed_embedding_cache(embedding_cache, embedding_source):
        # configs written before the cache moved to its own subpackage
        if embedding_source is not None:
            raise ValueError('model.backbone: give embedding_source only '
                             '(embedding_cache is its deprecated name).')
        if isinstance(embedding_cache, str):
            embedding_cache = dict(dir=embedding_cache)
        new = dict(type='CachedEmbeddings', **embedding_cache)
        print_log(
            'model.backbone.embedding_cache is deprecated: write '
            f'embedding_source={new!r}.',
            logger='current',
            level=logging.WARNING)
        return new

    def _check_out_indices(
            self, out_indices: Optional[Sequence[int]]) -> Tuple[int, ...]:
        """``out_indices`` checked and made non-negative."""
        if out_indices is None:
            if not self.out_embedding:
                raise ValueError(
                    'out_embedding=False needs out_indices: the backbone '
                    'would return nothing.')
            return ()
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        n = self.num_out_layers
        for i in out_indices:
            if not -n <= i < n:
                raise ValueError(
                    f'{type(self).__name__}: out_indices {list(out_indices)} '
                    f'out of range for {n} {self.out_layer_kind}s '
                    f'(valid: 0..{n - 1} or -{n}..-1).')
        return tuple(i % n for i in out_indices)

    def _check_embedding_source(self, out_indices) -> None:
        """Refuse what needs the encoder that a source replaces."""
        if out_indices is not None:
            raise ValueError(
                'embedding_source gives only the neck embedding, not the '
                f'block outputs out_indices={out_indices}; remove one.')
        if not self.frozen:
            raise ValueError('embedding_source needs frozen=True: it stands '
                             'for the frozen encoder.')
        for adp in self.adapters:
            if adp.needs_encoder_grad:
                raise ValueError(
                    f'{type(adp).__name__} changes the image encoder, so its '
                    'embeddings cannot be computed once and cached; remove '
                    'embedding_source, or use CAD or no adapter.')

    @property
    @abstractmethod
    def num_out_layers(self) -> int:
        """How many layers ``out_indices`` chooses from."""

    @abstractmethod
    def build_encoder(self) -> nn.Module:
        """The image encoder with random weights."""

    @abstractmethod
    def check_encoder_state(
            self, path: str,
            state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The ``image_encoder.*`` weights of ``path`` to load."""

    @abstractmethod
    def forward_encoder(
            self, x: torch.Tensor
    ) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        """The :attr:`out_indices` maps and the embedding (or None)."""

    def load_sam_checkpoint(self, path: str) -> None:
        """Load the ``image_encoder.*`` weights of an official file."""
        state = sub_state_dict(
            load_sam_state_dict(path, self.arch_name), 'image_encoder.')
        load_sam_part(
            self.encoder, self.check_encoder_state(path, state),
            f'{path!r} does not fit the {self.arch_name} image encoder of '
            'this config')

    @property
    def embedding_shape(self) -> Tuple[int, int, int]:
        """(C_out, S / 16, S / 16) of one image's embedding."""
        grid = self.img_size // EMBEDDING_STRIDE
        return (self.out_channels, grid, grid)

    def train(self, mode: bool = True) -> 'BaseSAMBackbone':
        super().train(mode)
        if self.frozen and self.encoder is not None:
            # frozen batch norms stay in eval; adapters inside follow mode
            self.encoder.eval()
            for module in self._adapter_modules:
                module.train(mode)
        return self

    @property
    def needs_encoder_grad(self) -> bool:
        return not self.frozen or any(adp.needs_encoder_grad
                                      for adp in self.adapters)

    @property
    def checkpointing(self) -> bool:
        """Whether this forward pass checkpoints the encoder's blocks."""
        return self.with_cp and self.training and torch.is_grad_enabled()

    def forward(
            self,
            x: torch.Tensor,
            data_samples: Optional[Sequence] = None
    ) -> Tuple[torch.Tensor, ...]:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(
                f'{type(self).__name__} expects {self.img_size}x'
                f'{self.img_size} inputs, got {tuple(x.shape[-2:])}: Resize '
                "them in the pipeline or set the data preprocessor's size.")
        features: List[torch.Tensor] = []
        if self.embedding_source is not None:
            embedding = self.embedding_source(x, data_samples)
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled()
                                        and self.needs_encoder_grad):
                features, embedding = self.forward_encoder(x)
        if embedding is None:
            return tuple(features)
        for adp in self.adapters:
            embedding = adp.forward_embedding(x, embedding, data_samples)
        return tuple(features) + (embedding, )

    def aux_losses(self) -> Dict[str, torch.Tensor]:
        """Losses the adapters produced in the last forward pass."""
        return collect_aux_losses(self.adapters)
