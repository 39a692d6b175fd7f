"""Flow clips for training and testing a flow stream: a flow list's folders as frame sources.

A flow clip (`FlowDataset`) is TSN sampling of ``L`` consecutive flow fields per segment
from a flow list (``<flow folder> <flow fields> <label>``, `compute.prepare_flow`): uint8
(T*L, 2, H, W), x then y, which the flow transforms (`transforms`) turn into (T, 2L, H, W).
`pair_records` pairs a flow list's entries with the videos of the RGB list they came from
(two-stream testing).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from temporal_shift.data.dataset import VideoDataset
from temporal_shift.data.flow.layout import FLOW_X_TEMPLATE, FLOW_Y_TEMPLATE, flow_folder_name, read_flow_folder
from temporal_shift.data.lists import FrameRecord, ListFileError, Record
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
        offset: int = 0,
    ) -> None:
        super().__init__(folder, template=x_template, num_frames=num_frames, offset=offset)
        self.y_template = y_template

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        shifted = [int(i) + self.offset for i in indices]
        return read_flow_folder(self.path, shifted, x_template=self.template, y_template=self.y_template)

    def frames(self) -> Iterator[SourceFrame]:
        for i in range(self.num_frames):
            yield SourceFrame(index=i, time=i / self.fps, image=self.read([i])[0])


class FlowDataset(VideoDataset):
    """Flow stacks from a flow list (``<flow folder> <flow fields> <label>``, `prepare_flow`).

    The ``sampler``'s ``frames_per_segment`` is L, the flow fields per segment; the uint8 clip is
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
        super().__init__(
            list_file=list_file,
            root=root,
            sampler=sampler,
            transform=transform,
            kind="frames",
            template=x_template,
            num_classes=num_classes,
            seed=seed,
            on_error=on_error,
            check_files=check_files,
        )

    def frame_source(self, record: Record) -> FlowFolderSource:
        assert isinstance(record, FrameRecord)  # the list is read as a frame list (kind "frames")
        path = self.root / record.path
        self._check_folder(path, record)
        return FlowFolderSource(
            path,
            num_frames=record.num_frames,
            x_template=self.template,
            y_template=self.y_template,
            offset=record.offset,
        )


def pair_records(main: VideoDataset, other: VideoDataset, *, skip: bool = False) -> tuple[np.ndarray, dict[int, str]]:
    """Pair ``other``'s entries (e.g. a flow list) with ``main``'s videos by path
    (`layout.flow_folder_name`: the path with a video extension dropped).

    Returns the position in ``main`` of each of ``other``'s records (-1: not a video of
    ``main``) and, for ``main``'s videos that ``other`` lacks, the reason (an error
    unless ``skip``). Paired entries must have the same label.
    """
    where = {flow_folder_name(r.path): i for i, r in enumerate(main.records)}
    positions = np.full(len(other.records), -1, dtype=np.int64)
    for j, record in enumerate(other.records):
        i = where.get(flow_folder_name(record.path))
        if i is None:
            continue
        if main.records[i].label != record.label:
            raise ListFileError(
                f"{record.source}: label {record.label} but {main.records[i].source} "
                f"labels {main.records[i].path} {main.records[i].label}"
            )
        positions[j] = i
    found = set(positions[positions >= 0].tolist())
    missing = {
        i: f"{r.source}: {r.path} has no entry in {other.list_file}"
        for i, r in enumerate(main.records)
        if i not in found
    }
    if missing and not skip:
        first = next(iter(missing.values()))
        raise ListFileError(
            f"{first}"
            + (f" ({len(missing) - 1} more videos neither)" if len(missing) > 1 else "")
            + "; list the same videos, or leave them out (on_error: skip)"
        )
    return positions, missing
