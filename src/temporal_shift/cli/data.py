"""`tsm synth`, `tsm prepare DATASET|folder|extract|flow`: make datasets, list files, frames and optical flow."""

from __future__ import annotations

import argparse
from pathlib import Path

from temporal_shift.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    _register_synth(sub)
    _register_prepare(sub)


def _register_prepare(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.data.prepare import DATASETS

    p = sub.add_parser(
        "prepare",
        help="build class and list files from official annotations, or extract frames",
        description="`tsm prepare DATASET ...` writes classes.txt and train/val list files; "
        "`tsm prepare folder ROOT ...` does it for your own ROOT/<class>/<videos>; "
        "`tsm prepare extract ...` decodes videos into JPEG frame folders; `tsm prepare flow ...` computes "
        "optical flow.",
    )
    prep = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for name in DATASETS:
        _register_dataset(prep, name)
    _register_folder(prep)
    _register_extract(prep)
    _register_flow(prep)


def _register_synth(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.data import synthetic

    generate = synthetic.generate_synthetic
    p = sub.add_parser(
        "synth",
        help="write the built-in synthetic temporal dataset (frame folders, mp4, lists)",
        description="Write synthetic clips whose classes come in pairs that only frame order "
        "tells apart (plus a still red/blue control pair), as JPEG frame folders and mp4, "
        "with train/val list files and classes.txt. Deterministic by seed; resumable.",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory (the data root)")
    p.add_argument("--num-videos", type=int, default=synthetic.DEFAULT_NUM_VIDEOS)
    p.add_argument("--size", type=int, default=synthetic.DEFAULT_SIZE, help="frame height and width (even)")
    p.add_argument("--frames", type=int, default=synthetic.DEFAULT_FRAMES, help="frames per clip")
    p.add_argument("--seed", type=int, default=options.default(generate, "seed"))
    p.add_argument("--val-fraction", type=float, default=synthetic.DEFAULT_VAL_FRACTION)
    p.add_argument(
        "--scene",
        choices=synthetic.SCENES,
        default=options.default(generate, "scene"),
        help="single: one object per clip acts the class (the default); hard: a square and a circle act it "
        "(orbiting, chasing, launching, passing, side by side) among 3-5 look-alike moving distractors, so the order "
        "is in a local relation (tsm reproduce --data hard); camouflage: a disc cut from a random-dot texture like "
        "the background's moves (or the background behind it), seen only by how it moves: no frame tells a "
        "temporal class (tsm reproduce --data camouflage)",
    )
    p.add_argument(
        "--plain",
        action="store_true",
        help="plain backgrounds (the single scene: and no distractor objects; learned in fewer steps; tsm demo "
        "uses it)",
    )
    p.add_argument(
        "--motion",
        type=float,
        default=options.default(generate, "motion"),
        help="speed factor of the moving classes (default %(default)s)",
    )
    p.add_argument(
        "--object-scale",
        type=float,
        default=options.default(generate, "object_scale"),
        help="size factor of the main object (default %(default)s)",
    )
    p.add_argument(
        "--spin",
        type=float,
        default=options.default(generate, "spin"),
        help="rotation speed factor of the rotating classes (default %(default)s: a triangle or bar turning "
        "8-20 degrees a frame; any other value draws a two-tone sail, which has one direction up to half "
        "a turn)",
    )
    p.add_argument(
        "--pair-hues",
        action="store_true",
        help="each pair's object has its own hue, so one frame tells the pair (an order-blind model's "
        "ceiling is then exactly 50%% per temporal pair)",
    )
    options.add_processes(p)
    p.set_defaults(func=_cmd_synth)


def _register_dataset(prep: argparse._SubParsersAction, name: str) -> None:
    """`tsm prepare NAME`: the list files of one dataset from its official annotations."""
    from temporal_shift.data.lists import DEFAULT_TEMPLATE
    from temporal_shift.data.prepare import prepare_dataset

    d = prep.add_parser(name, help=f"list files for {name}")
    d.add_argument(
        "--root",
        type=Path,
        required=True,
        help="data root holding the frame folders and/or videos (list paths are relative to it)",
    )
    d.add_argument("--out", type=Path, required=True, help="where to write classes.txt and the lists")
    if name in ("ucf101", "hmdb51"):
        d.add_argument("--splits-dir", type=Path, required=True, help="folder with the official split files")
        d.add_argument("--split", type=int, default=options.default(prepare_dataset, "split"), choices=(1, 2, 3))
    else:
        if name != "kinetics":
            d.add_argument("--labels", type=Path, required=True, help="official labels file")
        d.add_argument("--train", type=Path, required=True, help="official training annotations")
        d.add_argument("--val", type=Path, required=name != "kinetics", help="official validation annotations")
    d.add_argument("--template", default=DEFAULT_TEMPLATE, help="frame file names (default %(default)s)")
    d.add_argument(
        "--missing",
        default=options.default(prepare_dataset, "missing"),
        choices=("error", "skip"),
        help="samples found on disk neither as frames nor video: fail, or list and leave out",
    )
    d.set_defaults(func=_cmd_prepare)


def _register_folder(prep: argparse._SubParsersAction) -> None:
    from temporal_shift.data.folder import prepare_folder
    from temporal_shift.data.lists import DEFAULT_TEMPLATE

    f = prep.add_parser(
        "folder",
        help="class and list files of your own videos: ROOT/<class>/<video or frame folder>",
        description="Turn ROOT/<class>/<video or frame folder> into classes.txt (folder names, sorted), "
        "train.txt and val.txt (a stratified split), or keep an existing split given as ROOT/train/<class>/... "
        "and ROOT/val/<class>/.... Hidden files and non-videos are skipped, counted and listed in OUT/skipped.txt; "
        "OUT/dataset.json says which root the list paths are relative to.",
    )
    f.add_argument("root", type=Path, metavar="ROOT", help="the class folders (or train/ and val/ of them)")
    f.add_argument("--out", type=Path, required=True, help="where to write classes.txt, the lists and dataset.json")
    f.add_argument(
        "--val-fraction",
        type=float,
        default=options.default(prepare_folder, "val_fraction"),
        help="share of each class's videos for val (default %(default)s; ignored for a given split)",
    )
    f.add_argument("--seed", type=int, default=options.default(prepare_folder, "seed"), help="seed of the split")
    f.add_argument(
        "--extract",
        action="store_true",
        help="decode the videos into JPEG frame folders under OUT/frames (parallel, resumable) and list those",
    )
    f.add_argument(
        "--short-side",
        type=int,
        default=options.default(prepare_folder, "short_side"),
        help="with --extract: resize the short side (0: keep the size; default %(default)s)",
    )
    f.add_argument("--template", default=DEFAULT_TEMPLATE, help="frame file names (default %(default)s)")
    options.add_processes(f)
    f.set_defaults(func=_cmd_folder)


def _register_extract(prep: argparse._SubParsersAction) -> None:
    from temporal_shift.data.extract import extract_frames
    from temporal_shift.data.lists import DEFAULT_TEMPLATE

    e = prep.add_parser("extract", help="decode videos into JPEG frame folders (parallel, resumable)")
    e.add_argument("--videos", type=Path, required=True, help="folder of videos (searched recursively)")
    e.add_argument("--out", type=Path, required=True, help="frame folders go to OUT/<video path without ext>")
    e.add_argument(
        "--short-side",
        type=int,
        default=options.default(extract_frames, "short_side"),
        help="resize the short side (0: keep the size; default %(default)s)",
    )
    e.add_argument(
        "--quality",
        type=int,
        default=options.default(extract_frames, "quality"),
        help="JPEG quality (default %(default)s)",
    )
    e.add_argument("--template", default=DEFAULT_TEMPLATE)
    options.add_processes(e)
    e.add_argument("--failures", type=Path, default=None, help="failure list (default OUT/extract_failures.txt)")
    e.set_defaults(func=_cmd_extract)


def _register_flow(prep: argparse._SubParsersAction) -> None:
    from temporal_shift.data.flow import DEFAULT_BOUND, METHODS, prepare_flow
    from temporal_shift.data.lists import DEFAULT_TEMPLATE

    f = prep.add_parser(
        "flow",
        help="optical flow of a list's videos or frame folders (TV-L1 or Farneback; parallel, resumable)",
        description="Compute the flow of every consecutive frame pair of each entry of a list "
        "file (frame folders or videos) with OpenCV (needs the 'flow' extra), store it in the "
        "reference layout (OUT/<entry>/flow_x_00001.jpg, flow_y_00001.jpg: clipped to +-bound "
        "px, quantised to 0-255) and write a flow list. Finished videos are skipped on a rerun; "
        "failures are listed in OUT/flow_failures.txt (exit status 1).",
    )
    f.add_argument("--list", type=Path, required=True, help="list file of frame folders or videos (relative to --root)")
    f.add_argument("--root", type=Path, required=True, help="data root the list's paths are relative to")
    f.add_argument("--out", type=Path, required=True, help="flow root (may be --root: flow next to the frames)")
    f.add_argument("--out-list", type=Path, default=None, help="flow list (default OUT/<list name>_flow.txt)")
    f.add_argument(
        "--method",
        default=options.default(prepare_flow, "method"),
        choices=METHODS,
        help="TV-L1 (OpenCV contrib; the reference's) or Farneback (faster)",
    )
    f.add_argument(
        "--bound", type=float, default=DEFAULT_BOUND, help="clip flow to +-BOUND pixels (default %(default)s)"
    )
    f.add_argument(
        "--short-side",
        type=int,
        default=options.default(prepare_flow, "short_side"),
        help="resize frames to this short side first (default, or 0: keep)",
    )
    f.add_argument(
        "--quality",
        type=int,
        default=options.default(prepare_flow, "quality"),
        help="JPEG quality (default %(default)s)",
    )
    f.add_argument("--kind", default=options.default(prepare_flow, "kind"), choices=("auto", "frames", "videos"))
    f.add_argument("--template", default=DEFAULT_TEMPLATE, help="frame file names of frame folders")
    options.add_processes(f)
    f.add_argument("--failures", type=Path, default=None, help="failure list (default OUT/flow_failures.txt)")
    f.set_defaults(func=_cmd_flow)


def _cmd_synth(args: argparse.Namespace) -> int:
    from temporal_shift.data.synthetic import generate_synthetic

    paths = generate_synthetic(
        args.out,
        num_videos=args.num_videos,
        size=args.size,
        frames=args.frames,
        seed=args.seed,
        val_fraction=args.val_fraction,
        workers=args.workers,
        clutter=not args.plain,
        motion=args.motion,
        pair_hues=args.pair_hues,
        object_scale=args.object_scale,
        spin=args.spin,
        scene=args.scene,
    )
    print(f"wrote {args.num_videos} clips to {paths.root}")
    for path in (paths.train_frames, paths.val_frames, paths.train_videos, paths.val_videos, paths.classes):
        print(f"  {path}")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from temporal_shift.data.prepare import prepare_dataset

    result = prepare_dataset(
        args.dataset,
        root=args.root,
        out_dir=args.out,
        labels=getattr(args, "labels", None),
        train=getattr(args, "train", None),
        val=getattr(args, "val", None),
        splits_dir=getattr(args, "splits_dir", None),
        split=getattr(args, "split", 1),
        template=args.template,
        missing=args.missing,
    )
    print(result.summary())
    for split, lost in result.missing.items():
        print(f"{len(lost)} {split} samples missing, listed in {args.out / f'missing_{split}*.txt'}")
    return 0


def _cmd_folder(args: argparse.Namespace) -> int:
    from temporal_shift.data.folder import prepare_folder

    result = prepare_folder(
        args.root,
        out_dir=args.out,
        val_fraction=args.val_fraction,
        seed=args.seed,
        extract=args.extract,
        short_side=args.short_side or None,
        template=args.template,
        workers=args.workers,
    )
    print(result.summary())
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    from temporal_shift.data.extract import extract_frames

    result = extract_frames(
        args.videos,
        args.out,
        short_side=args.short_side or None,
        quality=args.quality,
        template=args.template,
        workers=args.workers,
        failures_file=args.failures,
    )
    print(result.summary())
    return 1 if result.failed else 0


def _cmd_flow(args: argparse.Namespace) -> int:
    from temporal_shift.data.flow import prepare_flow

    result = prepare_flow(
        args.list if args.list.is_absolute() else args.root / args.list,
        root=args.root,
        out_root=args.out,
        out_list=args.out_list,
        method=args.method,
        bound=args.bound,
        short_side=args.short_side or None,
        quality=args.quality,
        kind=args.kind,
        template=args.template,
        workers=args.workers,
        failures_file=args.failures,
    )
    print(result.summary())
    return 1 if result.extraction.failed else 0
