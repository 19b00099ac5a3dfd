"""BitFit (Ben Zaken et al., ACL 2022): train only the biases."""
from typing import List, Sequence, Union

import torch.nn as nn
from mmseg.registry import MODELS

from .base_adapter import BaseSAMAdapter
from .targets import encoder_description, match_targets

BITFIT_TARGETS = r'(.+\.)?bias'


@MODELS.register_module()
class BitFit(BaseSAMAdapter):
    """Unfreeze the encoder's parameters whose names match ``targets``.

    Args:
        targets (str | list[str]): Regex(es) over the encoder's parameter
            names (``re.fullmatch``). Default: every ``*.bias``.
    """

    applies_to = 'any'
    needs_encoder_grad = True

    def __init__(self,
                 targets: Union[str, Sequence[str]] = BITFIT_TARGETS,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.targets = targets
        #: Names (inside the encoder) of the parameters BitFit trains.
        self.parameter_names: List[str] = []

    def apply_to(self, encoder: nn.Module) -> List[nn.Module]:
        params = dict(encoder.named_parameters())
        names = match_targets(
            list(params),
            self.targets,
            'BitFit',
            what='parameter',
            where=encoder_description(encoder))
        self.parameter_names = list(names)
        for name in names:
            params[name].requires_grad_(True)
        return []
