"""Loading weights into a model strictly, with errors that name the source and every bad key."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class CheckpointError(ValueError):
    """Weights (a checkpoint file or a state dict) that cannot be used as asked; the message
    names the source. Re-exported by `temporal_shift.checkpoint.format`, which raises it for files."""


def load_state_strict(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Load ``state`` into ``model``; any missing/unexpected/misshapen key is an error listing them."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or misshapen:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                parts.append(f"{label} keys: {shown}")
        raise CheckpointError(f"{source}: state dict does not fit the model; " + "; ".join(parts))
    model.load_state_dict(state)
