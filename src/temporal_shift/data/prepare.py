"""Class files and train/val list files from the official annotations of public datasets.

Each ``parse_*`` function reads one dataset's official annotation files into
``Annotations`` (class names and the train/val samples, each with the file and line it
came from). ``write_lists`` then looks every sample up under a data root and writes our
list format (see ``lists.py``): ``<folder> <num_frames> <label>`` when a frame folder
exists (frames are counted), else ``<video file> <label>``. ``prepare_dataset`` does both.

Samples are found by name anywhere under the root: a frame folder or a video file
(``.mp4``, ``.webm``, ``.avi``, ``.mkv`` ...) whose name without extension is the
sample's name (Kinetics ``<youtube_id>_<start:06d>_<end:06d>``, Something-Something and
Jester ``<id>``, UCF101/HMDB51 the video's file name). This matches the layouts of the
official downloads and of ``tsm prepare extract``. A sample found nowhere is an error,
unless ``missing="skip"``: then it is left out and listed in the returned result and in
``missing_<split>.txt`` next to the lists (nothing is dropped silently).

Official formats handled:

- Kinetics-400/600/700: CSV with header ``label,youtube_id,time_start,time_end,split``
  (extra columns such as ``is_cc`` ignored); classes are the sorted training labels.
- Something-Something V1: labels file (one class per line) and ``id;label`` CSVs.
- Something-Something V2: labels JSON ``{"class": "index"}`` and JSON lists of
  ``{"id", "label", "template", ...}``; the class is the template without ``[`` ``]``.
- Jester: labels file and ``id;label`` CSVs (as Something-Something V1).
- UCF101: ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt``
  (``Class/v_x.avi 1``) and ``testlist0N.txt`` (``Class/v_x.avi``), N = 1..3.
- HMDB51: ``<class>_test_split<N>.txt`` per class with lines ``<video> <0|1|2>``
  (1 = train, 2 = test, 0 = unused), N = 1..3.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from temporal_shift.data.decode import VIDEO_EXTENSIONS, count_frame_files
from temporal_shift.data.lists import DEFAULT_TEMPLATE, write_classes

DATASETS = ("kinetics", "something-v1", "something-v2", "jester", "ucf101", "hmdb51")
MissingPolicy = Literal["error", "skip"]


class AnnotationError(ValueError):
    """A malformed official annotation file; the message names the file and line."""


@dataclass(frozen=True)
class Sample:
    """One annotated video: its name (file or folder name without extension) and label."""

    name: str
    label: int
    source: str  # "<annotation file>:<line>"


@dataclass
class Annotations:
    classes: list[str]
    train: list[Sample]
    val: list[Sample]


@dataclass
class PrepareResult:
    """What ``write_lists`` wrote and what it could not find."""

    classes: Path
    lists: dict[str, Path]
    counts: dict[str, dict[str, int]]  # split -> {"frames": n, "videos": n, "missing": n}
    missing: dict[str, list[str]] = field(default_factory=dict)  # split -> sources

    def summary(self) -> str:
        lines = [f"classes: {self.classes}"]
        for split, path in self.lists.items():
            c = self.counts[split]
            lines.append(f"{split}: {path} ({c['frames']} frame folders, {c['videos']} videos, {c['missing']} missing)")
        return "\n".join(lines)


# --- small readers --------------------------------------------------------------------


def _lines(path: Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not a UTF-8 text file ({exc.reason})") from None


def _class_lines(path: Path) -> list[str]:
    """A labels file with one class per line (Something-Something V1, Jester)."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(_lines(path), start=1):
        name = line.strip()
        if not name:
            continue
        if name in seen:
            raise AnnotationError(f"{path}:{number}: duplicate class {name!r} (also line {seen[name]})")
        seen[name] = number
        names.append(name)
    if not names:
        raise AnnotationError(f"{path}: no class names")
    return names


