"""Helpers shared by the benchmarks: tables and interleaved timing."""
import statistics
import time
from typing import Callable, Dict, Hashable, List, Optional, Sequence


def print_table(header: Sequence[str], rows: List[Sequence]) -> None:
    """Print rows as a table (prettytable when available)."""
    try:
        from prettytable import PrettyTable
    except ImportError:  # pragma: no cover - prettytable ships with mmseg
        print(' | '.join(header))
        for row in rows:
            print(' | '.join(str(v) for v in row))
        return
    table = PrettyTable(list(header))
    for row in rows:
        table.add_row(list(row))
    print(table.get_string())


def interleaved_medians(jobs: Dict[Hashable, Callable[[], float]], warmup: int,
                        steps: int) -> Dict[Hashable, float]:
    """Median seconds of each job over ``steps`` rounds after ``warmup``.

    Every round runs every job once, in turn, so a change of machine load
    hits all jobs alike and the ratios between them stay meaningful on a
    shared machine. Each job returns the seconds of one run.
    """
    times = {name: [] for name in jobs}
    for step in range(warmup + steps):
        for name, job in jobs.items():
            seconds = job()
            if step >= warmup:
                times[name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def add_clock_argument(parser) -> None:
    parser.add_argument(
        '--clock',
        choices=['wall', 'cpu'],
        default='wall',
        help='wall time, or CPU time of this process (with --threads 1, '
        'the figure least distorted by other jobs on a shared machine)')


def get_clock(name: str) -> Callable[[], float]:
    """``time.perf_counter`` for 'wall', ``time.process_time`` for 'cpu'."""
    return time.process_time if name == 'cpu' else time.perf_counter


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def fmt(value: Optional[float], spec: str = '.3f') -> str:
    return '-' if value is None else format(value, spec)
