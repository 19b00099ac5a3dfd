# Copyright (c) mmseg-convlora contributors. All rights reserved.
"""Benchmarks of the plugin, one subcommand each (code in
``tools/benchmarks/<name>.py``):

* ``metrics``: images per second of every evaluation metric.
* ``models``: training step, inference, peak memory and trainable
  parameters of every fine-tuning method, with ratios to LoRA.
* ``layers``: one ``qkv`` layer: frozen Linear, LoRA and Conv-LoRA.
* ``deploy``: inference of PyTorch eager vs onnxruntime (and
  ``torch.compile``) on one exported model.

They report measurements only; what a figure should be is stated where the
figure is used (docs/speed_and_memory.md), not here. Run
``python tools/benchmark.py COMMAND --help`` for the options.
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

SUBCOMMANDS = (metrics, models, layers, deploy)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='mmseg-convlora benchmarks')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    subparsers.required = True
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # for benchmarks that re-run themselves in children
    return args.func(args)


if __name__ == '__main__':
    main(sys.argv[1:])
