"""Renamed registry names keep building old configs (with one warning) and
loading their checkpoints."""
import pytest
import torch
from mmengine.registry import Registry, init_default_scope
from mmseg.registry import MODELS

import mmseg_convlora  # noqa: F401
from mmseg_convlora.engine.hooks import TrainableCheckpointHook
from mmseg_convlora.models.adapters import HoulsbyAdapter
from mmseg_convlora.models.utils import load_peft_checkpoint
from mmseg_convlora.utils import deprecated_alias
from mmseg_convlora.utils.deprecated_alias import (RENAMED,
                                                   register_deprecated_alias)
from helpers import tiny_model_cfg


def test_old_name_builds_the_new_class():
    adapter = MODELS.build(dict(type='Adapter', hidden_dim=3))
    assert type(adapter) is HoulsbyAdapter and adapter.hidden_dim == 3
    assert RENAMED['Adapter'] == 'HoulsbyAdapter'


def test_alias_warns_once(monkeypatch):
    messages = []
    monkeypatch.setattr(deprecated_alias, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    registry = Registry('probe')

    @registry.register_module()
    class New:

        def __init__(self, x=0):
            self.x = x

    register_deprecated_alias(registry, 'Old', 'New')
    built = [registry.build(dict(type='Old', x=i)) for i in range(2)]
    assert [type(b) for b in built] == [New, New] and built[1].x == 1
    assert messages == ["type='Old' is deprecated: write type='New'."]


@pytest.mark.parametrize('name',
                         ['EncoderDecoder', 'BaseDataPreprocessor', 'LoRA'])
def test_names_owned_by_mmseg_mmengine_or_us_are_refused(name):
    with pytest.raises(KeyError, match='already registered'):
        register_deprecated_alias(MODELS, name, 'HoulsbyAdapter')


def test_checkpoint_of_the_old_name_loads(tiny_ckpt, tmp_path):
    init_default_scope('mmseg')
    old = MODELS.build(tiny_model_cfg(tiny_ckpt, dict(type='Adapter')))
    ckpt = dict(state_dict=old.state_dict(), meta={})

    class Runner:
        model, cfg = old, dict(resume=False)

    TrainableCheckpointHook().before_save_checkpoint(Runner, ckpt)
    ckpt['meta']['peft']['adapters'] = ['Adapter']  # as written before
    torch.save(ckpt, tmp_path / 'old.pth')
    new = MODELS.build(tiny_model_cfg(tiny_ckpt, dict(type='HoulsbyAdapter')))
    load_peft_checkpoint(new, str(tmp_path / 'old.pth'))
    for key, value in old.state_dict().items():
        assert torch.equal(value, new.state_dict()[key]), key
