"""MobileSAM's TinyViT image encoder as an mmseg backbone."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmseg.registry import MODELS

from ..utils import (SAM_ARCHS, TINY_VIT_ARCHS, TINY_VIT_CHECKPOINTS,
                     SAMCheckpointError, describe_tiny_vit, encoder_family,
                     load_sam_state_dict, sub_state_dict, tiny_vit_arch_name)
from ..utils.recompute import checkpoint_context_fn
from .base_sam_backbone import BaseSAMBackbone
from .tiny_vit import TinyViTEncoder

# Weights of TinyViT's ImageNet classifier that MobileSAM's file still
# carries; the encoder does not use them.
_UNUSED_PREFIXES = ('head.', 'norm_head.')

DEFAULT_TINY_VIT_QKV = r'layers\.\d+\.blocks\.\d+\.attn\.qkv'


def _checkpointed(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``block`` under non-reentrant activation checkpointing (RNG state
    kept, so Conv-LoRA's gate noise is replayed exactly)."""
    return cp.checkpoint(
        block,
        x,
        use_reentrant=False,
        preserve_rng_state=True,
        context_fn=checkpoint_context_fn)


@MODELS.register_module()
class SAMTinyViT(BaseSAMBackbone):
    """MobileSAM's image encoder (TinyViT-5M distilled from SAM ViT-H).

    A drop-in replacement for :class:`SAMViT`: the same adapters (LoRA and
    Conv-LoRA on the attention ``qkv`` layers, CAD on the embedding, BitFit,
    decoder-only; the ViT-block adapters Adapter, VPT, SSF and SAM-Adapter
    are refused), the same embedding (``out_channels`` x ``img_size / 16``
    squared; 64x64x256 at 1024) for SAM's mask decoder, and the official
    checkpoint layout: ``mobile_sam.pt`` holds ``image_encoder.*``,
    ``prompt_encoder.*`` and ``mask_decoder.*`` like SAM's own files, so
    ``SAMMaskDecoderHead`` loads the decoder from the same file.

    The encoder has four stages: convolutional (MBConv) at 1/4 resolution,
    then attention stages at 1/8, 1/16 and 1/16 with 7x7, 14x14 and 7x7
    windows (maps are zero-padded to a multiple of the window). LoRA and
    Conv-LoRA target ``layers.<i>.blocks.<j>.attn.qkv``
    (``DEFAULT_TINY_VIT_QKV``; 10 layers in MobileSAM); each ``qkv`` is
    called on ``(windows, h, w, C)`` maps, so Conv-LoRA routes and convolves
    each window on its own, as it does in SAM's windowed ViT blocks. The
    attention biases are defined per window, so other input sizes (256,
    512, ...) need no resizing of any weight. The encoder's batch norms stay
    in eval mode with their pretrained statistics.

    Args:
        arch (str | dict): ``'mobile_sam'``, or a dict with ``embed_dims``,
            ``depths``, ``num_heads`` and ``window_sizes`` (four entries
            each) for small test models; optional ``mlp_ratio`` (4),
            ``mbconv_expand_ratio`` (4), ``local_conv_size`` (3).
        img_size (int): Square input size, a multiple of 16. MobileSAM is
            trained at 1024.
        out_channels (int): Channels of the embedding (SAM: 256).
        checkpoint (str, optional): ``mobile_sam.pt`` or a file in its
            layout. None keeps random weights (tests).
        frozen (bool): Freeze the encoder. Default True.
        adapter (dict | list[dict], optional): Adapter config(s); give
            LoRA / Conv-LoRA ``targets=DEFAULT_TINY_VIT_QKV`` (the SAM ViT
            default names ``blocks.<i>.attn.qkv``, which TinyViT does not
            have).
        with_cp (bool): Activation checkpointing of every block (MBConv and
            attention) while training with gradients through the encoder.
        embedding_cache (dict, optional): See :class:`BaseSAMBackbone`.
        out_indices (Sequence[int], optional): Stages whose outputs (before
            their patch merging) are also returned: stage 0 at 1/4, 1 at
            1/8, 2 and 3 at 1/16 of the input, with the stage's channels
            (64, 128, 160, 320 for MobileSAM); a feature pyramid for mmseg's
            ``UPerHead``.
        out_embedding (bool): Also return the neck's embedding (last).
            Default True.
        init_cfg (dict, optional): Unused.

    Shapes:
        input (B, 3, img_size, img_size) -> output tuple: the
        ``out_indices`` stage maps, then the embedding (B, out_channels,
        img_size / 16, img_size / 16).
    """

    out_layer_kind = 'stage'
    accepted_adapters = ('any', 'sam')

    def __init__(self,
                 arch: Union[str, dict] = 'mobile_sam',
                 img_size: int = 1024,
                 out_channels: int = 256,
                 checkpoint: Optional[str] = None,
                 frozen: bool = True,
                 adapter: Optional[Union[dict, Sequence[dict]]] = None,
                 with_cp: bool = False,
                 embedding_cache: Optional[dict] = None,
                 out_indices: Optional[Sequence[int]] = None,
                 out_embedding: bool = True,
                 init_cfg: Optional[dict] = None):
        if isinstance(arch, str):
            if arch not in TINY_VIT_ARCHS:
                hint = ''
                if arch in SAM_ARCHS:
                    hint = (f" ({arch!r} is SAM's ViT: use type='SAMViT', "
                            f'arch={arch!r})')
                raise ValueError(
                    f'Unknown TinyViT arch {arch!r}; choose one of '
                    f'{sorted(TINY_VIT_ARCHS)} or pass a dict{hint}.')
            name = arch
            spec = dict(TINY_VIT_ARCHS[arch])
        else:
            spec = dict(arch)
            need = {'embed_dims', 'depths', 'num_heads', 'window_sizes'}
            if need - set(spec):
                raise ValueError(
                    f'Custom TinyViT arch dict lacks {need - set(spec)}.')
            name = tiny_vit_arch_name(spec['embed_dims'], spec['depths'])
        self.arch_spec = spec
        super().__init__(
            arch_name=name,
            img_size=img_size,
            out_channels=out_channels,
            checkpoint=checkpoint,
            frozen=frozen,
            adapter=adapter,
            with_cp=with_cp,
            embedding_cache=embedding_cache,
            out_indices=out_indices,
            out_embedding=out_embedding,
            init_cfg=init_cfg)

    @property
    def num_out_layers(self) -> int:
        return len(self.arch_spec['depths'])

    def build_encoder(self) -> nn.Module:
        spec = self.arch_spec
        return TinyViTEncoder(
            img_size=self.img_size,
            embed_dims=spec['embed_dims'],
            depths=spec['depths'],
            num_heads=spec['num_heads'],
            window_sizes=spec['window_sizes'],
            mlp_ratio=spec.get('mlp_ratio', 4.0),
            mbconv_expand_ratio=spec.get('mbconv_expand_ratio', 4.0),
            local_conv_size=spec.get('local_conv_size', 3),
            out_channels=self.out_channels)

    def load_sam_checkpoint(self, path: str) -> None:
        """Load the ``image_encoder.*`` weights of ``mobile_sam.pt`` (or a
        file in its layout).

        Raises:
            SAMCheckpointError: Missing or unreadable file, a SAM ViT file,
                or a TinyViT of another shape.
        """
        expected = self.arch_name if self.arch_name in TINY_VIT_CHECKPOINTS \
            else None
        full = load_sam_state_dict(path, expected)
        state = sub_state_dict(full, 'image_encoder.')
        family = encoder_family(state)
        if family != 'tiny_vit':
            what = "SAM's ViT" if family == 'vit' else 'no TinyViT'
            raise SAMCheckpointError(
                f'{path!r} holds {what} image encoder, but the backbone is '
                f'the TinyViT of MobileSAM ({self.arch_name}). Use '
                "mobile_sam.pt, or the backbone type='SAMViT' (with its arch) "
                'for an official SAM ViT file.')
        found = describe_tiny_vit(state)
        want = dict(
            embed_dims=tuple(self.arch_spec['embed_dims']),
            depths=tuple(self.arch_spec['depths']))
        if found != want:
            raise SAMCheckpointError(
                f'{path!r} holds a TinyViT with embed_dims='
                f'{list(found["embed_dims"])}, depths='
                f'{list(found["depths"])} '
                f'({tiny_vit_arch_name(**found)}), but the backbone is '
                f'{self.arch_name} (embed_dims={list(want["embed_dims"])}, '
                f'depths={list(want["depths"])}). Use a matching file or '
                'change the backbone arch.')
        state = {
            k: v
            for k, v in state.items() if not k.startswith(_UNUSED_PREFIXES)
        }
        try:
            missing, unexpected = self.encoder.load_state_dict(
                state, strict=False)
        except RuntimeError as err:  # shape mismatch
            raise SAMCheckpointError(
                f'{path!r} does not fit the {self.arch_name} TinyViT encoder '
                f'of this config: {err}') from err
        if missing or unexpected:
            raise SAMCheckpointError(
                f'{path!r} does not fit the {self.arch_name} TinyViT encoder: '
                f'missing keys {missing[:8]}, unexpected keys '
                f'{unexpected[:8]}.')

    def forward_encoder(
            self, x: torch.Tensor
    ) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        """TinyViT and its neck; see
        :meth:`BaseSAMBackbone.forward_encoder`."""
        return self.encoder.forward_features(
            x,
            run_block=_checkpointed if self.checkpointing else None,
            out_indices=self.out_indices,
            with_neck=self.out_embedding)
