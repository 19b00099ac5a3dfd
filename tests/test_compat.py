"""The mmcv-lite fallback and the weights_only loading of mmengine files."""
import importlib
import io
import os
import os.path as osp
import pickle
import re
import shlex
import shutil
import site
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmseg_convlora_mmcv_ops
from mmseg_convlora import compat
from helpers import REPO


def test_mmseg_imports_on_this_mmcv():
    import mmseg.models  # noqa: F401
    import mmseg.utils  # noqa: F401
    from mmseg.models.utils import point_sample  # noqa: F401


@pytest.mark.skipif(compat.MMCV_FULL_AVAILABLE, reason='full mmcv present')
def test_fallback_provides_exactly_the_module_level_names():
    import mmcv.ops
    assert mmcv.ops.point_sample is compat.point_sample
    assert mmcv.ops.sigmoid_focal_loss is compat.sigmoid_focal_loss
    with pytest.raises(ModuleNotFoundError, match='full mmcv'):
        from mmcv.ops import nms  # noqa: F401
    # mmseg's own guard (except ModuleNotFoundError) sees "no op", as
    # on a machine without mmcv
    cc_head = importlib.import_module('mmseg.models.decode_heads.cc_head')
    assert cc_head.CrissCrossAttention is None


def test_fallback_leaves_full_mmcv_alone(monkeypatch):
    finder = mmseg_convlora_mmcv_ops.MmcvOpsFinder()
    monkeypatch.setattr(mmseg_convlora_mmcv_ops, 'has_compiled_mmcv_ops',
                        lambda: True)
    assert finder.find_spec('mmcv.ops') is None
    monkeypatch.setattr(mmseg_convlora_mmcv_ops, 'has_compiled_mmcv_ops',
                        lambda: False)
    assert finder.find_spec('mmcv.ops').loader is finder
    assert finder.find_spec('mmcv.cnn') is None


def test_setup_puts_the_pth_file_into_site_packages(tmp_path):
    # a wheel holds build_lib as site-packages; -e was checked by hand
    # (the editable build writes the file into the wheel root too)
    subprocess.run([
        sys.executable, 'setup.py', '-q', 'build_py', '--build-lib',
        str(tmp_path)
    ],
                   cwd=REPO,
                   check=True,
                   capture_output=True)
    with open(tmp_path / 'mmseg_convlora_mmcv_ops.pth') as f:
        assert f.read() == ('import mmseg_convlora_mmcv_ops; '
                            'mmseg_convlora_mmcv_ops.install()\n')
    assert (tmp_path / 'mmseg_convlora_mmcv_ops.py').is_file()


@pytest.mark.skipif(compat.MMCV_FULL_AVAILABLE, reason='full mmcv present')
def test_mmseg_apis_import_first_in_a_fresh_process(tmp_path):
    """With the installed .pth, mmseg's API imports before the plugin; without
    it (the state before this fix) it does not. ``-S`` plus site-packages on
    PYTHONPATH: the packages without their .pth files, so the result does not
    depend on whether this environment was installed with the .pth."""
    code = ('import sys\n'
            'from mmseg.apis import MMSegInferencer, init_model\n'
            'import mmcv.ops\n'
            'assert "mmseg_convlora" not in sys.modules\n'
            'print(type(mmcv.ops).__name__)\n')
    site_dir = tmp_path / 'site'
    site_dir.mkdir()
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([REPO] + site.getsitepackages()))
    bare = subprocess.run([sys.executable, '-S', '-c', code],
                          cwd=str(tmp_path),
                          env=env,
                          capture_output=True,
                          text=True)
    assert bare.returncode != 0 and "No module named 'mmcv._ext'" in \
        bare.stderr
    shutil.copy(osp.join(REPO, 'mmseg_convlora_mmcv_ops.pth'), site_dir)
    with_pth = subprocess.run([
        sys.executable, '-S', '-c',
        f'import site; site.addsitedir({str(site_dir)!r})\n' + code
    ],
                              cwd=str(tmp_path),
                              env=env,
                              capture_output=True,
                              text=True)
    assert with_pth.returncode == 0, with_pth.stderr
    assert with_pth.stdout.strip() == 'FallbackOpsModule'


