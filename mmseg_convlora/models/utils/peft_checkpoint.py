"""Trainable-only (PEFT) checkpoints: what they hold and how they load.

Training saves the weights training changes (:func:`trainable_state_keys`)
and the model's signature in ``meta['peft']`` (:func:`peft_signature`);
the frozen SAM weights come from ``model.sam_checkpoint`` when the model is
built. :class:`SAMSegmentor` checks and completes every state dict loaded
into it with :func:`prepare_state_dict`.
"""
import os
from typing import Dict, Iterable, Mapping, Optional, Set, Union

import torch

from ...compat import safe_torch_load
from ...utils.deprecated_alias import RENAMED

SAM_FILE_PREFIXES = ('image_encoder.', 'prompt_encoder.', 'mask_decoder.')
DEFAULT_ADVICE = ('Use the config the checkpoint was trained with (its '
                  'training work dir holds a copy of it).')


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model its config builds.

    Rendered as ``'<source> <problem> <advice>'``; whoever knows the file
    sets :attr:`source` (e.g. ``"The checkpoint 'x.pth'"``) and
    :attr:`advice` before reporting it.
    """

    def __init__(self, problem: str, advice: Optional[str] = DEFAULT_ADVICE):
        super().__init__(problem)
        self.problem = problem
        self.source = 'The checkpoint'
        self.advice = advice

    def __str__(self) -> str:
        advice = f' {self.advice}' if self.advice else ''
        return f'{self.source} {self.problem}{advice}'


def _unwrapped(name: str) -> str:
    return name[len('module.'):] if name.startswith('module.') else name


def trainable_state_keys(
        model: torch.nn.Module,
        state_keys: Optional[Iterable[str]] = None) -> Set[str]:
    """State-dict keys that training can change.

    Trainable parameters, plus the buffers of modules that own one (e.g.
    CAD's BatchNorm statistics).

    Args:
        model (nn.Module): The model, or a wrapper that names its
            parameters like the model (``module.`` prefixes are removed).
        state_keys (Iterable[str], optional): The keys to choose from.
            Defaults to ``model.state_dict()``'s.

    Returns:
        set[str]: Keys of the unwrapped model.
    """
    params = {
        _unwrapped(n): p
        for n, p in model.named_parameters(remove_duplicate=False)
    }
    trainable = {n for n, p in params.items() if p.requires_grad}
    owners = {n.rpartition('.')[0] for n in trainable}
    if state_keys is None:
        state_keys = model.state_dict().keys()
    return {
        k
        for k in map(_unwrapped, state_keys) if k in trainable or (
            k not in params and k.rpartition('.')[0] in owners)
    }


def peft_signature(model: torch.nn.Module) -> Dict[str, object]:
    """What a checkpoint must match to load onto ``model``.

    Returns:
        dict: ``arch``, ``adapters`` (class names), ``num_classes`` (as in
        the config: 2 for a binary head) and ``out_channels``.
    """
    backbone = getattr(model, 'backbone', None)
    head = getattr(model, 'decode_head', None)
    adapters = [type(a).__name__ for a in getattr(backbone, 'adapters', [])]
    return dict(
        arch=getattr(backbone, 'arch_name', None),
        adapters=adapters or ['none (decoder-only)'],
        num_classes=getattr(head, 'num_classes', None),
        out_channels=getattr(head, 'out_channels', None))


def describe_model(model: torch.nn.Module) -> str:
    """E.g. ``arch vit_b, adapters ['ConvLoRA'], num_classes 2``."""
    sig = peft_signature(model)
    return (f'arch {sig["arch"]}, adapters {sig["adapters"]}, num_classes '
            f'{sig["num_classes"]}')


def check_peft_signature(saved: Optional[Mapping],
                         model: torch.nn.Module) -> None:
    """Refuse a checkpoint whose ``meta['peft']`` differs from ``model``'s.

    Args:
        saved (dict, optional): The checkpoint's ``meta['peft']``; None
            (checkpoints of other tools) passes.
        model (nn.Module): The model built from the config.

    Raises:
        CheckpointMismatchError: arch, adapters or classes differ.
    """
    if saved is None:
        return
    saved = dict(saved)
    if 'adapters' in saved:  # adapters renamed since
        saved['adapters'] = [RENAMED.get(a, a) for a in saved['adapters']]
    if 'out_channels' not in saved and 'num_classes' in saved:
        # written before out_channels was recorded: num_classes held it
        saved['out_channels'] = saved['num_classes']
        saved['num_classes'] = max(saved['out_channels'], 2)
    diff = [(k, saved[k], v) for k, v in peft_signature(model).items()
            if k in saved and saved[k] != v]
    if diff:
        details = '; '.join(f'{k}: checkpoint {a!r}, config {b!r}'
                            for k, a, b in diff)
        raise CheckpointMismatchError(
            'was trained with another model than this config builds '
            f'({details}).')


def _examples(keys, n: int = 4) -> str:
    keys = sorted(keys)
    more = f' and {len(keys) - n} more' if len(keys) > n else ''
    return ', '.join(keys[:n]) + more


def check_state_dict(model: torch.nn.Module,
                     state_dict: Mapping[str, torch.Tensor]) -> None:
    """Refuse a state dict that does not fit ``model``'s trainable weights.

    Frozen weights may be absent; every trainable weight must be present
    with the model's shape, and nothing the model lacks may be present.
    Submodules with a ``state_dict_mismatch(state_dict, prefix)`` method
    add their own explanation.

    Raises:
        CheckpointMismatchError: With what is missing, extra or reshaped.
    """
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    trainable = trainable_state_keys(model, own)
    if not trainable & set(state_dict):
        hint = ''
        if any(k.startswith(SAM_FILE_PREFIXES) for k in state_dict):
            hint = (' It holds SAM weights (image_encoder.*, ...): a SAM '
                    'weights file belongs in the config\'s '
                    'model.sam_checkpoint; a checkpoint to load is one '
                    'written by tools/train.py.')
        raise CheckpointMismatchError(
            f'holds none of the {len(trainable)} trainable weights of the '
            f'model this config builds ({describe_model(model)}; e.g. '
            f'{_examples(trainable, 2)}), so loading it would change '
            f'nothing.{hint}')
    problems = []
    missing = trainable - set(state_dict)
    if missing:
        problems.append(f'{len(missing)} trainable weights are missing '
                        f'({_examples(missing)})')
    unexpected = set(state_dict) - set(own)
    if unexpected:
        problems.append(f'{len(unexpected)} weights are not in the model '
                        f'({_examples(unexpected)})')
    shapes = sorted(
        f'{k}: checkpoint {tuple(v.shape)}, model {own[k]}'
        for k, v in state_dict.items()
        if k in own and hasattr(v, 'shape') and tuple(v.shape) != own[k])
    if shapes:
        problems.append(f'{len(shapes)} weights have another shape '
                        f'({"; ".join(shapes[:3])})')
    for name, child in model.named_children():
        explain = getattr(child, 'state_dict_mismatch', None)
        hint = explain(state_dict, name + '.') if explain else None
        if hint:
            problems.append(hint)
    if problems:
        raise CheckpointMismatchError(
            f'does not fit the model this config builds '
            f'({describe_model(model)}): {"; ".join(problems)}.')


def prepare_state_dict(model: torch.nn.Module,
                       state_dict: Dict[str, torch.Tensor]) -> None:
    """Check ``state_dict`` against ``model`` and add the frozen weights it
    lacks (in place).

    Frozen weights come from the model itself, which read them at
    construction; parts built without a SAM file
    (``model.frozen_weights_from[part] is None``) have none to give.

    Raises:
        CheckpointMismatchError: See :func:`check_state_dict`, or frozen
            weights are missing and ``model.sam_checkpoint`` is not set.
    """
    check_state_dict(model, state_dict)
    sources = getattr(model, 'frozen_weights_from', None) or {}
    unloaded = []
    for key, value in model.state_dict().items():
        if key in state_dict:
            continue
        if sources.get(key.split('.', 1)[0], '') is None:
            unloaded.append(key)
        else:
            state_dict[key] = value
    if unloaded:
        raise CheckpointMismatchError(
            'holds only the trainable weights, and the frozen SAM weights it '
            f'needs ({_examples(unloaded, 2)}) come from the config\'s '
            'model.sam_checkpoint, which is not set (None), so they would '
            'stay random. Set model.sam_checkpoint to the SAM file the model '
            'was trained on (e.g. --cfg-options '
            'model.sam_checkpoint=checkpoints/sam_vit_b_01ec64.pth).',
            advice=None)


def read_checkpoint(path: str) -> dict:
    """Read a checkpoint file (``weights_only``) with an error naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'Checkpoint {path!r} not found. Pass a .pth written by '
            'tools/train.py (e.g. work_dirs/<config>/best_*.pth).')
    try:
        ckpt = safe_torch_load(path)
    except Exception as err:  # truncated zip, pickle of unknown types
        raise CheckpointMismatchError(
            f'could not be read ({type(err).__name__}: {err}); the file may '
            'be truncated or not a PyTorch checkpoint.',
            advice=None) from err
    if not isinstance(ckpt, dict):
        raise CheckpointMismatchError(
            f'holds a {type(ckpt).__name__}, not a dict of weights.',
            advice=None)
    return ckpt