def _index(classes: Sequence[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(classes)}


def _lookup(index: dict[str, int], name: str, source: str) -> int:
    try:
        return index[name]
    except KeyError:
        raise AnnotationError(f"{source}: unknown class {name!r} (not in the class list)") from None


# --- Kinetics ---------------------------------------------------------------------------

_KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")


def kinetics_name(youtube_id: str, time_start: int, time_end: int) -> str:
    """File name (without extension) of a Kinetics clip, as the official downloaders write it."""
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}"


def _read_kinetics_csv(path: Path) -> list[tuple[str, str, str, str]]:
    """-> (label, name, split, source) rows."""
    lines = _lines(path)
    if not lines:
        raise AnnotationError(f"{path}: empty Kinetics CSV")
    header = [h.strip() for h in next(csv.reader([lines[0]]))]
    missing = [c for c in _KINETICS_COLUMNS if c not in header]
    if missing:
        raise AnnotationError(
            f"{path}:1: Kinetics CSV header lacks {', '.join(missing)}; expected "
            f"'{','.join(_KINETICS_COLUMNS)}' (test-split CSVs have no labels)"
        )
    col = {c: header.index(c) for c in _KINETICS_COLUMNS}
    rows = []
    for number, fields in enumerate(csv.reader(lines[1:]), start=2):
        source = f"{path}:{number}"
        if not fields or not "".join(fields).strip():
            continue
        if len(fields) != len(header):
            raise AnnotationError(f"{source}: expected {len(header)} comma-separated fields, got {len(fields)}")
        label = fields[col["label"]].strip()
        youtube_id = fields[col["youtube_id"]].strip()
        try:
            start, end = int(fields[col["time_start"]]), int(fields[col["time_end"]])
        except ValueError:
            raise AnnotationError(
                f"{source}: time_start/time_end must be integers, got "
                f"{fields[col['time_start']]!r}, {fields[col['time_end']]!r}"
            ) from None
        if not label or not youtube_id:
            raise AnnotationError(f"{source}: empty label or youtube_id")
        split = fields[col["split"]].strip()
        rows.append((label, kinetics_name(youtube_id, start, end), split, source))
    return rows


def parse_kinetics(csv_files: Iterable[str | Path]) -> Annotations:
    """Kinetics-400/600/700 from the official CSVs (e.g. train.csv and validate.csv).

    The ``split`` column decides train ("train") or val ("val"/"validate"); classes
    are the sorted labels of the training rows.
    """
    rows = [row for path in csv_files for row in _read_kinetics_csv(Path(path))]
    for _, _, split, source in rows:
        if split not in ("train", "val", "validate"):
            raise AnnotationError(f"{source}: split must be 'train', 'val' or 'validate', got {split!r}")
    classes = sorted({label for label, _, split, _ in rows if split == "train"})
    if not classes:
        raise AnnotationError("Kinetics CSVs: no 'train' rows; pass the training CSV")
    index = _index(classes)
    train: list[Sample] = []
    val: list[Sample] = []
    for label, name, split, source in rows:
        sample = Sample(name=name, label=_lookup(index, label, source), source=source)
        (train if split == "train" else val).append(sample)
    return Annotations(classes=classes, train=train, val=val)


# --- Something-Something V1 and Jester (';' CSVs) --------------------------------------


def _read_semicolon_csv(path: Path, index: dict[str, int]) -> list[Sample]:
    samples = []
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        source = f"{path}:{number}"
        parts = line.split(";", 1)
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise AnnotationError(f"{source}: malformed line {line!r}; expected '<id>;<label>'")
        samples.append(Sample(name=parts[0].strip(), label=_lookup(index, parts[1].strip(), source), source=source))
    return samples


def parse_something_v1(*, labels: str | Path, train: str | Path, val: str | Path) -> Annotations:
    """Something-Something V1: labels file and ``id;label`` train/validation CSVs.

    Classes are numbered in sorted order, as the reference release numbers them (its
    ``gen_label_sthv1.py`` / ``gen_label_jester.py`` sort the labels file), so published
    checkpoints and the shipped class names (`temporal_shift.hub.weights`) line up."""
    classes = sorted(_class_lines(Path(labels)))
    index = _index(classes)
    return Annotations(classes, _read_semicolon_csv(Path(train), index), _read_semicolon_csv(Path(val), index))


