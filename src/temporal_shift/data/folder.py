"""Your own videos as a dataset: a tree of class folders -> classes.txt, train.txt, val.txt.

``prepare_folder(root, out_dir=...)`` (``tsm prepare folder``) reads one of two layouts:

- ``root/<class>/<video or frame folder>``: the classes are the folder names, sorted; each
  class's videos are split into train and val (stratified: ``val_fraction`` of every class,
  at least one each, chosen by ``seed``);
- ``root/train/<class>/...`` and ``root/val/<class>/...``: an existing split, kept as given.

Inside a class folder, a video is a file with a video extension (``.mp4``, ``.webm``, ``.avi``,
``.mkv``, ``.mov``, ``.m4v``) and a frame folder a directory of JPEG frames named by ``template``
(``img_00001.jpg`` ...); other directories are searched for more of both. Hidden entries (names
starting with ``.``) and files that are neither are skipped, counted and listed in
``skipped.txt`` next to the lists: nothing is left out silently. A class with too few videos
for the split, a class folder with none, or frames named otherwise are one-line errors naming
the folder.

With ``extract=True`` the videos are decoded into frame folders under ``out_dir/frames``
(`extract.extract_frames`: parallel, resumable); the lists then name those folders. List paths
are relative to `FolderDataset.root`: ``root`` without extraction, ``out_dir`` with it (frame
folders that were already in ``root`` are then named by a relative path from ``out_dir``).
``dataset.json`` records the root, the classes, the counts and the settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from temporal_shift.data.decode import VIDEO_EXTENSIONS, count_frame_files
from temporal_shift.data.lists import DEFAULT_TEMPLATE, write_classes

IMAGE_EXTENSIONS = (".jpg", ".jpeg")
SPLIT_DIRS = ("train", "val")
FRAMES_DIR = "frames"
DATASET_FILE = "dataset.json"
SKIPPED_FILE = "skipped.txt"
DEFAULT_VAL_FRACTION = 0.2
ItemKind = Literal["video", "frames"]


@dataclasses.dataclass(frozen=True)
class FolderItem:
    """One video of a class folder: a video file or a frame folder, relative to the tree's root."""

    path: str  # posix, relative to the root given to `prepare_folder`
    kind: ItemKind
    label: int
    num_frames: int | None = None  # frame folders: frames 1..num_frames named by the template


@dataclasses.dataclass
class FolderDataset:
    """What `prepare_folder` wrote: the lists (paths relative to ``root``), classes and counts."""

    source: Path  # the class-folder tree
    root: Path  # list paths are relative to this
    out_dir: Path
    classes: list[str]
    classes_file: Path
    train_list: Path
    val_list: Path
    split: Literal["stratified", "given"]
    counts: dict[str, list[int]]  # split -> videos per class
    skipped: list[tuple[str, str]]  # (path relative to the tree, reason)
    extracted: int = 0  # videos decoded into frame folders by this run (extract=True)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def skipped_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, reason in self.skipped:
            counts[reason] = counts.get(reason, 0) + 1
        return counts

    def summary(self) -> str:
        train, val = sum(self.counts["train"]), sum(self.counts["val"])
        lines = [
            f"{self.source}: {self.num_classes} classes, {train} train / {val} val videos "
            f"({'split as given' if self.split == 'given' else 'stratified split'})",
            f"classes: {self.classes_file}",
            f"train: {self.train_list}",
            f"val: {self.val_list}",
            f"list paths are relative to {self.root}",
        ]
        if self.skipped:
            what = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped_counts().items()))
            lines.append(f"skipped: {what} (listed in {self.out_dir / SKIPPED_FILE})")
        missing = [c for c, n in zip(self.classes, self.counts["val"], strict=True) if n == 0]
        if missing:
            lines.append(f"classes without val videos: {', '.join(missing)}")
        return "\n".join(lines)


# --- scanning the tree -------------------------------------------------------------------


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _has_jpegs(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() for p in folder.iterdir())


def scan_class_folder(
    folder: Path, *, base: Path, label: int, template: str = DEFAULT_TEMPLATE
) -> tuple[list[FolderItem], list[tuple[str, str]]]:
    """The videos and frame folders under one class folder (recursively, sorted by path) and what
    was skipped there, as (path relative to ``base``, reason)."""
    items: list[FolderItem] = []
    skipped: list[tuple[str, str]] = []
    for entry in sorted(folder.iterdir()):
        rel = entry.relative_to(base).as_posix()
        if _is_hidden(entry):
            skipped.append((rel, "hidden"))
        elif entry.is_dir():
            if _has_jpegs(entry):
                count = count_frame_files(entry, template=template)
                if count == 0:
                    raise ValueError(
                        f"{entry}: JPEG frames not named like {template.format(1)} (the template); "
                        "rename them or pass the template (--template)"
                    )
                items.append(FolderItem(rel, "frames", label, count))
            else:
                more, more_skipped = scan_class_folder(entry, base=base, label=label, template=template)
                items += more
                skipped += more_skipped
        elif entry.suffix.lower() in VIDEO_EXTENSIONS:
            items.append(FolderItem(rel, "video", label))
        else:
            reason = "images outside a frame folder" if entry.suffix.lower() in IMAGE_EXTENSIONS else "not videos"
            skipped.append((rel, reason))
    return items, skipped


