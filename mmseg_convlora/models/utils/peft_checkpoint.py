"""Trainable-only (PEFT) checkpoints: what they hold, and the one way to
check and load them onto a model built from a config.

Training saves the weights that training changes (see
:func:`trainable_state_keys`) plus a signature of the model in
``meta['peft']`` (:func:`peft_signature`); the frozen SAM weights come from
the config's ``model.sam_checkpoint`` when the model is built. Loading
refuses a checkpoint of another model (arch, adapters, classes), one with
missing, extra or differently shaped trainable weights, and one that holds
none of them (e.g. the SAM weights file given as checkpoint).
"""
import os
from typing import Dict, Mapping, Optional, Set, Union

import torch

from ...utils.deprecated_alias import RENAMED

# Module-name parts that FSDP and activation-checkpoint wrappers insert;
# the state dicts they produce do not contain them.
WRAPPER_PARTS = ('_fsdp_wrapped_module', '_checkpoint_wrapped_module')
SAM_FILE_PREFIXES = ('image_encoder.', 'prompt_encoder.', 'mask_decoder.')

DEFAULT_ADVICE = ('Use the config the checkpoint was trained with (its '
                  'training work dir holds a copy of it).')


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model its config builds."""


def clean_name(name: str) -> str:
    """``name`` without the parts FSDP/checkpoint wrappers insert."""
    return '.'.join(p for p in name.split('.') if p not in WRAPPER_PARTS)


def trainable_state_keys(model: torch.nn.Module) -> Set[str]:
    """State-dict keys that training can change.

    Trainable parameters, plus buffers of modules that own a trainable
    parameter (e.g. BatchNorm statistics in CAD). Names are those of the
    unwrapped model (FSDP units inside the model are looked through).
    """
    keys = set()
    for mod_name, module in model.named_modules():
        mod_name = clean_name(mod_name)
        prefix = mod_name + '.' if mod_name else ''
        trainable = False
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                keys.add(prefix + name)
                trainable = True
        if trainable:
            for name, buf in module.named_buffers(recurse=False):
                if buf is not None and \
                        name not in module._non_persistent_buffers_set:
                    keys.add(prefix + name)
    return keys


def peft_signature(model: torch.nn.Module) -> Dict[str, object]:
    """What a checkpoint must match to load onto ``model``.

    Returns:
        dict: ``arch`` (SAM arch name), ``adapters`` (adapter class names),
        ``num_classes`` (as in the config: 2 for a binary head) and
        ``out_channels`` (1 for a binary head).
    """
    backbone = getattr(model, 'backbone', None)
    head = getattr(model, 'decode_head', None)
    adapters = [type(a).__name__ for a in getattr(backbone, 'adapters', [])]
    return dict(
        arch=getattr(backbone, 'arch_name', None),
        adapters=adapters or ['none (decoder-only)'],
        num_classes=getattr(head, 'num_classes', None),
        out_channels=getattr(head, 'out_channels', None))


def _normalised_signature(saved: Mapping) -> dict:
    """A saved signature in today's fields.

    Checkpoints written before ``out_channels`` was recorded stored the
    head's out_channels as ``num_classes`` (1 for a binary head).
    """
    saved = dict(saved)
    if 'adapters' in saved:  # adapters renamed since
        saved['adapters'] = [RENAMED.get(a, a) for a in saved['adapters']]
    if 'out_channels' not in saved and 'num_classes' in saved:
        out_channels = saved['num_classes']
        saved['out_channels'] = out_channels
        saved['num_classes'] = 2 if out_channels == 1 else out_channels
    return saved


def describe_model(model: torch.nn.Module) -> str:
    """E.g. ``arch vit_b, adapters ['ConvLoRA'], num_classes 2``."""
    sig = peft_signature(model)
    return (f'arch {sig["arch"]}, adapters {sig["adapters"]}, num_classes '
            f'{sig["num_classes"]}')


def check_peft_signature(saved: Optional[Mapping],
                         model: torch.nn.Module,
                         source: str = 'The checkpoint',
                         advice: str = DEFAULT_ADVICE) -> None:
    """Refuse a checkpoint whose ``meta['peft']`` differs from ``model``.

    Args:
        saved (dict, optional): The checkpoint's ``meta['peft']``; None
            (checkpoints of other tools) passes.
        model (nn.Module): The model built from the config.
        source (str): How to name the checkpoint in the message.
        advice (str): What the user should do, for the calling tool.

    Raises:
        CheckpointMismatchError: arch, adapters or classes differ.
    """
    if saved is None:
        return
    saved = _normalised_signature(saved)
    current = peft_signature(model)
    diff = [(k, saved.get(k), v) for k, v in current.items()
            if k in saved and saved[k] != v]
    if diff:
        details = '; '.join(f'{k}: checkpoint {a!r}, config {b!r}'
                            for k, a, b in diff)
        raise CheckpointMismatchError(
            f'{source} was trained with another model than this config '
            f'builds ({details}). {advice}')


def _own_state_shapes(model: torch.nn.Module) -> Dict[str, tuple]:
    return {
        clean_name(k): tuple(v.shape)
        for k, v in model.state_dict().items()
    }


def _examples(keys, n: int = 4) -> str:
    keys = sorted(keys)
    more = f' and {len(keys) - n} more' if len(keys) > n else ''
    return ', '.join(keys[:n]) + more


def check_state_dict(model: torch.nn.Module,
                     state_dict: Mapping[str, torch.Tensor],
                     source: str = 'The checkpoint',
                     advice: str = DEFAULT_ADVICE) -> None:
    """Refuse a state dict that does not fit ``model``'s trainable weights.

    Frozen weights may be absent (trainable-only checkpoints); every
    trainable weight must be present with the model's shape, and nothing
    the model does not have may be present.

    Args:
        model (nn.Module): The model built from the config.
        state_dict (dict): Keys relative to ``model`` (no ``module.``).
        source (str): How to name the checkpoint in the message.
        advice (str): What the user should do, for the calling tool.

    Raises:
        CheckpointMismatchError: With what is missing, extra or of another
            shape, and ``advice``.
    """
    own = _own_state_shapes(model)
    trainable = trainable_state_keys(model)
    given = {clean_name(k): v for k, v in state_dict.items()}
    if not trainable & set(given):
        hint = ''
        if any(k.startswith(SAM_FILE_PREFIXES) for k in given):
            hint = (' It holds SAM weights (image_encoder.*, ...): a SAM '
                    'weights file belongs in the config\'s '
                    'model.sam_checkpoint; a checkpoint to load is one '
                    'written by tools/train.py.')
        raise CheckpointMismatchError(
            f'{source} holds none of the {len(trainable)} trainable weights '
            f'of the model this config builds ({describe_model(model)}; '
            f'e.g. {_examples(trainable, 2)}), so loading it would change '
            f'nothing.{hint} {advice}')
    problems = []
    missing = trainable - set(given)
    if missing:
        problems.append(f'{len(missing)} trainable weights are missing '
                        f'({_examples(missing)})')
    unexpected = set(given) - set(own)
    if unexpected:
        problems.append(f'{len(unexpected)} weights are not in the model '
                        f'({_examples(unexpected)})')
    shapes = sorted(
        f'{k}: checkpoint {tuple(v.shape)}, model {own[k]}'
        for k, v in given.items()
        if k in own and hasattr(v, 'shape') and tuple(v.shape) != own[k])
    if shapes:
        problems.append(f'{len(shapes)} weights have another shape '
                        f'({"; ".join(shapes[:3])})')
    tokens = 'decode_head.sam_multimask_tokens'
    if tokens in missing | unexpected:
        problems.append(
            'its decode head was trained with' +
            ('out' if tokens in missing else '') + ' SAM\'s multi-mask '
            'tokens in the token sequence: set model.decode_head.'
            f'keep_sam_multimask_tokens={tokens in unexpected} to load it')
    if problems:
        raise CheckpointMismatchError(
            f'{source} does not fit the model this config builds '
            f'({describe_model(model)}): {"; ".join(problems)}. {advice}')


def frozen_weight_sources(model: torch.nn.Module) -> Dict[str, object]:
    """Where the model's frozen weights came from, per top-level part.

    Read from ``model.frozen_weights_from`` (set by :class:`SAMSegmentor`);
    a model without it is assumed to have all its frozen weights.
    """
    return getattr(model, 'frozen_weights_from', None) or {}


def fill_frozen_weights(model: torch.nn.Module,
                        state_dict: Dict[str, torch.Tensor],
                        prefix: str = '',
                        source: str = 'The checkpoint') -> None:
    """Add the model's own frozen weights that ``state_dict`` lacks.

    Trainable-only checkpoints hold no frozen weights; the model read them
    from the SAM checkpoint when it was built. If it was built without
    (``sam_checkpoint=None``) they would stay random: that is refused.

    Args:
        model (nn.Module): The model (its state under ``prefix``).
        state_dict (dict): Filled in place.
        prefix (str): Key prefix of the model's entries in ``state_dict``.
        source (str): How to name the checkpoint in the message.

    Raises:
        CheckpointMismatchError: Frozen weights are missing and the model
            was built without the SAM checkpoint they come from.
    """
    trainable = trainable_state_keys(model)
    sources = frozen_weight_sources(model)
    unloaded = []
    for key, value in model.state_dict().items():
        if key in trainable or prefix + key in state_dict:
            continue
        part = key.split('.', 1)[0]
        if part in sources and sources[part] is None:
            unloaded.append(key)
        else:
            state_dict[prefix + key] = value
    if unloaded:
        raise CheckpointMismatchError(
            f'{source} holds only the trainable weights, and the frozen SAM '
            f'weights it needs ({_examples(unloaded, 2)}) come from the '
            'config\'s model.sam_checkpoint, which is not set (None), so '
            'they would stay random. Set model.sam_checkpoint to the SAM '
            'file the model was trained on (e.g. --cfg-options '
            'model.sam_checkpoint=checkpoints/sam_vit_b_01ec64.pth).')


def strip_module_prefix(state_dict: Mapping) -> Dict[str, torch.Tensor]:
    """Keys of a DDP-wrapped model's state dict without ``module.``."""
    return {
        k[len('module.'):] if k.startswith('module.') else k: v
        for k, v in state_dict.items()
    }


