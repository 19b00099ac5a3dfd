"""``deploy``: images per second of one prompt-free model (random weights)
run by PyTorch eager, by onnxruntime on its export as
tools/deploy/export_onnx.py writes it and, with ``--compile``, by
``torch.compile`` (inductor), on the CPU, with the differences of their
probabilities and masks from eager's. The network alone is timed
(normalised image in, probabilities out).
"""
import argparse
import copy
import functools
import json
import os.path as osp
import tempfile
from typing import List

import numpy as np
import torch

from .common import (add_common_args, interleaved_medians, ratio, report,
                     setup, timing_note)
from .models import build_model, model_cfg


def run_case(args, arch: str, size: int, workdir: str) -> dict:
    """Time the backends on one (arch, size); return the table row."""
    import onnxruntime as ort

    from tools.deploy import export_onnx as tool
    model = build_model(model_cfg(args.method, arch, size), args.seed).eval()
    eager = tool.ExportedSegmentor(model).eval()
    path = osp.join(workdir, f'{arch}_{size}.onnx')
    meta = dict(size=[size, size], cad_image=None)
    tool.export(tool.prepare(copy.deepcopy(model)), meta, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads or 0
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])
    gen = torch.Generator().manual_seed(args.seed + 1)
    image = torch.randn(args.batch_size, 3, size, size, generator=gen)
    feed = {'image': image.numpy()}
    backends = dict(
        eager=lambda: eager(image),
        onnxruntime=lambda: session.run(None, feed)[0])
    if args.compile:
        compiled = torch.compile(eager)
        backends['compile'] = lambda: compiled(image)
    with torch.no_grad():
        outputs = {k: np.asarray(fn()) for k, fn in backends.items()}
        seconds = interleaved_medians(backends, args)
    row = dict(case=f'{arch}:{size}')
    ref = outputs['eager']
    for name, out in outputs.items():
        row[f'{name}_img_s'] = args.batch_size / seconds[name]
        if name != 'eager':
            row[f'{name}_vs_eager'] = ratio(seconds['eager'], seconds[name])
            row[f'{name}_max_abs_diff'] = float(np.abs(out - ref).max())
            differ = (out > 0.5) != (ref > 0.5)
            row[f'{name}_mask_diffs'] = int(differ.sum())
            row[f'{name}_mask_diffs_off_threshold'] = int(
                (differ & (np.abs(ref - 0.5) > 1e-4)).sum())
    if args.profile:
        row['profile'] = profile(eager, image, path, options)
    return row


def profile(eager, image: torch.Tensor, path: str, options) -> dict:
    """Seconds per operator type of one run (the top 10): ``torch.profiler``
    for eager, onnxruntime's profiler for the ONNX model."""
    import onnxruntime as ort
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    with torch.no_grad(), torch_profile(
            activities=[ProfilerActivity.CPU]) as prof:
        eager(image)
    top = dict(eager={
        e.key: e.self_cpu_time_total / 1e6
        for e in prof.key_averages()
    })
    options.enable_profiling = True
    options.profile_file_prefix = osp.splitext(path)[0]
    session = ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])
    session.run(None, {'image': image.numpy()})
    with open(session.end_profiling()) as f:
        events = json.load(f)
    options.enable_profiling = False
    ops = top['onnxruntime'] = {}
    for e in events:
        if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
            op = e['args']['op_name']
            ops[op] = ops.get(op, 0) + e['dur'] / 1e6
    return {
        k: dict(sorted(v.items(), key=lambda kv: -kv[1])[:10])
        for k, v in top.items()
    }


def _masks(backend: str, row: dict) -> str:
    return '{} ({})'.format(row[f'{backend}_mask_diffs'],
                            row[f'{backend}_mask_diffs_off_threshold'])


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        'deploy',
        help='PyTorch eager vs onnxruntime (vs torch.compile) inference',
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        '--cases',
        nargs='+',
        default=[
            'mobile_sam:256', 'mobile_sam:512', 'mobile_sam:1024', 'vit_b:1024'
        ],
        help='ARCH:SIZE (arch: vit_b, vit_l, vit_h, mobile_sam, tiny)')
    parser.add_argument(
        '--method',
        default='convlora',
        choices=['decoder_only', 'lora', 'convlora', 'cad'])
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--compile',
        action='store_true',
        help='also torch.compile (inductor) the eager model')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='also the seconds per operator type of one run of eager and '
        'of onnxruntime')
    add_common_args(parser, steps=3)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> List[dict]:
    """Benchmark every case; print one table.

    Returns:
        list[dict]: One row per case: ``case``, ``<backend>_img_s`` and, for
        the backends other than eager, ``*_vs_eager``, ``*_max_abs_diff``,
        ``*_mask_diffs`` and ``*_mask_diffs_off_threshold``.
    """
    setup(args)
    with tempfile.TemporaryDirectory() as workdir:
        rows = [
            run_case(args, arch, int(size), workdir)
            for arch, _, size in (c.partition(':') for c in args.cases)
        ]
    columns = [('case', 'case', ''), ('eager img/s', 'eager_img_s', '.2f')]
    for b in ['onnxruntime'] + (['compile'] if args.compile else []):
        columns += [
            (f'{b} img/s', f'{b}_img_s', '.2f'),
            (f'{b}/eager', f'{b}_vs_eager', '.2f'),
            (f'{b} max|dp|', f'{b}_max_abs_diff', '.1e'),
            (f'{b} masks', functools.partial(_masks, b), ''),
        ]
    title = (f'deploy: {args.method}, batch {args.batch_size}, '
             f'{timing_note(args)}; diff and masks (p > 0.5) against eager')
    report(title, columns, rows, args)
    print('masks: pixels whose mask differs from eager (in brackets: those '
          'farther than 1e-4 from 0.5 in eager)')
    for r in rows:
        for backend, ops in r.get('profile', {}).items():
            print(f"{r['case']} {backend}: " +
                  ', '.join(f'{op} {sec * 1e3:.1f} ms'
                            for op, sec in ops.items()))
    return rows