def scan_tree(
    root: Path, *, base: Path, classes: Sequence[str] | None = None, template: str = DEFAULT_TEMPLATE
) -> tuple[list[str], dict[str, list[FolderItem]], list[tuple[str, str]]]:
    """The class folders of ``root`` (sorted names; with ``classes`` those labels), their items
    and what was skipped. A class folder without a video is an error."""
    skipped: list[tuple[str, str]] = []
    found: list[Path] = []
    for entry in sorted(root.iterdir()):
        rel = entry.relative_to(base).as_posix()
        if _is_hidden(entry):
            skipped.append((rel, "hidden"))
        elif entry.is_dir():
            found.append(entry)
        else:
            skipped.append((rel, "files outside a class folder"))
    names = [p.name for p in found] if classes is None else list(classes)
    index = {name: i for i, name in enumerate(names)}
    items: dict[str, list[FolderItem]] = {}
    for folder in found:
        if folder.name not in index:
            raise ValueError(
                f"{folder}: class {folder.name!r} has no training videos ({base / 'train' / folder.name} is missing)"
            )
        found_items, found_skipped = scan_class_folder(folder, base=base, label=index[folder.name], template=template)
        if not found_items:
            raise ValueError(
                f"{folder}: no videos ({', '.join(VIDEO_EXTENSIONS)}) or frame folders in class {folder.name!r}"
                + (f" ({len(found_skipped)} other entries skipped)" if found_skipped else "")
            )
        items[folder.name] = found_items
        skipped += found_skipped
    return names, items, skipped


# --- splitting -------------------------------------------------------------------------------


def stratified_split(
    items: Sequence[FolderItem], *, val_fraction: float, seed: int, name: str, where: Path
) -> tuple[list[FolderItem], list[FolderItem]]:
    """One class's items -> (train, val): ``n * val_fraction`` rounded half up for val, at least
    one in each, drawn with a generator seeded by (seed, class name), so adding a class keeps the
    others' split."""
    n = len(items)
    if n < 2:
        raise ValueError(
            f"{where}: class {name!r} has {n} video; a train/val split needs at least 2 per class "
            "(add videos, or give the split as ROOT/train/<class> and ROOT/val/<class>)"
        )
    n_val = min(max(1, math.floor(n * val_fraction + 0.5)), n - 1)
    order = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))]).permutation(n)
    val = set(order[:n_val].tolist())
    return [x for i, x in enumerate(items) if i not in val], [x for i, x in enumerate(items) if i in val]


def _check_settings(val_fraction: float, template: str) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    try:
        template.format(1)
    except (IndexError, KeyError, ValueError):
        raise ValueError(f"template {template!r} must have one integer field, like {DEFAULT_TEMPLATE!r}") from None


def split_tree(
    root: Path, *, val_fraction: float, seed: int, template: str
) -> tuple[list[str], list[FolderItem], list[FolderItem], list[tuple[str, str]], Literal["stratified", "given"]]:
    """(classes, train items, val items, skipped, split kind) of a class-folder tree."""
    train_dir, val_dir = root / SPLIT_DIRS[0], root / SPLIT_DIRS[1]
    if train_dir.is_dir() != val_dir.is_dir():
        have, lack = (train_dir, val_dir) if train_dir.is_dir() else (val_dir, train_dir)
        raise ValueError(f"{have} is there but {lack} is not: an existing split needs both train/ and val/")
    if train_dir.is_dir():
        classes, train, skipped = scan_tree(train_dir, base=root, template=template)
        _, val, val_skipped = scan_tree(val_dir, base=root, classes=classes, template=template)
        others = [p for p in sorted(root.iterdir()) if p.name not in SPLIT_DIRS]
        skipped += val_skipped + [(p.name, "hidden" if _is_hidden(p) else "outside train/ and val/") for p in others]
        return (
            classes,
            [x for c in classes for x in train[c]],
            [x for c in classes for x in val.get(c, [])],
            skipped,
            "given",
        )
    classes, items, skipped = scan_tree(root, base=root, template=template)
    train_items: list[FolderItem] = []
    val_items: list[FolderItem] = []
    for name in classes:
        a, b = stratified_split(items[name], val_fraction=val_fraction, seed=seed, name=name, where=root / name)
        train_items += a
        val_items += b
    return classes, train_items, val_items, skipped, "stratified"


# --- writing -------------------------------------------------------------------------------------


