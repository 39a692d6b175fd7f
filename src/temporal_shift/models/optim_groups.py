"""The reference recipe's parameter groups: learning-rate and weight-decay multipliers."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from temporal_shift.models.base import ClipClassifier


def param_groups(model: ClipClassifier, *, fc_lr5: bool = False) -> list[dict[str, Any]]:
    """Parameter groups of the reference recipe, each with ``lr_mult`` and ``decay_mult``.

    - first conv weight (1x lr, decay), other conv/linear weights (1x, decay);
    - biases: 2x lr, no weight decay;
    - BN parameters: no decay (with partial BN only the first BN is trained);
    - ``fc_lr5`` (fine-tuning): the new head gets 5x lr for its weight, 10x for its bias.
    The optimiser's lr and weight decay are multiplied by these factors.
    """
    groups: dict[str, list[Tensor]] = {  # parameters (torch types a layer's weight and bias as Tensor)
        "first_conv_weight": [],
        "first_conv_bias": [],
        "normal_weight": [],
        "normal_bias": [],
        "bn": [],
        "lr5_weight": [],
        "lr10_bias": [],
    }
    mults = {
        "first_conv_weight": (1, 1),
        "first_conv_bias": (2, 0),
        "normal_weight": (1, 1),
        "normal_bias": (2, 0),
        "bn": (1, 0),
        "lr5_weight": (5, 1),
        "lr10_bias": (10, 0),
    }
    first_conv_seen = False
    bn_seen = 0
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            prefix = "normal" if first_conv_seen else "first_conv"
            first_conv_seen = True
            groups[f"{prefix}_weight"].append(module.weight)
            if module.bias is not None:
                groups[f"{prefix}_bias"].append(module.bias)
        elif isinstance(module, nn.Linear):
            head = fc_lr5 and module is model.head
            groups["lr5_weight" if head else "normal_weight"].append(module.weight)
            if module.bias is not None:
                groups["lr10_bias" if head else "normal_bias"].append(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            bn_seen += 1
            if not model.config.partial_bn or bn_seen == 1:
                groups["bn"].extend(p for p in module.parameters(recurse=False))
        elif list(module.parameters(recurse=False)):
            raise ValueError(f"param_groups: no rule for parameters of {type(module).__name__}")
    return [
        {"name": name, "params": params, "lr_mult": mults[name][0], "decay_mult": mults[name][1]}
        for name, params in groups.items()
        if params
    ]
