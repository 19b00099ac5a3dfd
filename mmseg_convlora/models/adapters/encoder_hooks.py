"""Forward hooks on encoder modules addressed by name, for the adapters
that change what a module returns without replacing it."""
from typing import Callable, Dict, List

import torch.nn as nn


class EncoderHooks:
    """Forward (pre-)hooks on encoder modules addressed by name, moved once,
    at the encoder's first forward, to the modules then carrying the names.
    """

    def __init__(self):
        self._encoder: List[nn.Module] = []  # a plain list: not ours
        self._entries: List[dict] = []
        self._trigger = None

    def bind(self, encoder: nn.Module, owner: str) -> None:
        """Attach to ``encoder`` (sync at the first ``patch_embed`` call),
        once: ``owner`` (the adapter's name) is for the error."""
        if self._encoder:
            raise RuntimeError(f'{owner}.apply_to was already called.')
        self._encoder = [encoder]
        patch_embed = getattr(encoder, 'patch_embed', None)
        if patch_embed is not None:
            self._trigger = patch_embed.register_forward_pre_hook(
                self._sync_once)

    def add(self, name: str, fn: Callable, pre: bool = False) -> None:
        """Register ``fn`` as a forward hook (``pre``: forward pre-hook) on
        the encoder module called ``name``."""
        module = self._encoder[0].get_submodule(name)
        entry = dict(name=name, fn=fn, pre=pre, handle=None)
        self._attach(entry, module)
        self._entries.append(entry)

    @staticmethod
    def _attach(entry: dict, module: nn.Module) -> None:
        if entry['handle'] is not None:
            entry['handle'].remove()
        register = module.register_forward_pre_hook if entry['pre'] \
            else module.register_forward_hook
        entry['handle'] = register(entry['fn'])
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
            entry['handle'].remove()
        self._entries = []
        if self._trigger is not None:
            self._trigger.remove()
            self._trigger = None

    def modules(self) -> Dict[str, nn.Module]:
        """Encoder module name -> the module currently hooked."""
        return {entry['name']: entry['module'] for entry in self._entries}


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