def test_point_sample_bilinear_by_hand():
    feat = torch.arange(16.).view(1, 1, 4, 4)
    # x = 0.5 (column 1.5 in pixel centres), y = 0.25 (row 0.5)
    points = torch.tensor([[[0.5, 0.25], [0.125, 0.125]]])
    out = compat.point_sample(feat, points)
    # pixel centres: x_pix = 0.5 * 4 - 0.5 = 1.5, y_pix = 0.25 * 4 - 0.5 = 0.5
    # value = mean of rows 0..1, cols 1..2 = (1 + 2 + 5 + 6) / 4 = 3.5
    assert out.shape == (1, 1, 2)
    assert out[0, 0, 0].item() == pytest.approx(3.5)
    # (0.125, 0.125) is the centre of pixel (0, 0)
    assert out[0, 0, 1].item() == pytest.approx(0.0)


def test_sigmoid_focal_loss_matches_mmseg_python_version():
    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    labels = torch.tensor([0, 1, 2, 3, 1, 0])  # 3 = background
    one_hot = F.one_hot(labels, 4)[:, :3].float()
    ours = compat.sigmoid_focal_loss(logits, labels, 2.0, 0.25, None, 'none')
    ref = py_sigmoid_focal_loss(
        logits, one_hot, None, None, 2.0, 0.25, reduction='none')
    torch.testing.assert_close(ours, ref)


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    """A checkpoint with mmengine objects (history buffers, numpy values),
    as earlier versions of the plugin wrote, loads through the plugin's
    loader, and torch's safe globals are the same afterwards."""
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub('test_compat_hub')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', np.float64(0.25))
    ckpt = dict(
        meta=dict(
            seed=np.int64(3),
            epoch=1,
            dataset_meta=dict(classes=('a', 'b'), palette=[[0, 0, 0]])),
        message_hub=hub.state_dict(),
        state_dict={'w': torch.ones(2)},
        arr=np.arange(3, dtype=np.float32))
    # they dropped the statistics methods mmengine pickles as getattr()
    hist = ckpt['message_hub']['log_scalars']['train/loss']
    hist._statistics_methods = {}
    path = str(tmp_path / 'mmengine.pth')
    torch.save(ckpt, path)
    safe = set(map(str, torch.serialization.get_safe_globals()))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    loaded = compat.safe_torch_load(path)
    assert set(map(str, torch.serialization.get_safe_globals())) == safe
    hist = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(hist, HistoryBuffer)
    assert hist.mean() == pytest.approx(0.375)
    assert loaded['meta']['seed'] == 3


def test_safety_is_not_switched_off():

    class Evil:

        def __reduce__(self):
            return (print, ('pwned', ))

    buf = io.BytesIO()
    torch.save({'x': Evil()}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buf, weights_only=True)


def _install_check_command():
    """The one-line install check of docs/get_started.md (the README's
    is the same)."""
    with open(osp.join(REPO, 'docs', 'get_started.md')) as f:
        text = f.read()
    section = text[text.index('### Check the install'):]
    command = re.search(r'```bash\n(python -c .*)\n```', section).group(1)
    with open(osp.join(REPO, 'README.md')) as f:
        assert command in f.read()
    return shlex.split(command)


def test_install_check_names_mismatched_torch_and_torchvision(tmp_path):
    """A torchvision built for another torch fails on import with the
    RuntimeError below; the check reports it in one line with both
    versions and the reinstall command."""
    command = _install_check_command()
    ok = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, check=True)
    import torchvision
    assert ok.stdout.split() == [
        'torch', torch.__version__, 'torchvision', torchvision.__version__
    ]
    fake = tmp_path / 'torchvision'
    fake.mkdir()
    (fake / '__init__.py').write_text(
        'raise RuntimeError("operator torchvision::nms does not exist")\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]))
    bad = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    last = bad.stderr.strip().splitlines()[-1]
    base = torch.__version__.split('+')[0]
    assert last.startswith('ImportError: torchvision ')
    assert f'does not match torch {torch.__version__} ' in last
    assert f'pip install --force-reinstall torch=={base} torchvision' in last
