from setuptools import find_packages, setup


def read_requirements(path):
    with open(path) as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith('#')
        ]


setup(
    name='mmseg-convlora',
    version='0.1.0',
    description='Conv-LoRA, LoRA and CAD fine-tuning of the Segment Anything '
    'Model as an MMSegmentation 1.x plugin',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmseg_convlora', 'mmseg_convlora.*']),
    python_requires='>=3.9',
    # mmcv is not declared: users with a full mmcv build must not get
    # mmcv-lite installed over it. requirements.txt (the README's install
    # command) adds mmcv-lite for everyone else.
    install_requires=[
        r for r in read_requirements('requirements.txt')
        if not r.startswith('mmcv')
    ],
    extras_require={'tests': read_requirements('requirements-test.txt')},
)