def _line(item: FolderItem, *, path: str, num_frames: int | None) -> str:
    return f"{path} {item.label}" if num_frames is None else f"{path} {num_frames} {item.label}"


def _write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)
    return path


def prepare_folder(
    root: str | Path,
    *,
    out_dir: str | Path,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    extract: bool = False,
    short_side: int | None = 256,
    quality: int = 90,
    template: str = DEFAULT_TEMPLATE,
    workers: int | None = None,
    progress: bool = True,
) -> FolderDataset:
    """Write ``classes.txt``, ``train.txt``, ``val.txt`` (and ``dataset.json``, ``skipped.txt``)
    for the class-folder tree ``root`` into ``out_dir``; see the module docstring. A rerun with
    the same settings writes the same lists (extraction skips finished videos)."""
    source, out = Path(root), Path(out_dir)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: folder not found (expected ROOT/<class>/<videos>)")
    _check_settings(val_fraction, template)
    classes, train, val, skipped, split = split_tree(source, val_fraction=val_fraction, seed=seed, template=template)
    if not classes:
        raise ValueError(f"{source}: no class folders (expected ROOT/<class>/<videos or frame folders>)")
    frames: dict[str, tuple[str, int]] = {}  # item path -> (list path, frames), after extraction
    extracted = 0
    list_root = source
    if extract:
        list_root = out
        frames, extracted = _extract(
            source,
            out,
            [x for x in train + val if x.kind == "video"],
            short_side=short_side,
            quality=quality,
            template=template,
            workers=workers,
            progress=progress,
        )

    def line(item: FolderItem) -> str:
        if item.path in frames:
            path, n = frames[item.path]
            return _line(item, path=path, num_frames=n)
        path = item.path if list_root == source else os.path.relpath(source / item.path, out).replace(os.sep, "/")
        return _line(item, path=path, num_frames=item.num_frames)

    out.mkdir(parents=True, exist_ok=True)
    result = FolderDataset(
        source=source,
        root=list_root,
        out_dir=out,
        classes=classes,
        classes_file=write_classes(out / "classes.txt", classes),
        train_list=_write_lines(out / "train.txt", [line(x) for x in train]),
        val_list=_write_lines(out / "val.txt", [line(x) for x in val]),
        split=split,
        counts={name: _per_class(items, len(classes)) for name, items in (("train", train), ("val", val))},
        skipped=skipped,
        extracted=extracted,
    )
    _write_records(result, val_fraction=val_fraction, seed=seed, extract=extract, template=template)
    return result


def _per_class(items: Sequence[FolderItem], num_classes: int) -> list[int]:
    counts = [0] * num_classes
    for item in items:
        counts[item.label] += 1
    return counts


def _extract(
    source: Path,
    out: Path,
    videos: Sequence[FolderItem],
    *,
    short_side: int | None,
    quality: int,
    template: str,
    workers: int | None,
    progress: bool,
) -> tuple[dict[str, tuple[str, int]], int]:
    """Decode ``videos`` into ``out/frames/<path without extension>``; a video that cannot be
    decoded is an error naming it and the failure list (the others stay done for a rerun)."""
    from temporal_shift.data.extract import extract_frames  # PyAV: only when extracting

    if not videos:
        return {}, 0
    seen: dict[str, str] = {}
    for item in videos:
        rel = Path(item.path).with_suffix("").as_posix()
        if rel in seen:
            raise ValueError(f"{source / item.path}: same frame folder as {seen[rel]} ({rel}); rename one of them")
        seen[rel] = item.path
    result = extract_frames(
        source,
        out / FRAMES_DIR,
        videos=[x.path for x in videos],
        short_side=short_side,
        quality=quality,
        template=template,
        workers=workers,
        progress=progress,
    )
    if result.failed:
        video, reason = result.failed[0]
        raise ValueError(
            f"{video}: cannot extract frames ({reason}); {len(result.failed)} of {len(videos)} videos failed, "
            f"listed in {result.failures_file}: fix or remove them and rerun"
        )
    frames = {}
    for item in videos:
        rel = Path(item.path).with_suffix("").as_posix()
        frames[item.path] = (f"{FRAMES_DIR}/{rel}", result.frames[rel])
    return frames, result.extracted


def _write_records(result: FolderDataset, *, val_fraction: float, seed: int, extract: bool, template: str) -> None:
    skipped_file = result.out_dir / SKIPPED_FILE
    if result.skipped:
        _write_lines(skipped_file, [f"{path}\t{reason}" for path, reason in result.skipped])
    elif skipped_file.exists():
        skipped_file.unlink()
    record = {
        "source": str(result.source),
        "root": str(result.root),
        "classes": result.classes,
        "split": result.split,
        "val_fraction": None if result.split == "given" else val_fraction,
        "seed": seed,
        "extract": extract,
        "template": template,
        "counts": result.counts,
        "skipped": result.skipped_counts(),
    }
    (result.out_dir / DATASET_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
