"""The harness of the benchmarks: arguments, interleaved timing, ratios and
the report (table and JSON)."""
import functools
import json
import statistics
import time
from typing import Callable, Dict, Hashable, List, Optional, Sequence

import torch
from prettytable import PrettyTable

AMP_DTYPES = dict(fp16=torch.float16, bf16=torch.bfloat16)


def add_common_args(parser,
                    steps: Optional[int] = None,
                    device: bool = False) -> None:
    """Add ``--json`` and ``--seed``; with ``steps`` the timing arguments,
    with ``device`` also ``--device``, ``--amp`` and ``--modes``."""
    if device:
        parser.add_argument(
            '--modes',
            nargs='+',
            default=['train', 'infer'],
            choices=['train', 'infer'])
        parser.add_argument(
            '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
        parser.add_argument(
            '--amp',
            choices=['none', *AMP_DTYPES],
            default='none',
            help='autocast dtype (models: in the optimizer wrapper of '
            'tools/train.py --amp)')
    if steps is not None:
        parser.add_argument(
            '--clock',
            choices=['wall', 'cpu'],
            default='wall',
            help='wall time, or CPU time of this process (with --threads 1, '
            'the figure least distorted by other jobs on a shared machine)')
        parser.add_argument('--warmup', type=int, default=1)
        parser.add_argument(
            '--steps', type=int, default=steps, help='timed rounds (median)')
        parser.add_argument(
            '--threads',
            type=int,
            default=None,
            help='torch (and onnxruntime) intra-op threads')
    parser.add_argument('--json', default=None, help='also write rows here')
    parser.add_argument('--seed', type=int, default=0)


def setup(args) -> None:
    """Register the plugin's modules and set the thread count."""
    from mmengine.registry import init_default_scope

    import mmseg_convlora  # noqa: F401
    init_default_scope('mmseg')
    if getattr(args, 'threads', None):
        torch.set_num_threads(args.threads)


def spread_adapters(module: torch.nn.Module) -> None:
    """Random non-zero LoRA ``B`` and spread Conv-LoRA routing (``w_gate``),
    as after training."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith('w_gate'):
                p.normal_(0, 1)
            elif name.endswith('lora_B'):
                p.normal_(0, 0.02)


def autocast(amp: str, device: torch.device):
    """``torch.autocast`` to ``amp``'s dtype (disabled for 'none')."""
    return torch.autocast(
        device.type, AMP_DTYPES.get(amp), enabled=amp in AMP_DTYPES)


def interleaved_medians(fns: Dict[Hashable, Callable],
                        args,
                        device=None) -> Dict[Hashable, float]:
    """Median seconds (on ``args.clock``, CUDA synchronised) of each
    ``fn()`` over ``args.steps`` rounds after ``args.warmup``.

    Every round calls every function once, in turn, so that a change of
    machine load hits all alike and their ratios stay meaningful.
    """
    tick = time.process_time if args.clock == 'cpu' else time.perf_counter
    sync = functools.partial(torch.cuda.synchronize, device) \
        if device is not None and device.type == 'cuda' else lambda: None
    times = {name: [] for name in fns}
    for step in range(args.warmup + args.steps):
        for name, fn in fns.items():
            sync()
            start = tick()
            fn()
            sync()
            if step >= args.warmup:
                times[name].append(tick() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def timing_note(args) -> str:
    return (f'torch {torch.__version__}, {torch.get_num_threads()} threads; '
            f'{args.clock} time, median of {args.steps} interleaved '
            f'round(s) after {args.warmup} warm-up')


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def add_ratios(rows: List[dict],
               keys: Sequence[str],
               name: str,
               ref: str,
               group: Optional[str] = None) -> None:
    """Add ``<key>_vs_<ref>`` to each row: its ``key`` over that of the row
    whose ``name`` is ``ref`` (and whose ``group`` is the row's)."""
    for row in rows:
        refs = [
            r for r in rows
            if r[name] == ref and (group is None or r[group] == row[group])
        ]
        for key in keys:
            row[f'{key}_vs_{ref}'] = ratio(row[key],
                                           refs[0][key] if refs else None)


def fmt(value: Optional[float], spec: str = '.3f') -> str:
    return '-' if value is None else format(value, spec)


def report(title: str, columns: Sequence[tuple], rows: List[dict],
           args) -> List[dict]:
    """Print ``title`` and the table of ``rows``; write the rows and the
    arguments to ``args.json`` if given.

    Args:
        columns (Sequence[tuple]): (header, row key or function of the
            row, format spec) of each column.

    Returns:
        list[dict]: ``rows``.
    """
    table = PrettyTable([header for header, _, _ in columns])
    for row in rows:
        table.add_row([
            fmt(key(row) if callable(key) else row[key], spec)
            for _, key, spec in columns
        ])
    print(title)
    print(table.get_string())
    if args.json:
        kept = {k: v for k, v in vars(args).items() if k != 'func'}
        with open(args.json, 'w') as f:
            json.dump(dict(rows=rows, args=kept), f, indent=1)
    return rows
