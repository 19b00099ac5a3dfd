"""Trainable-only (PEFT) checkpoints: what they hold and how they load
(docs/faults.md)."""
import hashlib
import logging
import os
from collections import OrderedDict
from typing import Dict, Iterable, Mapping, Optional, Set, Tuple, Union

import torch
from mmengine.logging import print_log

from ...compat import safe_torch_load
from ...utils.deprecated_alias import RENAMED

SAM_FILE_PREFIXES = ('image_encoder.', 'prompt_encoder.', 'mask_decoder.')
DEFAULT_ADVICE = ('Use the config the checkpoint was trained with (its '
                  'training work dir holds a copy of it).')
# the integrity record is kept in state_dict._metadata[''], which every
# loader hands to the root module's _load_from_state_dict
_warned_unhashed = False


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model: '<source> <problem> <advice>'."""

    def __init__(self, problem: str, advice: Optional[str] = DEFAULT_ADVICE):
        super().__init__(problem)
        self.problem = problem
        self.source = 'The checkpoint'
        self.advice = advice

    def __str__(self) -> str:
        advice = f' {self.advice}' if self.advice else ''
        return f'{self.source} {self.problem}{advice}'


def trainable_state_keys(
        model: torch.nn.Module,
        state_keys: Optional[Iterable[str]] = None) -> Set[str]:
    """Keys (of ``state_keys``, default the state dict's) of trainable
    parameters and of their modules' buffers, ``module.`` removed."""
    params = {
        n.removeprefix('module.'): p
        for n, p in model.named_parameters(remove_duplicate=False)
    }
    trainable = {n for n, p in params.items() if p.requires_grad}
    owners = {n.rpartition('.')[0] for n in trainable}
    if state_keys is None:
        state_keys = model.state_dict().keys()
    keys = {k.removeprefix('module.') for k in state_keys}
    return {
        k
        for k in keys if k in trainable or (
            k not in params and k.rpartition('.')[0] in owners)
    }


def peft_signature(model: torch.nn.Module) -> Dict[str, object]:
    """``arch``, ``adapters``, ``num_classes`` and ``out_channels``."""
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
    """Refuse a checkpoint whose ``meta['peft']`` differs from ``model``'s
    (None, from other tools, passes)."""
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
    """Refuse missing or reshaped trainable weights and unknown keys;
    children's ``state_dict_mismatch(state_dict, prefix)`` add reasons."""
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
        if hasattr(child, 'state_dict_mismatch'):
            problems.append(child.state_dict_mismatch(state_dict, name + '.'))
    problems = [p for p in problems if p]
    if problems:
        raise CheckpointMismatchError(
            f'does not fit the model this config builds '
            f'({describe_model(model)}): {"; ".join(problems)}.')


def _digest(items: Iterable[Tuple[str, torch.Tensor]],
            sample: bool = False) -> str:
    """sha256 of named tensors (``sample``: 64 elements of each)."""
    sha = hashlib.sha256()
    for key, value in sorted(items, key=lambda kv: kv[0]):
        flat = value.detach().reshape(-1)
        if sample:
            flat = flat[::max(1, flat.numel() // 64)][:64]
        sha.update(f'{key}{tuple(value.shape)}{value.dtype}'.encode())
        sha.update(flat.cpu().contiguous().view(torch.uint8).numpy())
    return sha.hexdigest()


def _trainable_sha(state_dict: Mapping, trainable: Set[str]) -> str:
    return _digest((k, v) for k, v in state_dict.items() if k in trainable)


def _frozen_sha(state_dict: Mapping, trainable: Set[str],
                sources: Mapping) -> str:
    """Sampled hash of the frozen weights that were read from a SAM file."""
    return _digest(((k, v) for k, v in state_dict.items()
                    if k not in trainable and sources.get(k.split('.', 1)[0])),
                   sample=True)


def _frozen_from(sources: Mapping) -> list:
    return sorted({str(f) for f in sources.values() if f})


def integrity_record(state_dict, trainable, sources) -> dict:
    """``trainable_sha256``, ``frozen_sha256`` and ``frozen_from`` of the
    model's full ``state_dict``, the keys the checkpoint keeps and the
    model's ``frozen_weights_from`` (part: SAM file or None)."""
    return dict(
        trainable_sha256=_trainable_sha(state_dict, trainable),
        frozen_sha256=_frozen_sha(state_dict, trainable, sources),
        frozen_from=_frozen_from(sources))


def with_record(state_dict: Mapping[str, torch.Tensor],
                record: Optional[Mapping] = None,
                source: Optional[Mapping] = None) -> 'OrderedDict':
    """``state_dict`` with ``source``'s metadata plus ``record`` at root."""
    out = OrderedDict(state_dict)
    metadata = getattr(state_dict if source is None else source, '_metadata',
                       None)
    if metadata is not None or record:
        out._metadata = OrderedDict(metadata or {})
        if record:
            out._metadata[''] = dict(out._metadata.get('', {}), **record)
    return out


def _check_integrity(model: torch.nn.Module, state_dict: Mapping,
                     record: Mapping, own: Mapping, trainable: Set[str],
                     filled: bool) -> None:
    """Refuse non-finite or altered trainable weights, other frozen ones."""
    global _warned_unhashed
    bad = [
        f'{k} ({int((~torch.isfinite(v)).sum())} values)'
        for k, v in state_dict.items() if k in trainable
        and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise CheckpointMismatchError(
            f'holds NaN/inf in {len(bad)} trainable weights '
            f'({_examples(bad, 3)}). Training never saves such weights, so '
            'the file was changed after it was written. Use another '
            'checkpoint of the run (e.g. its epoch_N.pth).',
            advice=None)
    if not record.get('trainable_sha256'):
        if filled and not _warned_unhashed:
            _warned_unhashed = True
            print_log(
                'Loading a checkpoint without a content hash (written by an '
                'earlier version or another tool): a file corrupted on disk '
                'cannot be detected. Checkpoints saved by training now carry '
                'one. (Warned once.)',
                logger='current',
                level=logging.WARNING)
        return
    if _trainable_sha(state_dict, trainable) != record['trainable_sha256']:
        raise CheckpointMismatchError(
            'is corrupt: its trainable weights differ from the hash recorded '
            'when it was saved (a flipped bit on disk or in a copy). Copy it '
            'again from where it was written, or use another checkpoint of '
            'the run (e.g. its epoch_N.pth).',
            advice=None)
    sources = getattr(model, 'frozen_weights_from', None) or {}
    ours = _frozen_from(sources)
    # frozen weights not read from a SAM file (in the checkpoint's run or
    # here) are random: nothing to compare
    if not (filled and ours and record.get('frozen_from')):
        return
    if _frozen_sha(own, trainable, sources) == record.get('frozen_sha256'):
        return
    problem = (
        'was trained on other frozen SAM weights than this model holds: it '
        f'was trained with {record["frozen_from"]}, this model read {ours}. '
        'Its predictions would be wrong. Set model.sam_checkpoint to the '
        'file it was trained with')
    if getattr(model, 'check_frozen_weights', True):
        raise CheckpointMismatchError(
            problem + '; if these are the same weights in another file, set '
            'model.check_frozen_weights=False (--cfg-options '
            'model.check_frozen_weights=False) to load it with a warning.',
            advice=None)
    print_log(
        f'The checkpoint {problem}. Loading it anyway '
        '(model.check_frozen_weights=False).',
        logger='current',
        level=logging.WARNING)


def prepare_state_dict(model: torch.nn.Module,
                       state_dict: Dict[str, torch.Tensor],
                       metadata: Optional[Mapping] = None) -> None:
    """Check ``state_dict`` and add the frozen weights it lacks, in place;
    ``metadata`` (the root module's) holds the :func:`integrity_record` of
    checkpoints saved by training. Raises CheckpointMismatchError."""
    check_state_dict(model, state_dict)
    own = model.state_dict()
    filled = [k for k in own if k not in state_dict]
    sources = getattr(model, 'frozen_weights_from', None) or {}
    unloaded = [
        k for k in filled if sources.get(k.split('.', 1)[0], '') is None
    ]
    if unloaded:
        raise CheckpointMismatchError(
            'holds only the trainable weights; the frozen SAM weights '
            f'({_examples(unloaded, 2)}) come from model.sam_checkpoint, '
            'which is not set, so they would stay random. Set it to the SAM '
            'file the model was trained on (--cfg-options '
            'model.sam_checkpoint=checkpoints/sam_vit_b_01ec64.pth).',
            advice=None)
    _check_integrity(model, state_dict, metadata or {}, own,
                     trainable_state_keys(model, own), bool(filled))
    state_dict.update((k, own[k]) for k in filled)


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
    """Load a training checkpoint (file or loaded dict) onto a model built
    from its config; ``advice`` says what to do on a mismatch.

    Returns:
        dict: The checkpoint's ``meta`` (empty for a bare state dict).
    """
    source = 'The checkpoint'
    try:
        if not isinstance(checkpoint, dict):
            source = f'The checkpoint {os.fspath(checkpoint)!r}'
            checkpoint = read_checkpoint(checkpoint)
        meta = checkpoint.get('meta')
        meta = dict(meta) if isinstance(meta, Mapping) else {}
        check_peft_signature(meta.get('peft'), model)
        state = checkpoint.get('state_dict', checkpoint)
        if not isinstance(state, Mapping):
            raise CheckpointMismatchError('holds no state dict.', None)
        unwrapped = {k.removeprefix('module.'): v for k, v in state.items()}
        model.load_state_dict(with_record(unwrapped, source=state))
    except CheckpointMismatchError as err:
        err.source = source
        err.advice = advice if err.advice else None
        raise
    return meta
