"""Old path of `temporal_shift.checkpoint.importers`, kept for one release: import from there instead."""

import warnings

from temporal_shift.checkpoint.importers import (  # noqa: F401
    FORMATS,
    ImportedCheckpoint,
    detect_format,
    import_checkpoint,
    import_mmaction2_checkpoint,
    import_online_demo_checkpoint,
    import_reference_checkpoint,
    model_from_data,
)

warnings.warn("temporal_shift.importers moved to temporal_shift.checkpoint.importers", DeprecationWarning, stacklevel=2)
