"""SAM's ViT image encoder as an mmseg backbone."""
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from segment_anything.modeling import ImageEncoderViT

from ...utils.embedding_cache import (EmbeddingCacheError, check_manifest,
                                      read_manifest)
from ..utils import (OFFICIAL_CHECKPOINTS, SAM_ARCHS, SAMCheckpointError,
                     arch_name, describe_encoder, load_sam_state_dict,
                     sub_state_dict)
from ..utils.recompute import checkpoint_context_fn


def resize_abs_pos_embed(pos_embed: torch.Tensor,
                         size: Tuple[int, int]) -> torch.Tensor:
    """Resize SAM's absolute position embedding (bicubic).

    Args:
        pos_embed (Tensor): (1, H0, W0, C).
        size (tuple[int, int]): Target (H, W) of the patch grid.

    Returns:
        Tensor: (1, H, W, C).
    """
    if tuple(pos_embed.shape[1:3]) == tuple(size):
        return pos_embed
    x = pos_embed.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode='bicubic', align_corners=False)
    return x.permute(0, 2, 3, 1).to(pos_embed.dtype)


def resize_rel_pos(rel_pos: torch.Tensor, length: int) -> torch.Tensor:
    """Resize a decomposed relative position table (linear), as SAM's
    ``get_rel_pos`` does on the fly.

    Args:
        rel_pos (Tensor): (L0, head_dim).
        length (int): Target L (= 2 * grid size - 1).

    Returns:
        Tensor: (L, head_dim).
    """
    if rel_pos.shape[0] == length:
        return rel_pos
    x = rel_pos.float().t().unsqueeze(0)  # (1, head_dim, L0)
    x = F.interpolate(x, size=length, mode='linear', align_corners=False)
    return x.squeeze(0).t().to(rel_pos.dtype)


