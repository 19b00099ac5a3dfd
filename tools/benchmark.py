# Copyright (c) mmseg-convlora contributors. All rights reserved.
"""Benchmarks of the plugin, one subcommand each (``tools/benchmarks/``):
``metrics``, ``models``, ``layers`` and ``deploy``. They report
measurements only; docs/speed_and_memory.md has the figures and goals.
Run ``python tools/benchmark.py COMMAND --help`` for the options.
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

# the repository (for the package, as the other tools) and tools/
sys.path[:0] = [
    osp.dirname(osp.dirname(osp.abspath(__file__))),
    osp.dirname(osp.abspath(__file__))
]
from benchmarks import deploy, layers, metrics, models


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='mmseg-convlora benchmarks')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    subparsers.required = True
    for module in (metrics, models, layers, deploy):
        module.add_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # models re-runs itself in child processes
    return args.func(args)


if __name__ == '__main__':
    main()
