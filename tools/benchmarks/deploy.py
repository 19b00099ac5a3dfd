"""``deploy``: images per second of one prompt-free model (random weights)
run by PyTorch eager, by onnxruntime on its ONNX export
(tools/deploy/export_onnx.py) and, with ``--compile``, by ``torch.compile``
(inductor), side by side on the CPU, with the differences of their
probabilities and masks. E.g. ``python tools/benchmark.py deploy --cases
mobile_sam:256 mobile_sam:512 mobile_sam:1024 vit_b:1024 --threads 1``.

The network alone is timed (normalised image in, probabilities at the input
size out); the pre- and post-processing are the same numpy/opencv steps
for every backend.
"""
import argparse
import copy
import json
import os.path as osp
import sys
import tempfile
from typing import List

import numpy as np
import torch

from .common import (add_clock_argument, fmt, get_clock, interleaved_medians,
                     print_table, ratio)

_TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _export_tool():
    sys.path.insert(0, osp.join(_TOOLS, 'deploy'))
    import export_onnx
    return export_onnx


def _build(args, arch: str, size: int):
    """The segmentor of ``models`` for ``args.method`` (spread Conv-LoRA
    routing), in eval mode."""
    from mmengine.config import ConfigDict
    from mmseg.registry import MODELS

    from .models import _model_cfg
    cfg_args = argparse.Namespace(
        arch=arch, size=size, depth=None, dispatch='auto', cad_size=None)
    torch.manual_seed(args.seed)
    model = MODELS.build(ConfigDict(_model_cfg(cfg_args, args.method)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('w_gate'):
                p.normal_(0, 1)
            elif name.endswith('lora_B'):
                p.normal_(0, 0.02)
    return model.eval()


def run_case(args, arch: str, size: int, workdir: str) -> dict:
    """Time the backends on one (arch, size); return the table row."""
    import onnxruntime as ort
    tool = _export_tool()
    model = _build(args, arch, size)
    eager = tool.ExportedSegmentor(model).eval()
    meta = dict(
        size=[size, size],
        resize=None,
        cad_image=None,
        mean=None,
        std=None,
        bgr_to_rgb=False,
        pad_val=0,
        threshold=0.5,
        align_corners=False,
        classes=None,
        palette=None)
    path = osp.join(workdir, f'{arch}_{size}.onnx')
    tool.export(tool.prepare(copy.deepcopy(model)), meta, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads or 0
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])
    gen = torch.Generator().manual_seed(args.seed + 1)
    image = torch.randn(args.batch_size, 3, size, size, generator=gen)
    feed = {'image': image.numpy()}
    clock = get_clock(args.clock)

    def timed(fn):

        def job():
            start = clock()
            fn()
            return clock() - start

        return job

    with torch.no_grad():
        outputs = dict(eager=eager(image).numpy())
        jobs = dict(
            eager=timed(lambda: eager(image)),
            onnxruntime=timed(lambda: session.run(None, feed)))
        outputs['onnxruntime'] = session.run(None, feed)[0]
        if args.compile:
            compiled = torch.compile(eager)
            outputs['compile'] = compiled(image).numpy()
            jobs['compile'] = timed(lambda: compiled(image))
        seconds = interleaved_medians(jobs, args.warmup, args.steps)
    row = dict(case=f'{arch}:{size}')
    for name, out in outputs.items():
        row[f'{name}_img_s'] = args.batch_size / seconds[name]
        if name != 'eager':
            row[f'{name}_vs_eager'] = ratio(seconds['eager'], seconds[name])
            row[f'{name}_max_abs_diff'] = float(
                np.abs(out - outputs['eager']).max())
            differ = (out > 0.5) != (outputs['eager'] > 0.5)
            row[f'{name}_mask_diffs'] = int(differ.sum())
            row[f'{name}_mask_diffs_off_threshold'] = int(
                (differ & (np.abs(outputs['eager'] - 0.5) > 1e-4)).sum())
    if args.profile:
        row['profile'] = profile(eager, image, path, options)
    return row


def profile(eager, image: torch.Tensor, path: str, options) -> dict:
    """Seconds per operator type of one run: ``torch.profiler`` for eager,
    onnxruntime's own profiler for the ONNX model (top 10 each)."""
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
    top['onnxruntime'] = {}
    for e in events:
        if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
            op = e['args']['op_name']
            top['onnxruntime'][op] = top['onnxruntime'].get(op, 0) + \
                e['dur'] / 1e6
    return {
        k: dict(sorted(v.items(), key=lambda kv: -kv[1])[:10])
        for k, v in top.items()
    }


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
        choices=['decoder_only', 'lora', 'convlora', 'cad'],
        help='fine-tuning method of the model')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--compile',
        action='store_true',
        help='also torch.compile (inductor) the eager model')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='also print the seconds per operator type of one run of eager '
        'and of onnxruntime')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch and onnxruntime intra-op threads')
    add_clock_argument(parser)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', default=None, help='also write rows here')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> List[dict]:
    """Benchmark every case; print one table."""
    from mmengine.registry import init_default_scope

    import mmseg_convlora  # noqa: F401  (registers the models)
    init_default_scope('mmseg')
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for case in args.cases:
            arch, _, size = case.partition(':')
            rows.append(run_case(args, arch, int(size), workdir))
    backends = ['onnxruntime'] + (['compile'] if args.compile else [])
    print(f'deploy: {args.method}, batch {args.batch_size}, '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}; '
          f'{args.clock} time, median of {args.steps} after {args.warmup} '
          'warm-up; diff and masks (p > 0.5) against eager')
    header = ['case', 'eager img/s']
    for b in backends:
        header += [f'{b} img/s', f'{b}/eager', f'{b} max|dp|', f'{b} masks']
    table = []
    for r in rows:
        line = [r['case'], fmt(r['eager_img_s'], '.2f')]
        for b in backends:
            line += [
                fmt(r[f'{b}_img_s'], '.2f'),
                fmt(r[f'{b}_vs_eager'], '.2f'),
                fmt(r[f'{b}_max_abs_diff'], '.1e'),
                '{} ({})'.format(r[f'{b}_mask_diffs'],
                                 r[f'{b}_mask_diffs_off_threshold'])
            ]
        table.append(line)
    print_table(header, table)
    print('masks: pixels whose mask differs from eager (in brackets: those '
          'of them whose eager probability is farther than 1e-4 from 0.5)')
    for r in rows:
        for backend, ops in r.get('profile', {}).items():
            print(f"{r['case']} {backend}: " +
                  ', '.join(f'{op} {sec * 1e3:.1f} ms'
                            for op, sec in ops.items()))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return rows