def read_checkpoint(path: str) -> dict:
    """Read a checkpoint file (weights only) with an error naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'Checkpoint {path!r} not found. Pass a .pth written by '
            'tools/train.py (e.g. work_dirs/<config>/best_*.pth).')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # truncated zip, pickle of unknown types
        raise CheckpointMismatchError(
            f'Could not read the checkpoint {path!r} ({type(err).__name__}: '
            f'{err}). The file may be truncated or not a PyTorch '
            'checkpoint.') from err
    if not isinstance(ckpt, dict):
        raise CheckpointMismatchError(
            f'{path!r} is not a checkpoint (it holds a {type(ckpt).__name__}'
            ', not a dict of weights).')
    return ckpt


def prepare_state_dict(
        model: torch.nn.Module,
        checkpoint: dict,
        source: str = 'The checkpoint',
        advice: str = DEFAULT_ADVICE) -> Dict[str, torch.Tensor]:
    """Check a checkpoint against ``model`` and complete its state dict.

    Args:
        model (nn.Module): The model built from the config.
        checkpoint (dict): A training checkpoint (``state_dict`` +
            ``meta``) or a bare state dict.
        source (str): How to name the checkpoint in messages.
        advice (str): What the user should do on a mismatch.

    Returns:
        dict: The full state dict for ``model`` (frozen weights filled in
        from the model).

    Raises:
        CheckpointMismatchError: See :func:`check_peft_signature`,
            :func:`check_state_dict`, :func:`fill_frozen_weights`.
    """
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, Mapping):
        raise CheckpointMismatchError(f'{source} holds no state dict.')
    meta = checkpoint.get('meta')
    check_peft_signature(
        meta.get('peft') if isinstance(meta, Mapping) else None, model, source,
        advice)
    state = strip_module_prefix(state)
    check_state_dict(model, state, source, advice)
    fill_frozen_weights(model, state, source=source)
    return state


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
        CheckpointMismatchError: The checkpoint does not fit the model.
    """
    source = 'The checkpoint'
    if not isinstance(checkpoint, dict):
        source = f'The checkpoint {os.fspath(checkpoint)!r}'
        checkpoint = read_checkpoint(checkpoint)
    state = prepare_state_dict(model, checkpoint, source, advice)
    model.load_state_dict(state, strict=True)
    meta = checkpoint.get('meta')
    return dict(meta) if isinstance(meta, Mapping) else {}
