"""Forward hooks on encoder sub-modules that survive other adapters.

The hook-based adapters (:class:`SSF`, :class:`Adapter`, :class:`SAMAdapter`)
change what a sub-module of SAM's frozen ``ImageEncoderViT`` returns (or
receives) without replacing it, so several adapters can act on one module
and module names (hence the official state-dict keys and the target patterns
of LoRA/Conv-LoRA) stay unchanged.

A hook lives on a module *object*. When an adapter replaces that module
after the hook was placed (LoRA swaps ``attn.qkv`` for a ``LoRALinear``, VPT
swaps ``attn`` for a ``PromptedAttention``), a hook on the old object would
silently stop firing. The backbones therefore apply the module-replacing
adapters first (:func:`~.base_adapter.apply_adapters`), whatever the order
in the config, so hooks are placed on the final modules. As a guard for
adapters applied by hand in another order, :class:`EncoderHooks` addresses
modules by name and moves each hook, once, at the first encoder forward, to
whatever module then has that name.
"""
from typing import Callable, List, Optional, Sequence, Union

import torch.nn as nn

from .targets import encoder_description, match_targets


def match_module_names(encoder: nn.Module, targets: Union[str, Sequence[str]],
                       adapter_name: str) -> List[str]:
    """Names of the encoder's modules that ``re.fullmatch`` a pattern.

    Args:
        encoder (nn.Module): SAM's ``ImageEncoderViT``.
        targets (str | Sequence[str]): Regular expression(s).
        adapter_name (str): Used in error messages.

    Returns:
        list[str]: Matching names, in module order (each once).

    Raises:
        ValueError: An invalid pattern or one that matches nothing.
    """
    names = [n for n, _ in encoder.named_modules() if n]
    return [
        name
        for name, _ in match_targets(names, targets, adapter_name, 'module',
                                     encoder_description(encoder))
    ]


class EncoderHooks:
    """A set of forward (pre-)hooks on encoder modules addressed by name.

    Not an ``nn.Module``: it holds the encoder in a plain list so nothing is
    registered twice.
    """

    def __init__(self):
        self._encoder: List[nn.Module] = []
        self._entries: List[dict] = []
        self._trigger = None

    def bind(self, encoder: nn.Module) -> None:
        """Attach to ``encoder``; at its first forward (a pre-hook on
        ``patch_embed``, which no adapter replaces) the hooks are moved to
        the modules that then carry their names, once."""
        self.remove()
        self._encoder = [encoder]
        patch_embed = getattr(encoder, 'patch_embed', None)
        if patch_embed is not None:
            self._trigger = patch_embed.register_forward_pre_hook(
                self._sync_once)

    def add(self, name: str, fn: Callable, pre: bool = False) -> None:
        """Register ``fn`` as a forward hook (``pre``: forward pre-hook) on
        the encoder module called ``name``."""
        module = self._encoder[0].get_submodule(name)
        entry = dict(name=name, fn=fn, pre=pre, module=module, handle=None)
        self._attach(entry, module)
        self._entries.append(entry)

    @staticmethod
    def _attach(entry: dict, module: nn.Module) -> None:
        if entry['handle'] is not None:
            entry['handle'].remove()
        if entry['pre']:
            entry['handle'] = module.register_forward_pre_hook(entry['fn'])
        else:
            entry['handle'] = module.register_forward_hook(entry['fn'])
        entry['module'] = module

    def _sync_once(self, module: nn.Module, args) -> None:
        self._trigger.remove()
        self._trigger = None
        self.sync()

    def sync(self) -> None:
        """Move every hook to the module that now carries its name."""
        if not self._encoder:
            return
        encoder = self._encoder[0]
        for entry in self._entries:
            module = encoder.get_submodule(entry['name'])
            if module is not entry['module']:
                self._attach(entry, module)

    def remove(self) -> None:
        """Remove all hooks (the adapter stops acting)."""
        for entry in self._entries:
            if entry['handle'] is not None:
                entry['handle'].remove()
        self._entries = []
        if self._trigger is not None:
            self._trigger.remove()
            self._trigger = None

    @property
    def names(self) -> List[str]:
        return [e['name'] for e in self._entries]

    def module(self, name: str) -> Optional[nn.Module]:
        for entry in self._entries:
            if entry['name'] == name:
                return entry['module']
        return None


def out_channels_of(module: nn.Module) -> int:
    """Channels of a module's output (Linear, LoRA wrappers, LayerNorm,
    Conv2d, SAM's LayerNorm2d and PatchEmbed)."""
    for attr in ('out_features', 'out_channels'):
        if isinstance(getattr(module, attr, None), int):
            return getattr(module, attr)
    if isinstance(module, nn.LayerNorm):
        return int(module.normalized_shape[-1])
    proj = getattr(module, 'proj', None)  # PatchEmbed
    if isinstance(proj, nn.Conv2d):
        return proj.out_channels
    weight = getattr(module, 'weight', None)
    if weight is not None:
        return int(weight.shape[0])
    raise ValueError(f'Cannot tell the output channels of a '
                     f'{type(module).__name__}.')


def channels_first(module: nn.Module) -> bool:
    """True for modules whose output is (N, C, H, W) (the neck's convs and
    LayerNorm2d); the ViT's tokens are channels-last (N, H, W, C)."""
    return isinstance(module, nn.Conv2d) or \
        type(module).__name__ == 'LayerNorm2d'


def encoder_factory(encoder: nn.Module) -> dict:
    """``device``/``dtype`` of the encoder's weights, for new parameters."""
    ref = next(encoder.parameters())
    return dict(device=ref.device, dtype=ref.dtype)