def load_peft_checkpoint(model: torch.nn.Module,
                         checkpoint: Union[str, dict],
                         advice: str = DEFAULT_ADVICE) -> dict:
    """Load a training checkpoint onto a model built from its config.

    Args:
        model (nn.Module): The model built from the config.
        checkpoint (str | dict): A checkpoint file or its loaded content.
        advice (str): What the user should do on a mismatch.

    Returns:
        dict: The checkpoint's ``meta`` (empty for a bare state dict).

    Raises:
        CheckpointMismatchError: The checkpoint does not fit the model; the
            message names the file.
    """
    source = 'The checkpoint'
    if not isinstance(checkpoint, dict):
        source = f'The checkpoint {os.fspath(checkpoint)!r}'
    try:
        if not isinstance(checkpoint, dict):
            checkpoint = read_checkpoint(checkpoint)
        meta = checkpoint.get('meta')
        meta = dict(meta) if isinstance(meta, Mapping) else {}
        check_peft_signature(meta.get('peft'), model)
        state = checkpoint.get('state_dict', checkpoint)
        if not isinstance(state, Mapping):
            raise CheckpointMismatchError('holds no state dict.', None)
        model.load_state_dict({_unwrapped(k): v for k, v in state.items()})
    except CheckpointMismatchError as err:
        err.source = source
        err.advice = advice if err.advice else None
        raise
    return meta