@MODELS.register_module()
class SAMViT(BaseModule):
    """The image encoder of the Segment Anything Model (Kirillov et al. 2023).

    Wraps ``segment_anything.modeling.ImageEncoderViT`` (kept as
    ``self.encoder``, so the official ``image_encoder.*`` weights load into it
    unchanged), frozen by default, with optional parameter-efficient adapters
    (:class:`LoRA`, :class:`ConvLoRA`, :class:`CAD`, ...).

    Args:
        arch (str | dict): ``'vit_b'``, ``'vit_l'``, ``'vit_h'``, or a dict
            with ``embed_dim``, ``depth``, ``num_heads``,
            ``global_attn_indexes`` and optionally ``window_size`` (14),
            ``patch_size`` (16), ``mlp_ratio`` (4) for small test models.
        img_size (int): Square input size. SAM is pretrained at 1024; other
            sizes resize the absolute and the global blocks' relative
            position embeddings when the checkpoint is loaded.
        out_channels (int): Channels of the embedding (SAM: 256).
        checkpoint (str, optional): Official SAM checkpoint file; its
            ``image_encoder.*`` weights are loaded at construction. None keeps
            random weights (only sensible for tests).
        frozen (bool): Freeze all pretrained encoder weights and keep the
            encoder in eval mode. Default True.
        adapter (dict | list[dict], optional): Adapter config(s).
        with_cp (bool): Activation checkpointing of every ViT block while
            training with gradients through the encoder (LoRA, Conv-LoRA):
            only the block inputs are kept and each block runs again during
            backward (non-reentrant ``torch.utils.checkpoint``, RNG state
            preserved, so Conv-LoRA's gate noise and routing are the same and
            loss and gradients are exact; the recomputation does not replace
            the recorded ``loss_moe``). Without encoder gradients (CAD,
            decoder-only) the encoder runs under ``no_grad`` anyway.
        embedding_cache (dict, optional): ``dict(dir=DIR)``: take the image
            embedding from the data samples (``sam_embedding``, put there by
            the ``LoadCachedEmbedding`` transform from a cache written by
            ``tools/cache_embeddings.py``) instead of running the encoder,
            which is then not built at all. Only for adapters that leave the
            encoder unchanged (CAD, decoder-only). At construction the
            cache's manifest must match ``checkpoint`` (SHA-256), ``arch``,
            ``img_size`` and ``out_channels``, else it is refused. ``dir=None``
            or ``checkpoint=None`` skips that check (benchmarks, tests).
        init_cfg (dict, optional): Unused; weights come from ``checkpoint``.

    Shapes:
        input (B, 3, img_size, img_size) -> output tuple of one tensor
        (B, out_channels, img_size / 16, img_size / 16).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'vit_b',
                 img_size: int = 1024,
                 out_channels: int = 256,
                 checkpoint: Optional[str] = None,
                 frozen: bool = True,
                 adapter: Optional[Union[dict, Sequence[dict]]] = None,
                 with_cp: bool = False,
                 embedding_cache: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in SAM_ARCHS:
                raise ValueError(f'Unknown SAM arch {arch!r}; choose one of '
                                 f'{sorted(SAM_ARCHS)} or pass a dict.')
            self.arch_name = arch
            spec = dict(SAM_ARCHS[arch])
        else:
            spec = dict(arch)
            missing = {'embed_dim', 'depth', 'num_heads'} - set(spec)
            if missing:
                raise ValueError(f'Custom SAM arch dict lacks {missing}.')
            spec.setdefault('global_attn_indexes', ())
            self.arch_name = arch_name(spec['embed_dim'], spec['depth'])
        self.arch_spec = spec
        patch_size = spec.get('patch_size', 16)
        if img_size % patch_size:
            raise ValueError(f'img_size={img_size} must be a multiple of the '
                             f'patch size {patch_size}.')
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

        if self.embedding_cache is not None:
            self._init_cached(checkpoint, adapter)
            return

        self.encoder = ImageEncoderViT(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=spec['embed_dim'],
            depth=spec['depth'],
            num_heads=spec['num_heads'],
            mlp_ratio=spec.get('mlp_ratio', 4),
            out_chans=out_channels,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            global_attn_indexes=tuple(spec['global_attn_indexes']),
            window_size=spec.get('window_size', 14),
        )
        if checkpoint is not None:
            self.load_sam_checkpoint(checkpoint)
        if frozen:
            self.encoder.requires_grad_(False)

        self.adapters = nn.ModuleList(MODELS.build(cfg) for cfg in adapter)
        # Plain list: these modules already live inside ``self.encoder``;
        # registering them twice would duplicate their state-dict keys.
        self._adapter_modules: List[nn.Module] = []
        for adp in self.adapters:
            self._adapter_modules.extend(adp.apply_to(self.encoder))

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

    # ------------------------------------------------------------------ #
    def load_sam_checkpoint(self, path: str) -> None:
        """Load the ``image_encoder.*`` weights of an official SAM file.

        Raises:
            SAMCheckpointError: Missing or unreadable file, or weights of
                another arch than this backbone's.
        """
        expected = self.arch_name if self.arch_name in SAM_ARCHS else None
        full = load_sam_state_dict(path, expected)
        state = sub_state_dict(full, 'image_encoder.')
        found = describe_encoder(state)
        if (found['embed_dim'] != self.arch_spec['embed_dim']
                or found['depth'] != self.arch_spec['depth']):
            found_name = arch_name(found['embed_dim'], found['depth'])
            hint = ''
            if found_name in OFFICIAL_CHECKPOINTS:
                hint = f" or set the backbone's arch='{found_name}'"
            want = OFFICIAL_CHECKPOINTS.get(self.arch_name, 'a matching file')
            raise SAMCheckpointError(
                f'{path!r} holds a SAM {found_name} image encoder, but the '
                f'backbone is {self.arch_name} (embed_dim='
                f'{self.arch_spec["embed_dim"]}, depth='
                f'{self.arch_spec["depth"]}). Use {want}{hint}.')
        state = self._fit_position_embeddings(state)
        try:
            missing, unexpected = self.encoder.load_state_dict(
                state, strict=False)
        except RuntimeError as err:  # shape mismatch
            raise SAMCheckpointError(
                f'{path!r} does not fit the {self.arch_name} image encoder '
                f'of this config: {err}') from err
        if missing or unexpected:
            raise SAMCheckpointError(
                f'{path!r} does not fit the {self.arch_name} image encoder: '
                f'missing keys {missing[:8]}, unexpected keys '
                f'{unexpected[:8]}.')

    def _fit_position_embeddings(
            self, state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Resize position embeddings pretrained at another input size."""
        state = dict(state)
        own = self.encoder.state_dict()
        if 'pos_embed' in state and 'pos_embed' in own:
            state['pos_embed'] = resize_abs_pos_embed(
                state['pos_embed'], tuple(own['pos_embed'].shape[1:3]))
        for key, value in state.items():
            if key.endswith(('rel_pos_h', 'rel_pos_w')) and key in own:
                state[key] = resize_rel_pos(value, own[key].shape[0])
        return state

    # ------------------------------------------------------------------ #
    def train(self, mode: bool = True) -> 'SAMViT':
        super().train(mode)
        if self.frozen and self.encoder is not None:
            # Frozen weights stay in inference behaviour; the adapter modules
            # placed inside the encoder follow ``mode`` (Conv-LoRA's gate
            # noise exists only in training).
            self.encoder.eval()
            for module in self._adapter_modules:
                module.train(mode)
        return self

    @property
    def needs_encoder_grad(self) -> bool:
        return not self.frozen or any(
            adp.needs_encoder_grad for adp in self.adapters)

    def forward_encoder(self, x: torch.Tensor) -> torch.Tensor:
        """The ViT and its neck, (B, 3, H, W) -> (B, C_out, H/16, W/16)."""
        enc = self.encoder
        x = enc.patch_embed(x)
        if enc.pos_embed is not None:
            x = x + enc.pos_embed
        # Non-reentrant checkpointing needs no input that requires grad, so
        # block 0 (whose input is the frozen patch embedding) is checkpointed
        # too; the gradients reach the adapter parameters inside it.
        checkpointing = self.with_cp and self.training and \
            torch.is_grad_enabled()
        for blk in enc.blocks:
            if checkpointing:
                x = cp.checkpoint(
                    blk, x, use_reentrant=False, preserve_rng_state=True,
                    context_fn=checkpoint_context_fn)
            else:
                x = blk(x)
        return enc.neck(x.permute(0, 3, 1, 2))

    def cached_embedding(self, x: torch.Tensor,
                         data_samples: Optional[Sequence]) -> torch.Tensor:
        """The embeddings the pipeline attached to the data samples."""
        shape = (self.out_channels, self.img_size // 16, self.img_size // 16)
        if not data_samples or any(
                'sam_embedding' not in ds for ds in data_samples):
            raise EmbeddingCacheError(
                'This SAMViT has embedding_cache set and builds no encoder, '
                'so every data sample needs its cached embedding '
                "('sam_embedding'): add dict(type='LoadCachedEmbedding', "
                'cache_dir=...) after PackSegInputs in the train and test '
                'pipelines (see configs/cad/sbu_vit-b_cached.py).')
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

    def forward(self,
                x: torch.Tensor,
                data_samples: Optional[Sequence] = None
                ) -> Tuple[torch.Tensor]:
        """Args:
            x (Tensor): Normalised images, (B, 3, img_size, img_size).
            data_samples (list[SegDataSample], optional): Needed only with
                ``embedding_cache`` (they carry ``sam_embedding``).

        Returns:
            tuple[Tensor]: The image embedding, (B, C_out, h, w).
        """
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(
                f'SAMViT expects {self.img_size}x{self.img_size} inputs, got '
                f'{tuple(x.shape[-2:])}. Resize images to the square input '
                "size in the pipeline (Resize(scale=(S, S), keep_ratio="
                "False)) or set the data preprocessor's size.")
        if self.uses_cached_embeddings:
            embedding = self.cached_embedding(x, data_samples)
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled()
                                        and self.needs_encoder_grad):
                embedding = self.forward_encoder(x)
        for adp in self.adapters:
            embedding = adp.forward_embedding(x, embedding)
        return (embedding, )

    def aux_losses(self) -> Dict[str, torch.Tensor]:
        """Losses the adapters produced in the last forward pass."""
        losses: Dict[str, torch.Tensor] = {}
        for adp in self.adapters:
            for name, value in adp.aux_losses().items():
                losses[name] = losses[name] + value if name in losses \
                    else value
        return losses
