"""One target matcher: LoRA/Conv-LoRA (Linear layers), the hook-based
adapters (modules), BitFit (parameters) and Conv-LoRA's token-grid rules
choose and refuse alike."""
import pytest
import torch.nn as nn
from mmseg.registry import MODELS

from mmseg_convlora.models.adapters.targets import match_targets


def encoder():
    return nn.Sequential(
        nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8)))


def patterns(matches):
    return [(name, m.re.pattern) for name, m in matches.items()]


def test_names_in_order_each_once_with_the_first_pattern():
    names = ['a.x', 'a.y', 'b.x', 'b.y']
    assert patterns(match_targets(names, [r'b\..', r'.\.x'],
                                  'LoRA')) == [('a.x', r'.\.x'),
                                               ('b.x', r'b\..'),
                                               ('b.y', r'b\..')]
    assert patterns(match_targets(names, r'a\.y',
                                  'LoRA')) == [('a.y', r'a\.y')]
    # the token-grid rules: a rule without a layer is fine, groups are kept
    found = match_targets(
        names, [r'(?P<scope>a)\.y', 'c'], 'Conv-LoRA', every_pattern=False)
    assert found['a.y'].group('scope') == 'a' and list(found) == ['a.y']
    with pytest.raises(ValueError, match='"c" matches no module'):
        match_targets(names, [r'a\.y', 'c'], 'Conv-LoRA')


@pytest.mark.parametrize('cfg,what,valid', [
    (dict(type='LoRA', rank=2), 'module', '0'),
    (dict(type='ConvLoRA', rank=2), 'module', '0'),
    (dict(type='SSF'), 'module', '0'),
    (dict(type='BitFit'), 'parameter', r'0\.bias'),
])
def test_every_adapter_refuses_alike(cfg, what, valid):
    for targets, message in [
        ([], f'targets is empty; give at least one {what}-name pattern'),
        ('1.(', 'not a valid regular expression'),
        ('nothing', f'"nothing" matches no {what} of the Sequential '
         'backbone'),
            # every pattern must match (the first one does)
        ([valid, 'nothing'], '"nothing" matches no'),
    ]:
        adapter = MODELS.build(dict(cfg, targets=targets))
        with pytest.raises(ValueError, match=message):
            adapter.apply_to(encoder())
