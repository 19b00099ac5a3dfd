"""What the SAM-family image-encoder backbones share."""
from abc import abstractmethod
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ...utils.embedding_cache import (EmbeddingCacheError, check_manifest,
                                      read_manifest)
from ..adapters.base_adapter import (BaseSAMAdapter, apply_adapters,
                                     collect_aux_losses)
from ..utils.config_check import check_config_keys

# Every SAM-family encoder (ViT, TinyViT) maps an S x S image to an
# (S / 16) x (S / 16) embedding, the grid SAM's mask decoder expects.
EMBEDDING_STRIDE = 16


class BaseSAMBackbone(BaseModule):
    """A frozen SAM-family image encoder with parameter-efficient adapters.

    Subclasses build the encoder (:meth:`build_encoder`), load its official
    weights (:meth:`load_sam_checkpoint`) and run it
    (:meth:`forward_encoder`); this class builds the adapters and applies
    them, keeps the frozen encoder in eval mode, runs it without autograd
    when no adapter needs gradients through it, reads cached embeddings,
    and collects the adapters' auxiliary losses.

    Args:
        arch_name (str): Name of the encoder arch (recorded in checkpoints,
            cache manifests and messages).
        img_size (int): Square input size, a multiple of 16.
        out_channels (int): Channels of the embedding (SAM: 256).
        checkpoint (str, optional): Official checkpoint file whose
            ``image_encoder.*`` weights are loaded at construction. None
            keeps random weights (only sensible for tests).
        frozen (bool): Freeze the pretrained encoder and keep it in eval
            mode. Default True.
        adapter (dict | list[dict], optional): Adapter config(s), applied
            in order.
        with_cp (bool): Activation checkpointing of every encoder block
            while training with gradients through the encoder.
        embedding_cache (dict | str, optional): ``dict(dir=DIR)``: take the
            embedding from the data samples (``sam_embedding``, attached by
            ``LoadCachedEmbedding`` from a cache written by
            ``tools/cache_embeddings.py``) instead of running the encoder,
            which is then not built. Only for adapters that leave the encoder
            unchanged (CAD, decoder-only). The cache's manifest must match
            ``checkpoint`` (SHA-256), arch, ``img_size`` and
            ``out_channels``; ``dir=None`` or ``checkpoint=None`` skips that
            check (benchmarks, tests).
        out_indices (Sequence[int], optional): Also return the outputs of
            these encoder blocks (SAMViT) or stages (SAMTinyViT) as
            ``(B, C, H, W)`` maps, in this order, for mmseg's necks and
            heads (``MultiLevelNeck`` + ``UPerHead``, auxiliary heads).
            Negative indices count from the end. None: only the embedding.
        out_embedding (bool): Return the neck's embedding (last in the
            tuple, after the ``out_indices`` maps). False skips the neck;
            then ``out_indices`` must be given and no adapter may act on the
            embedding (CAD). Default True.
        init_cfg (dict, optional): Unused; weights come from ``checkpoint``.

    Shapes:
        forward: (B, 3, img_size, img_size) -> tuple of the ``out_indices``
        maps, then the embedding (B, out_channels, img_size / 16,
        img_size / 16) if ``out_embedding``.
    """

    def __init__(self,
                 arch_name: str,
                 img_size: int,
                 out_channels: int = 256,
                 checkpoint: Optional[str] = None,
                 frozen: bool = True,
                 adapter: Optional[Union[dict, Sequence[dict]]] = None,
                 with_cp: bool = False,
                 embedding_cache: Optional[Union[dict, str]] = None,
                 out_indices: Optional[Sequence[int]] = None,
                 out_embedding: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
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
        if isinstance(embedding_cache, str):
            embedding_cache = dict(dir=embedding_cache)
        self.embedding_cache = None if embedding_cache is None \
            else dict(embedding_cache)
        if adapter is None:
            adapter = []
        elif isinstance(adapter, dict):
            adapter = [adapter]
        for cfg in adapter:
            check_config_keys(MODELS, cfg, 'model.backbone.adapter')
        self.out_embedding = out_embedding
        self.out_indices = self._check_out_indices(out_indices)

        if self.embedding_cache is not None:
            if self.out_indices:
                raise ValueError(
                    'embedding_cache holds only the neck embedding; it cannot '
                    f'give the block outputs out_indices={out_indices}. '
                    'Remove one of them.')
            self._init_cached(checkpoint, adapter)
            return

        self.encoder = self.build_encoder()
        if checkpoint is not None:
            self.load_sam_checkpoint(checkpoint)
        if frozen:
            self.encoder.requires_grad_(False)

        self.adapters = nn.ModuleList(MODELS.build(cfg) for cfg in adapter)
        # Plain list: these modules already live inside ``self.encoder``;
        # registering them twice would duplicate their state-dict keys.
        self._adapter_modules: List[nn.Module] = apply_adapters(
            self.adapters, self.encoder,
            type(self).__name__, self.accepted_adapters)
        if not out_embedding:
            for adp in self.adapters:
                if type(adp).forward_embedding is not \
                        BaseSAMAdapter.forward_embedding:
                    raise ValueError(
                        f'{type(adp).__name__} adds to the neck embedding, '
                        'but out_embedding=False drops it; set '
                        'out_embedding=True.')

    def _check_out_indices(
            self, out_indices: Optional[Sequence[int]]) -> Tuple[int, ...]:
        """Validate ``out_indices`` against :attr:`num_out_layers` and make
        them non-negative."""
        if out_indices is None:
            if not self.out_embedding:
                raise ValueError(
                    'out_embedding=False needs out_indices: the backbone '
                    'would return nothing.')
            return ()
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        n = self.num_out_layers
        fixed = []
        for i in out_indices:
            if not -n <= i < n:
                raise ValueError(
                    f'{type(self).__name__}: out_indices {list(out_indices)} '
                    f'out of range for {n} {self.out_layer_kind}s '
                    f'(valid: 0..{n - 1} or -{n}..-1).')
            fixed.append(i % n)
        return tuple(fixed)

    # ------------------------------------------------------------------ #
    @property
    @abstractmethod
    def num_out_layers(self) -> int:
        """How many layers ``out_indices`` chooses from."""

    out_layer_kind = 'block'
    #: The ``applies_to`` values of the adapters this backbone takes.
    accepted_adapters: Tuple[str, ...] = ('any', 'sam', 'sam_vit')

    @abstractmethod
    def build_encoder(self) -> nn.Module:
        """The image encoder with random weights."""

    @abstractmethod
    def load_sam_checkpoint(self, path: str) -> None:
        """Load the ``image_encoder.*`` weights of an official file.

        Raises:
            SAMCheckpointError: Missing or unreadable file, or weights of
                another encoder than this backbone's.
        """

    @abstractmethod
    def forward_encoder(
            self, x: torch.Tensor
    ) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        """Run the encoder.

        Args:
            x (Tensor): (B, 3, S, S).

        Returns:
            tuple: the outputs of the layers in :attr:`out_indices` as
            (B, C, H, W) maps (in that order), and the neck's embedding
            (B, C_out, S/16, S/16) if :attr:`out_embedding`, else None.
        """

    # ------------------------------------------------------------------ #
    def _init_cached(self, checkpoint: Optional[str],
                     adapter: List[dict]) -> None:
        """Embedding-cache mode: no encoder; check the cache's manifest."""
        if not self.frozen:
            raise ValueError('embedding_cache needs frozen=True: cached '
                             'embeddings come from the frozen encoder.')
        self.encoder = None
        self.adapters = nn.ModuleList(MODELS.build(cfg) for cfg in adapter)
        self._adapter_modules = []
        for adp in self.adapters:
            if adp.needs_encoder_grad:
                raise ValueError(
                    f'{type(adp).__name__} changes the image encoder, so its '
                    'embeddings cannot be computed once and cached. '
                    'embedding_cache works with adapters that only add to '
                    'the embedding (CAD) and with decoder-only training; '
                    'remove embedding_cache for this adapter.')
        cache_dir = self.embedding_cache.get('dir')
        # Without a checkpoint (random weights: tests, shape checks) there
        # is nothing to verify the cache against.
        if cache_dir is not None and checkpoint is not None:
            manifest = read_manifest(cache_dir)
            check_manifest(manifest, cache_dir, checkpoint, self.arch_name,
                           self.img_size, self.out_channels)

    @property
    def uses_cached_embeddings(self) -> bool:
        """True when the embedding comes from the data samples."""
        return self.embedding_cache is not None

    @property
    def embedding_shape(self) -> Tuple[int, int, int]:
        """(C_out, S / 16, S / 16) of one image's embedding."""
        grid = self.img_size // EMBEDDING_STRIDE
        return (self.out_channels, grid, grid)

    def train(self, mode: bool = True) -> 'BaseSAMBackbone':
        super().train(mode)
        if self.frozen and self.encoder is not None:
            # Frozen weights stay in inference behaviour (TinyViT's batch
            # norms keep their statistics); the adapter modules placed
            # inside the encoder follow ``mode`` (Conv-LoRA's gate noise
            # exists only in training).
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

    def cached_embedding(self, x: torch.Tensor,
                         data_samples: Optional[Sequence]) -> torch.Tensor:
        """The embeddings the pipeline attached to the data samples."""
        shape = self.embedding_shape
        if not data_samples or any('sam_embedding' not in ds
                                   for ds in data_samples):
            raise EmbeddingCacheError(
                f'This {type(self).__name__} has embedding_cache set and '
                'builds no encoder, so every data sample needs its cached '
                "embedding ('sam_embedding'): add dict(type="
                "'LoadCachedEmbedding', cache_dir=...) after PackSegInputs "
                'in the train and test pipelines (see '
                'configs/cad/sbu_vit-b_cached.py).')
        # float32 before stacking: autocast's type promotion of stack does
        # not accept float16 inputs under a bfloat16 autocast (CPU)
        embedding = torch.stack([
            ds.sam_embedding.to(device=x.device, dtype=torch.float32)
            for ds in data_samples
        ])
        if tuple(embedding.shape[1:]) != shape or \
                embedding.shape[0] != x.shape[0]:
            raise EmbeddingCacheError(
                f'Cached embeddings have shape {tuple(embedding.shape)}, '
                f'expected ({x.shape[0]}, {shape[0]}, {shape[1]}, '
                f'{shape[2]}) for this backbone; rebuild the cache with '
                'tools/cache_embeddings.py for this config.')
        return embedding

    def forward(
            self,
            x: torch.Tensor,
            data_samples: Optional[Sequence] = None
    ) -> Tuple[torch.Tensor, ...]:
        """Args:
            x (Tensor): Normalised images, (B, 3, img_size, img_size).
            data_samples (list[SegDataSample], optional): Needed with
                ``embedding_cache`` (they carry ``sam_embedding``); handed
                to the adapters (CAD reads ``cad_image`` from them).

        Returns:
            tuple[Tensor]: The ``out_indices`` maps, then the image
            embedding (B, C_out, h, w) if ``out_embedding``.
        """
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(
                f'{type(self).__name__} expects {self.img_size}x'
                f'{self.img_size} inputs, got {tuple(x.shape[-2:])}. Resize '
                'images to the square input size in the pipeline (Resize('
                'scale=(S, S), keep_ratio=False)) or set the data '
                "preprocessor's size.")
        features: List[torch.Tensor] = []
        if self.uses_cached_embeddings:
            embedding = self.cached_embedding(x, data_samples)
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
