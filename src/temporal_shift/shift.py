"""Old path of `temporal_shift.ops.shift`, kept for one release: import from there instead."""

import warnings

from temporal_shift.ops.shift import (  # noqa: F401
    MODES,
    OFFSETS,
    TemporalShift,
    check_shift_args,
    shift_functional,
    shift_with_torch_ops,
    temporal_shift,
)

warnings.warn("temporal_shift.shift moved to temporal_shift.ops.shift", DeprecationWarning, stacklevel=2)
