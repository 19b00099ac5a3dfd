import os
import os.path as osp

import mmcv
import numpy as np
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class SavePredictionsHook(Hook):
    """Write each test prediction as a PNG named after its image (binary:
    probability x 255; else class index), per named test set in
    ``out_dir/<name>/``.

    Args:
        out_dir (str): Output folder (created if missing).
    """

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        test_set = getattr(runner.test_loop, 'current_name', None)
        out_dir = osp.join(self.out_dir, test_set or '')
        os.makedirs(out_dir, exist_ok=True)
        for sample in outputs or []:
            stem = osp.splitext(osp.basename(sample.img_path))[0]
            probs = sample.seg_logits.data
            if probs.shape[0] == 1:
                img = (probs[0].float().clamp(0, 1) * 255).round()
            else:
                img = sample.pred_sem_seg.data[0]
            mmcv.imwrite(img.cpu().numpy().astype(np.uint8),
                         osp.join(out_dir, stem + '.png'))