def parse_jester(*, labels: str | Path, train: str | Path, val: str | Path) -> Annotations:
    """Jester: same format as Something-Something V1."""
    return parse_something_v1(labels=labels, train=train, val=val)


# --- Something-Something V2 (JSON) -----------------------------------------------------


def _load_json(path: Path):
    text = "\n".join(_lines(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None


def _json_item_lines(path: Path) -> list[int]:
    """Line number where each top-level list item starts (for error messages)."""
    starts, depth = [], 0
    in_string = escape = False
    line = 1
    for ch in "\n".join(_lines(path)):
        if ch == "\n":
            line += 1
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth == 2:
                starts.append(line)
        elif ch in "]}":
            depth -= 1
    return starts


def something_v2_class(template: str) -> str:
    """Class name of a Something-Something V2 template: the brackets removed."""
    return template.replace("[", "").replace("]", "")


def parse_something_v2(*, labels: str | Path, train: str | Path, val: str | Path) -> Annotations:
    """Something-Something V2: ``labels.json`` ({class: "index"}) and train/validation JSON."""
    labels = Path(labels)
    mapping = _load_json(labels)
    if not isinstance(mapping, dict) or not mapping:
        raise AnnotationError(f"{labels}:1: expected a JSON object {{class name: index}}")
    by_index: dict[int, str] = {}
    for name, value in mapping.items():
        try:
            i = int(value)
        except (TypeError, ValueError):
            raise AnnotationError(f"{labels}: class {name!r} has a non-integer index {value!r}") from None
        if i in by_index:
            raise AnnotationError(f"{labels}: index {i} used by {by_index[i]!r} and {name!r}")
        by_index[i] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise AnnotationError(f"{labels}: class indices must be 0..{len(by_index) - 1} without gaps")
    classes = [by_index[i] for i in range(len(by_index))]
    index = _index(classes)

    def read(path: Path) -> list[Sample]:
        items = _load_json(path)
        if not isinstance(items, list):
            raise AnnotationError(f"{path}:1: expected a JSON list of {{id, label, template}} objects")
        lines = _json_item_lines(path)
        samples = []
        for k, item in enumerate(items):
            source = f"{path}:{lines[k] if k < len(lines) else '?'}"
            if not isinstance(item, dict) or "id" not in item or "template" not in item:
                raise AnnotationError(f"{source}: item {k} lacks 'id' or 'template'")
            name = str(item["id"]).strip()
            if not name:
                raise AnnotationError(f"{source}: item {k} has an empty id")
            label = _lookup(index, something_v2_class(str(item["template"])), source)
            samples.append(Sample(name=name, label=label, source=source))
        return samples

    return Annotations(classes, read(Path(train)), read(Path(val)))


# --- UCF101 and HMDB51 -------------------------------------------------------------------


def _check_split(split: int) -> None:
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split}")


def _stem(video: str) -> str:
    return Path(video.replace("\\", "/")).stem


def parse_ucf101(splits_dir: str | Path, *, split: int = 1) -> Annotations:
    """UCF101 from ``ucfTrainTestlist/``: classInd.txt, trainlist0N.txt, testlist0N.txt."""
    _check_split(split)
    splits_dir = Path(splits_dir)
    class_file = splits_dir / "classInd.txt"
    numbered: dict[int, str] = {}
    for number, line in enumerate(_lines(class_file), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise AnnotationError(f"{class_file}:{number}: malformed line {line!r}; expected '<index> <class>'")
        numbered[int(parts[0])] = parts[1]
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise AnnotationError(f"{class_file}: class indices must be 1..{len(numbered)} without gaps")
    classes = [numbered[i] for i in range(1, len(numbered) + 1)]
    index = _index(classes)

    def read(path: Path, *, labelled: bool) -> list[Sample]:
        samples = []
        for number, line in enumerate(_lines(path), start=1):
            if not line.strip():
                continue
            source = f"{path}:{number}"
            parts = line.split()
            video = parts[0]
            folder = video.replace("\\", "/").split("/")[0] if "/" in video.replace("\\", "/") else None
            if labelled:
                if len(parts) != 2 or not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(classes):
                    raise AnnotationError(
                        f"{source}: malformed line {line!r}; expected '<Class/video.avi> <1..{len(classes)}>'"
                    )
                label = int(parts[1]) - 1
                if folder is not None and folder != classes[label]:
                    raise AnnotationError(
                        f"{source}: {video} is in folder {folder!r} but labelled {parts[1]} ({classes[label]})"
                    )
            else:
                if len(parts) != 1 or folder is None:
                    raise AnnotationError(f"{source}: malformed line {line!r}; expected '<Class/video.avi>'")
                label = _lookup(index, folder, source)
            samples.append(Sample(name=_stem(video), label=label, source=source))
        return samples

    train = read(splits_dir / f"trainlist0{split}.txt", labelled=True)
    val = read(splits_dir / f"testlist0{split}.txt", labelled=False)
    return Annotations(classes, train, val)


_HMDB_RE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")


def parse_hmdb51(splits_dir: str | Path, *, split: int = 1) -> Annotations:
    """HMDB51 from the split folder: ``<class>_test_split<N>.txt`` with ``<video> <0|1|2>``."""
    _check_split(split)
    splits_dir = Path(splits_dir)
    if not splits_dir.is_dir():
        raise FileNotFoundError(f"{splits_dir}: HMDB51 split folder not found")
    files = {}
    for path in splits_dir.iterdir():
        match = _HMDB_RE.match(path.name)
        if match and int(match["split"]) == split:
            files[match["cls"]] = path
    if not files:
        raise FileNotFoundError(f"{splits_dir}: no '<class>_test_split{split}.txt' files")
    classes = sorted(files)
    train: list[Sample] = []
    val: list[Sample] = []
    for label, name in enumerate(classes):
        path = files[name]
        for number, line in enumerate(_lines(path), start=1):
            if not line.strip():
                continue
            source = f"{path}:{number}"
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise AnnotationError(f"{source}: malformed line {line!r}; expected '<video> <0|1|2>'")
            if parts[1] == "0":
                continue  # not part of this split, by the dataset's definition
            sample = Sample(name=_stem(parts[0]), label=label, source=source)
            (train if parts[1] == "1" else val).append(sample)
    return Annotations(classes, train, val)


# --- writing lists ------------------------------------------------------------------------


def index_root(root: str | Path, *, template: str = DEFAULT_TEMPLATE) -> tuple[dict[str, str], dict[str, str]]:
    """Map sample names to paths relative to ``root``: (frame folders, video files).

    A frame folder is a directory holding frame 1 (``template.format(1)``); a video is
    a file with a video extension. The same name found twice is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data root not found")
    first = template.format(1)
    folders: dict[str, str] = {}
    videos: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        if first in filenames and rel_dir != Path("."):
            _add(folders, rel_dir.name, rel_dir.as_posix(), root)
        for filename in filenames:
            if filename.lower().endswith(VIDEO_EXTENSIONS):
                _add(videos, Path(filename).stem, (rel_dir / filename).as_posix(), root)
    return folders, videos


def _add(table: dict[str, str], name: str, rel: str, root: Path) -> None:
    if name in table and table[name] != rel:
        raise ValueError(f"{root}: two entries named {name!r}: {table[name]} and {rel}")
    table[name] = rel


def write_lists(
    annotations: Annotations,
    *,
    root: str | Path,
    out_dir: str | Path,
    suffix: str = "",
    template: str = DEFAULT_TEMPLATE,
    missing: MissingPolicy = "error",
) -> PrepareResult:
    """Write ``classes.txt``, ``train{suffix}.txt`` and ``val{suffix}.txt`` to ``out_dir``.

    Paths in the lists are relative to ``root``. A sample with a frame folder becomes a
    frame line (frames counted on disk), else one with a video a video line; a sample with
    neither raises FileNotFoundError naming its annotation line, or with
    ``missing="skip"`` is listed in ``missing_<split>{suffix}.txt`` and left out.
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    root, out_dir = Path(root), Path(out_dir)
    folders, videos = index_root(root, template=template)
    classes = write_classes(out_dir / "classes.txt", annotations.classes)
    result = PrepareResult(classes=classes, lists={}, counts={})
    for split, samples in (("train", annotations.train), ("val", annotations.val)):
        lines: list[str] = []
        counts = {"frames": 0, "videos": 0, "missing": 0}
        lost: list[str] = []
        for sample in samples:
            if sample.name in folders:
                rel = folders[sample.name]
                n = count_frame_files(root / rel, template=template)
                lines.append(f"{rel} {n} {sample.label}")
                counts["frames"] += 1
            elif sample.name in videos:
                lines.append(f"{videos[sample.name]} {sample.label}")
                counts["videos"] += 1
            elif missing == "skip":
                lost.append(f"{sample.source}: {sample.name}")
                counts["missing"] += 1
            else:
                raise FileNotFoundError(
                    f"{sample.source}: no frame folder or video named {sample.name!r} under {root} "
                    "(use missing='skip' / --missing skip to list and leave out missing videos)"
                )
        path = out_dir / f"{split}{suffix}.txt"
        _write_text(path, lines)
        result.lists[split] = path
        result.counts[split] = counts
        missing_file = out_dir / f"missing_{split}{suffix}.txt"
        if lost:
            _write_text(missing_file, lost)
            result.missing[split] = lost
        elif missing_file.exists():
            missing_file.unlink()
    return result


def _write_text(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)


def parse_annotations(
    dataset: str,
    *,
    labels: str | Path | None = None,
    train: str | Path | None = None,
    val: str | Path | None = None,
    splits_dir: str | Path | None = None,
    split: int = 1,
) -> Annotations:
    """Dispatch to the parser of ``dataset`` (one of ``DATASETS``)."""

    def need(**given: str | Path | None) -> dict[str, str | Path]:
        """``given`` when none is None, else ValueError naming the missing options."""
        absent = [k for k, v in given.items() if v is None]
        if absent:
            raise ValueError(f"{dataset} needs {', '.join('--' + a.replace('_', '-') for a in absent)}")
        return {k: v for k, v in given.items() if v is not None}

    if dataset == "kinetics":
        need(train=train)
        return parse_kinetics([p for p in (train, val) if p is not None])
    if dataset in ("something-v1", "jester", "something-v2"):
        paths = need(labels=labels, train=train, val=val)
        parse_csv = parse_something_v2 if dataset == "something-v2" else parse_something_v1
        return parse_csv(labels=paths["labels"], train=paths["train"], val=paths["val"])
    if dataset in ("ucf101", "hmdb51"):
        paths = need(splits_dir=splits_dir)
        parse_splits = parse_ucf101 if dataset == "ucf101" else parse_hmdb51
        return parse_splits(paths["splits_dir"], split=split)
    raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")


def prepare_dataset(
    dataset: str,
    *,
    root: str | Path,
    out_dir: str | Path,
    labels: str | Path | None = None,
    train: str | Path | None = None,
    val: str | Path | None = None,
    splits_dir: str | Path | None = None,
    split: int = 1,
    template: str = DEFAULT_TEMPLATE,
    missing: MissingPolicy = "error",
) -> PrepareResult:
    """Parse ``dataset``'s official annotations and write class and list files."""
    annotations = parse_annotations(dataset, labels=labels, train=train, val=val, splits_dir=splits_dir, split=split)
    suffix = f"_split{split}" if dataset in ("ucf101", "hmdb51") else ""
    return write_lists(annotations, root=root, out_dir=out_dir, suffix=suffix, template=template, missing=missing)
