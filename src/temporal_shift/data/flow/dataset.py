"""Flow clips for training and testing a flow stream: a flow list's folders as frame sources.

A flow clip (`FlowDataset`) is TSN sampling of ``L`` consecutive flow fields per segment
from a flow list (``<flow folder> <flow fields> <label>``, `compute.prepare_flow`): uint8
(T*L, 2, H, W), x then y, which the flow transforms (`transforms`) turn into (T, 2L, H, W).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from temporal_shift.data.dataset import VideoDataset
from temporal_shift.data.flow.layout import FLOW_X_TEMPLATE, FLOW_Y_TEMPLATE, read_flow_folder
from temporal_shift.data.lists import FrameRecord, Record
from temporal_shift.data.sampling import Sampler
from temporal_shift.data.sources import FolderSource, SourceFrame


class FlowFolderSource(FolderSource):
    """The flow fields of a flow folder as a frame source: ``read(indices)`` -> uint8 (N, 2, H, W),
    x then y (`read_flow_folder`); ``frames()`` gives each (2, H, W) field in order."""

    def __init__(
        self,
        folder: str | Path,
        *,
        num_frames: int | None = None,
        x_template: str = FLOW_X_TEMPLATE,
        y_template: str = FLOW_Y_TEMPLATE,
    ) -> None:
        super().__init__(folder, template=x_template, num_frames=num_frames)
        self.y_template = y_template

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        return read_flow_folder(self.path, indices, x_template=self.template, y_template=self.y_template)

    def frames(self) -> Iterator[SourceFrame]:
        for i in range(self.num_frames):
            yield SourceFrame(index=i, time=i / self.fps, image=self.read([i])[0])


class FlowDataset(VideoDataset):
    """Flow stacks from a flow list (``<flow folder> <flow fields> <label>``, `prepare_flow`).

    The ``sampler``'s ``new_length`` is L, the flow fields per segment; the uint8 clip is
    (T*L, 2, H, W) and the flow transforms turn it into (T, 2L, H, W). Errors (a missing
    or corrupt flow file) name the list line and the file, as `VideoDataset`'s do.
    """

    def __init__(
        self,
        *,
        list_file: str | Path,
        root: str | Path,
        sampler: Sampler,
        transform: Any = None,
        num_classes: int | None = None,
        seed: int = 0,
        on_error: Literal["raise", "skip"] = "raise",
        check_files: bool = True,
        x_template: str = FLOW_X_TEMPLATE,
        y_template: str = FLOW_Y_TEMPLATE,
    ) -> None:
        self.y_template = y_template
        super().__init__(list_file=list_file, root=root, sampler=sampler, transform=transform, kind="frames",
                         template=x_template, num_classes=num_classes, seed=seed, on_error=on_error,
                         check_files=check_files)

    def frame_source(self, record: Record) -> FlowFolderSource:
        assert isinstance(record, FrameRecord)  # the list is read as a frame list (kind "frames")
        path = self.root / record.path
        self._check_folder(path, record.num_frames)
        return FlowFolderSource(path, num_frames=record.num_frames, x_template=self.template,
                                y_template=self.y_template)
