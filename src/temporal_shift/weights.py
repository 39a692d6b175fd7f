"""Old path of `temporal_shift.hub` (published weights), kept for one release: import from
`temporal_shift.hub.weights`, `.published`, `.download` or `.build` instead."""

import warnings

from temporal_shift.hub.build import build_published, resolve_weights  # noqa: F401
from temporal_shift.hub.download import DownloadError, default_cache_dir, sha256_file  # noqa: F401
from temporal_shift.hub.published import (  # noqa: F401
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Accuracy,
    Dataset,
    PublishedWeights,
    class_names,
)
from temporal_shift.hub.weights import (  # noqa: F401
    cached_path,
    download_weights,
    get_weights,
    registry,
    weights_table,
)

warnings.warn("temporal_shift.weights moved to temporal_shift.hub", DeprecationWarning, stacklevel=2)
