"""`tsm train` (a YAML config, DDP under torchrun), `tsm demo` (TSN vs TSM on synthetic data) and
`tsm reproduce` (the paper's ablations in miniature)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from temporal_shift.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    _register_train(sub)
    _register_demo(sub)
    _register_reproduce(sub)


def _register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a TSN/TSM model from a YAML config (DDP under torchrun)",
        description="Train from a YAML config (see configs/), with section.key=value overrides. "
        "Writes config.yaml, last.pt, best.pt, log.csv and TensorBoard logs to run.out_dir. "
        "Ctrl-C/SIGTERM saves a resumable checkpoint. Multi-process: "
        "torchrun --nproc_per_node=N -m temporal_shift.cli train --config FILE.",
    )
    p.add_argument("--config", type=Path, required=True, help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides, e.g. optim.lr=0.02 run.amp=true")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in run.out_dir from last.pt")
    group.add_argument(
        "--finetune-from",
        type=Path,
        metavar="CKPT",
        help="start from another run's weights (our or imported formats); the head is "
        "replaced when the class count differs",
    )
    options.add_weights(
        group, instead_of="--finetune-from", help="like --finetune-from, from published weights (`tsm weights list`)"
    )
    p.add_argument("--amp", action="store_true", help="mixed precision (same as run.amp=true)")
    p.set_defaults(func=_cmd_train)


def _register_demo(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.apps.experiments.demo import run_demo
    from temporal_shift.apps.experiments.recipe import DEMO_EPOCHS

    p = sub.add_parser(
        "demo",
        help="train TSN and TSM on the synthetic temporal dataset and compare them (6-11 min on 2 CPU cores)",
        description="Generate the synthetic dataset if absent (plain backgrounds), train TSN and TSM "
        "(ResNet-18 from scratch, 4 frames of 32x32) with the same data, seed and budget, test both "
        "and print top-1 overall, on the order-only temporal pairs and on the control pair, order accuracy "
        "(true class vs its time-reversed partner), params, FLOPs and latency; saves demo.png. On a GPU it "
        "trains on 4x the clips, loaded by worker processes (the output says which budget ran).",
    )
    p.add_argument(
        "--out", type=Path, default=options.default(run_demo, "out_dir"), help="run folder (default %(default)s)"
    )
    p.add_argument(
        "--data",
        type=Path,
        default=options.default(run_demo, "data_dir"),
        help="synthetic dataset folder, generated if absent (default %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=None, help=f"epochs per model (default {DEMO_EPOCHS})")
    options.add_device(p, default=options.default(run_demo, "device"))
    p.add_argument("--seed", type=int, default=options.default(run_demo, "seed"))
    options.add_no_progress(p)
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="on a CPU, models trained at once, each in its own process (default: TSN and TSM side by "
        "side when there are 2+ cores; 1: one after the other)",
    )
    p.set_defaults(func=_cmd_demo)


def _register_reproduce(sub: argparse._SubParsersAction) -> None:
    from temporal_shift.apps.experiments.recipe import DATA_VARIANTS
    from temporal_shift.apps.experiments.reproduce import BUDGETS, EXPERIMENTS, reproduce

    p = sub.add_parser(
        "reproduce",
        help="the paper's ablations in miniature: shift proportion, placement, online, zoo (PNG, JSON, table)",
        description="Train every arm of an experiment on the demo's synthetic order-only data with the same "
        "data, budget, seeds and optimizer (only the model differs), test them and write <out>/<experiment>/"
        "results.json (every run), results.md (the table) and <experiment>.png; prints the table with mean ± sd "
        "over seeds and whether differences are within the seed spread. Experiments: shift-proportion "
        "(fold_div sweep + latency overhead), placement (residual vs in-place), online (causal vs bidirectional, "
        "streaming accuracy per frame), zoo (accuracy vs GMACs of every installed model family), all. Every run "
        "is kept in <out>/runs by its resolved settings (model, recipe, data, seed, device kind) and reused by any "
        "later experiment or invocation, so a long run can be interrupted (Ctrl-C) and rerun: finished runs are "
        "not trained again, the interrupted ones resume from their last.pt; the tables say which runs were reused.",
    )
    p.add_argument("experiment", nargs="+", choices=(*EXPERIMENTS, "all"), help="one or more experiments, or all")
    p.add_argument(
        "--budget",
        choices=tuple(BUDGETS),
        default=options.default(reproduce, "budget"),
        help="small: ~15 min per experiment on 2 CPU cores (2 seeds); full: the demo's data and epochs, "
        "5 seeds, latency at 224x224",
    )
    p.add_argument(
        "--data",
        choices=tuple(DATA_VARIANTS),
        default=options.default(reproduce, "data"),
        help="the synthetic data: demo (one object per clip, the demo's), hard (a square and a circle act "
        "the class among look-alike moving distractors: the order cue is local), hard64 (the same at 64x64, "
        "for longer runs: --epochs) or camouflage (a disc of the background's random-dot texture, seen only by "
        "how it moves: no frame tells a temporal class); default %(default)s",
    )
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the budget's)")
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs of every run (default: the budget's, small 2, full 8)"
    )
    p.add_argument(
        "--out", type=Path, default=options.default(reproduce, "out_dir"), help="output folder (default %(default)s)"
    )
    options.add_device(p, default=options.default(reproduce, "device"))
    options.add_no_progress(p)
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="on a CPU, runs trained at once, each in its own process with its share of the cores "
        "(default: one per core, at most 8)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="train every run again instead of reusing the ones kept from earlier invocations",
    )
    p.set_defaults(func=_cmd_reproduce)


def _log(line: str) -> None:
    print(line, flush=True)


def _cmd_train(args: argparse.Namespace) -> int:
    from temporal_shift.engine.config import load_config
    from temporal_shift.engine.train import train

    overrides = list(args.overrides) + (["run.amp=true"] if args.amp else [])
    config = load_config(args.config, overrides)
    finetune_from = options.checkpoint_or_weights(args, dest="finetune_from", required=False)
    result = train(config, resume=args.resume, finetune_from=finetune_from)
    if os.environ.get("RANK", "0") != "0":  # under torchrun: the first process reports for all
        return 130 if result.interrupted and config.run.stop_after_steps is None else 0
    best = (
        f"best val top-1 {result.best_top1:.2f}% (epoch {result.best_epoch})"
        if result.best_epoch > 0
        else "no validation yet"
    )
    print(
        f"{'stopped' if result.interrupted else 'finished'}: {result.epochs_completed} epochs, "
        f"{result.global_step} steps, {best}; checkpoints in {result.out_dir}"
    )
    return 130 if result.interrupted and config.run.stop_after_steps is None else 0


def _at_least_1(value: int | None, *, flag: str) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{flag} must be at least 1, got {value}")


def _cmd_demo(args: argparse.Namespace) -> int:
    from temporal_shift.apps.experiments.demo import run_demo

    _at_least_1(args.epochs, flag="--epochs")
    _at_least_1(args.jobs, flag="--jobs")
    demo = run_demo(
        out_dir=args.out,
        data_dir=args.data,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
        jobs=args.jobs,
        log=_log,
    )
    print(demo.table())
    if demo.plot is not None:
        print(f"wrote {demo.plot} ({demo.seconds / 60:.1f} min in all)")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from temporal_shift.apps.experiments.reproduce import report, reproduce

    _at_least_1(args.seeds, flag="--seeds")
    _at_least_1(args.jobs, flag="--jobs")
    _at_least_1(args.epochs, flag="--epochs")
    results = reproduce(
        args.experiment,
        budget=args.budget,
        seeds=args.seeds,
        out_dir=args.out,
        data=args.data,
        device=args.device,
        progress=not args.no_progress,
        log=_log,
        jobs=args.jobs,
        fresh=args.fresh,
        epochs=args.epochs,
    )
    for result in results:
        print()
        print(report(result))
    return 0
