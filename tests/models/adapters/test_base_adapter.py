"""Where an adapter applies is one class attribute, ``applies_to``, which
every backbone checks the same way."""
import pytest
import torch.nn as nn
from mmseg.registry import MODELS

import mmseg_convlora  # noqa: F401
from mmseg_convlora.models.adapters.base_adapter import (ENCODER_KINDS,
                                                         BaseSAMAdapter,
                                                         apply_adapters)


@pytest.mark.parametrize('applies_to,accepted,ok', [
    ('any', ('any', ), True),
    ('sam', ('any', 'sam'), True),
    ('sam_vit', ('any', 'sam'), False),
    ('sam', ('any', ), False),
])
def test_applies_to_decides(applies_to, accepted, ok):

    class Probe(BaseSAMAdapter):
        pass

    Probe.applies_to = applies_to
    if ok:
        assert apply_adapters([Probe()], nn.Linear(2, 2), 'X', accepted) == []
    else:
        with pytest.raises(ValueError, match='Probe works on .* not on X'):
            apply_adapters([Probe()], nn.Linear(2, 2), 'X', accepted)


def test_registered_adapters_and_backbones_use_the_known_kinds():
    kinds = {
        name: cls.applies_to
        for name, cls in MODELS.module_dict.items()
        if isinstance(cls, type) and issubclass(cls, BaseSAMAdapter)
    }
    assert kinds == dict(
        LoRA='any',
        ConvLoRA='any',
        BitFit='any',
        CAD='sam',
        HoulsbyAdapter='sam_vit',
        SSF='sam_vit',
        VPT='sam_vit',
        SAMAdapter='sam_vit')
    for name in ('SAMViT', 'SAMTinyViT'):
        assert set(MODELS.get(name).accepted_adapters) <= set(ENCODER_KINDS)
