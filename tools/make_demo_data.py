"""Generate the CPU demos: small synthetic datasets and a tiny SAM.

    python tools/make_demo_data.py [--task shadow|multiclass] [--out DIR]

``--task shadow`` (default, into ``data/demo_shadow``): ``train/`` and
``val/`` with ``images/*.jpg`` and 0/255 ``masks/*.png`` (dark elliptical
"shadows" on textured bright ground, images of varied sizes).
``--task multiclass`` (into ``data/demo_multiclass``): the same ground with
bright squares (class 1) and dark discs (class 2); masks hold class ids.
Both also get ``tiny_sam.pth``: a randomly initialised small SAM saved in
the official checkpoint layout, so the demo runs the same loading code as
the real weights. Nothing is downloaded. ``tools/train.py`` runs this by
itself for the demo configs when their data is missing.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--task', choices=['shadow', 'multiclass'], default='shadow')
    parser.add_argument(
        '--out',
        help='output folder (default '
        'data/demo_shadow or data/demo_multiclass)')
    parser.add_argument('--num-train', type=int, default=32)
    parser.add_argument('--num-val', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    from mmseg_convlora.utils.demo_data import make_demo_data

    out = args.out or f'data/demo_{args.task}'
    ckpt = make_demo_data(out, args.task, args.num_train, args.num_val,
                          args.seed)
    print(f'Wrote {args.num_train} training and {args.num_val} validation '
          f'images to {out}/{{train,val}}/{{images,masks}} and a tiny '
          f'SAM checkpoint to {ckpt}.')


if __name__ == '__main__':
    main()
