import os.path as osp
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# Goes into site-packages (also with ``pip install -e``): makes
# ``import mmcv.ops`` work on mmcv-lite before anything imports
# mmseg_convlora (see mmseg_convlora_mmcv_ops.py).
PTH_FILE = 'mmseg_convlora_mmcv_ops.pth'


class BuildPyWithPth(build_py):
    """``build_py`` that also puts :data:`PTH_FILE` into the wheel's root.

    A regular wheel holds what is in ``build_lib``. An editable wheel
    (PEP 660) holds only its import hook plus what is in ``install_lib``
    (``data_files`` are not installed in editable mode).
    """

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            target = self.get_finalized_command('install').install_lib
        else:
            target = self.build_lib
        self.copy_file(PTH_FILE, osp.join(target, PTH_FILE))


def read_requirements(path):
    with open(path) as f:
        lines = [
            line.strip() for line in f
            if line.strip() and not line.startswith('#')
        ]
    found = []
    for line in lines:  # '-r other.txt' includes that file
        if line.startswith('-r '):
            found += read_requirements(line[3:].strip())
        else:
            found.append(line)
    return found


setup(
    name='mmseg-convlora',
    version='0.1.0',
    description='Conv-LoRA, LoRA and CAD fine-tuning of the Segment Anything '
    'Model as an MMSegmentation 1.x plugin',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmseg_convlora', 'mmseg_convlora.*']),
    py_modules=['mmseg_convlora_mmcv_ops'],
    cmdclass={'build_py': BuildPyWithPth},
    python_requires='>=3.9',
    # mmcv is not declared: users with a full mmcv build must not get
    # mmcv-lite installed over it. requirements.txt (the README's install
    # command) adds mmcv-lite for everyone else.
    install_requires=[
        r for r in read_requirements('requirements.txt')
        if not r.startswith('mmcv')
    ],
    extras_require={
        'tests': read_requirements('requirements-test.txt'),
        'deploy': read_requirements('requirements-deploy.txt')
    },
)
