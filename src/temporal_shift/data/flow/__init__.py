"""Optical flow for the two-stream baseline.

- `layout`: the reference storage layout (``flow_x_00001.jpg`` / ``flow_y_00001.jpg``
  grayscale JPEGs, quantised to +-bound pixels), writing and reading it;
- `compute`: flow with OpenCV (TV-L1 or Farneback) and ``tsm prepare flow`` (`prepare_flow`);
- `dataset`: flow clips from a flow list (`FlowDataset`), paired with an RGB list (`pair_records`);
- `transforms`: crops, the x-negating flip, normalisation and stacking of flow clips.

The names below are importable from ``temporal_shift.data.flow`` directly.
"""

from temporal_shift.data.flow.compute import (
    METHODS,
    OPENCV_EXTRA,
    FlowComputer,
    FlowDependencyError,
    FlowMethod,
    FlowResult,
    check_method,
    extract_flow,
    prepare_flow,
    require_opencv,
    source_frames,
)
from temporal_shift.data.flow.dataset import FlowDataset, FlowFolderSource, pair_records
from temporal_shift.data.flow.layout import (
    DEFAULT_BOUND,
    FLOW_DONE_FILE,
    FLOW_FAILURES_FILE,
    FLOW_X_TEMPLATE,
    FLOW_Y_TEMPLATE,
    decode_flow_file,
    dequantize_flow,
    flow_folder_name,
    flow_templates,
    quantize_flow,
    read_flow_folder,
    write_flow_image,
)
from temporal_shift.data.flow.transforms import (
    DEFAULT_FLOW_LENGTH,
    FLOW_MEAN,
    FLOW_STD,
    FlowHorizontalFlip,
    FlowTenCrop,
    StackFlow,
    flip_flow,
    flow_test_transform,
    flow_train_transform,
)

__all__ = [
    "DEFAULT_BOUND",
    "DEFAULT_FLOW_LENGTH",
    "FLOW_DONE_FILE",
    "FLOW_FAILURES_FILE",
    "FLOW_MEAN",
    "FLOW_STD",
    "FLOW_X_TEMPLATE",
    "FLOW_Y_TEMPLATE",
    "METHODS",
    "OPENCV_EXTRA",
    "FlowComputer",
    "FlowDataset",
    "FlowDependencyError",
    "FlowFolderSource",
    "FlowHorizontalFlip",
    "FlowMethod",
    "FlowResult",
    "FlowTenCrop",
    "StackFlow",
    "check_method",
    "decode_flow_file",
    "dequantize_flow",
    "extract_flow",
    "flip_flow",
    "flow_folder_name",
    "flow_templates",
    "flow_test_transform",
    "flow_train_transform",
    "pair_records",
    "prepare_flow",
    "quantize_flow",
    "read_flow_folder",
    "require_opencv",
    "source_frames",
    "write_flow_image",
]
