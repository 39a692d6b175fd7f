"""The `tsm` command's common behaviour: error handling shared by all sub-commands, `python -m`,
the `tsm bench` subcommands and the pointers from their old spellings."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import av
import pytest
import yaml

from conftest import index_frames
from temporal_shift.checkpoint.format import save_checkpoint
from temporal_shift.cli import build_parser, main
from temporal_shift.data.encode import write_frame_folder
from temporal_shift.data.lists import write_frame_list
from temporal_shift.models import build_model


def test_reader_going_away_is_a_quiet_sigpipe_exit(tmp_path: Path) -> None:
    # like `tsm ... | head -1`: the read end of stdout closes before the command prints
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "temporal_shift.cli",
            "synth",
            "--out",
            str(tmp_path / "s"),
            "--num-videos",
            "24",
            "--size",
            "16",
            "--frames",
            "2",
            "--workers",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
    assert (tmp_path / "s" / "classes.txt").is_file()  # the work itself was done


def test_python_m_runs_the_cli() -> None:
    for argv, shown in (
        (["--help"], ["usage: tsm", "bench", "predict", "serve"]),
        (["bench", "--help"], ["usage: tsm bench", "overhead", "two-stream", "data"]),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "temporal_shift.cli", *argv], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        assert all(word in proc.stdout for word in shown), proc.stdout


# --- tsm bench: one subcommand per benchmark -------------------------------------------------

SUBCOMMANDS = "{overhead,train,compare,two-stream,data,runtimes}"


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["bench"], f"tsm bench: error: name a benchmark: tsm bench {SUBCOMMANDS} (see tsm bench --help)"),
        (["bench", "--train", "--batch-size", "8"], "tsm bench: error: `--train` is now `tsm bench train`"),
        (["bench", "--arch", "resnet18", "--train"], "tsm bench: error: `--train` is now `tsm bench train`"),
        (["--debug", "bench", "--train"], "tsm bench: error: `--train` is now `tsm bench train`"),
        (["bench", "--compare", "tsm,tsn"], "tsm bench: error: `--compare` is now `tsm bench compare NAMES`"),
        (["bench", "--compare=all"], "tsm bench: error: `--compare` is now `tsm bench compare NAMES`"),
        (
            ["bench", "--two-stream", "--flow-length", "3"],
            "tsm bench: error: `--two-stream` is now `tsm bench two-stream`",
        ),
        (
            ["bench", "--arch", "resnet18", "--json", "x.json"],
            "tsm bench: error: plain `tsm bench` is now `tsm bench overhead`",
        ),
        (["bench-data", "--workers", "0"], "tsm bench-data: error: `tsm bench-data` is now `tsm bench data`"),
    ],
)
def test_old_bench_spellings_point_to_the_new_ones(argv: list[str], line: str, capsys) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [line] and out == ""


@pytest.mark.parametrize(
    ("argv", "benchmark"),
    [
        (["bench", "overhead"], "overhead"),
        (["bench", "train", "--amp", "bf16"], "train"),
        (["bench", "compare", "tsm,tsn"], "compare"),
        (["bench", "two-stream", "--flow-length", "3"], "two-stream"),
        (["bench", "data", "--segments", "4"], "data"),
        (["bench", "runtimes", "--no-int8"], "runtimes"),
    ],
)
def test_each_benchmark_is_a_subcommand(argv: list[str], benchmark: str) -> None:
    args = build_parser().parse_args(argv)
    assert args.command == "bench" and args.benchmark == benchmark and callable(args.func)


@pytest.mark.parametrize(
    ("benchmark", "option"),
    [
        ("overhead", ["--amp", "bf16"]),
        ("overhead", ["--flow-length", "3"]),
        ("train", ["--flow-length", "3"]),
        ("compare", ["--arch", "resnet18"]),
        ("compare", ["--segments", "8"]),
        ("compare", ["--compile"]),
        ("compare", ["--contiguous"]),
        ("two-stream", ["--compile"]),
        ("two-stream", ["--batch-size", "2"]),
        ("two-stream", ["--plot", "x.png"]),
        ("data", ["--device", "cpu"]),
        ("data", ["--arch", "resnet18"]),
    ],
)
def test_each_benchmark_takes_only_its_own_options(benchmark: str, option: list[str], capsys) -> None:
    names = ["tsm"] if benchmark == "compare" else []
    with pytest.raises(SystemExit) as exit_:
        main(["bench", benchmark, *names, *option])
    assert exit_.value.code == 2
    assert f"unrecognized arguments: {' '.join(option)}" in capsys.readouterr().err


# --- defaults: the library's


def _library_defaults() -> list[tuple[list[str], str, object]]:
    """(argv, option dest, the library's default) for options whose default the library states."""
    from temporal_shift.apps import serve, stream
    from temporal_shift.apps.bench import compare, data, overhead, train, two_stream
    from temporal_shift.apps.experiments import demo, reproduce
    from temporal_shift.data import extract, flow, synthetic
    from temporal_shift.engine import evaluate, export, predict

    def of(func) -> dict[str, object]:
        return {n: p.default for n, p in inspect.signature(func).parameters.items()}

    cases: list[tuple[list[str], str, object]] = []
    bench_args = {"n_segment": "segments"}
    for argv, func, names in (
        (
            ["bench", "overhead"],
            overhead.benchmark_overhead,
            ("arch", "n_segment", "size", "batch_size", "repeats", "warmup", "device", "threads"),
        ),
        (
            ["bench", "train"],
            train.benchmark_training,
            ("arch", "n_segment", "size", "batch_size", "repeats", "warmup", "amp", "device", "threads"),
        ),
        (
            ["bench", "compare", "all"],
            compare.benchmark_compare,
            ("size", "batch_size", "repeats", "device", "threads"),
        ),
        (
            ["bench", "two-stream"],
            two_stream.benchmark_two_stream,
            ("arch", "n_segment", "size", "flow_length", "repeats", "warmup", "device", "threads"),
        ),
        (["bench", "data"], data.benchmark_data, ("workers", "clips", "repeats", "segments", "size", "batch_size")),
        (
            ["synth", "--out", "x"],
            synthetic.generate_synthetic,
            ("num_videos", "size", "frames", "seed", "val_fraction", "workers", "motion", "object_scale", "spin"),
        ),
        (
            ["prepare", "extract", "--videos", "v", "--out", "o"],
            extract.extract_frames,
            ("short_side", "quality", "template", "workers"),
        ),
        (
            ["prepare", "flow", "--list", "l", "--root", "r", "--out", "o"],
            flow.prepare_flow,
            ("method", "bound", "short_side", "quality", "kind", "template", "workers"),
        ),
        (
            ["test", "--data", "d", "--list", "l"],
            evaluate.evaluate,
            ("kind", "template", "batch_size", "workers", "device", "on_error"),
        ),
        (
            ["test", "--data", "d", "--list", "l"],
            evaluate.EvalProtocol,
            ("clips", "crops", "fusion", "dense_clips", "dense_window", "size", "scale_size"),
        ),
        (["predict", "v", "--checkpoint", "c"], predict.predict, ("topk", "size", "scale_size", "device", "template")),
        (["stream", "0"], stream.run_stream, ("size", "short_side", "every", "smooth", "hysteresis", "topk", "fps")),
        (["stream", "0"], stream.load_stream, ("runtime",)),
        (
            ["serve"],
            serve.run_serve,
            ("runtime", "host", "port", "size", "short_side", "smooth", "hysteresis", "topk", "fps"),
        ),
        (["demo"], demo.run_demo, ("seed", "device")),
        (["reproduce", "zoo"], reproduce.reproduce, ("budget", "device")),
        (["export", "c", "--out", "o"], export.export_model, ("format",)),
    ):
        defaults = of(func)
        cases += [(argv, bench_args.get(name, name), defaults[name]) for name in names]
    for name, value in vars(of(serve.run_serve)["limits"]).items():
        cases.append((["serve"], name, value))
    cases += [
        (["demo"], "out", Path(of(demo.run_demo)["out_dir"])),
        (["demo"], "data", Path(of(demo.run_demo)["data_dir"])),
        (["reproduce", "zoo"], "out", Path(of(reproduce.reproduce)["out_dir"])),
    ]
    return cases


def test_defaults_are_the_librarys() -> None:
    # the command line states no default of its own: each is the library function's (compare's warm-up aside)
    parser = build_parser()
    for argv, dest, expected in _library_defaults():
        value = getattr(parser.parse_args(argv), dest)
        assert value == expected, (argv, dest, value, expected)


def test_a_default_is_read_from_the_signature() -> None:
    from temporal_shift.apps.bench.data import benchmark_data
    from temporal_shift.cli import options

    assert options.default(benchmark_data, "clips") == 64
    with pytest.raises(TypeError, match="'root' has no default"):
        options.default(benchmark_data, "root")


# --- errors that name the culprit ----------------------------------------------------------

NOTES = "Meeting notes: discuss the roadmap, ship the release, write the docs.\n" * 6  # ~400 bytes


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 8-frame clips (two classes), a list naming them, one clip with a corrupt frame."""
    root = tmp_path_factory.mktemp("clips")
    for i in range(4):
        write_frame_folder(root / f"v{i}", index_frames(8, height=32, width=32), quality=90)
    (root / "v2" / "img_00004.jpg").write_bytes(b"\xff\xd8 not a jpeg at all")
    write_frame_list(root / "list.txt", [(f"v{i}", 8, i % 2) for i in range(4)])
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = build_model("resnet18", num_classes=2, n_segment=4, mode="causal")
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "causal.pt")


def _train_config(tmp_path: Path, clips: Path, *, workers: int) -> Path:
    config = {
        "model": {"arch": "resnet18", "n_segment": 4},
        "data": {
            "root": str(clips),
            "train_list": "list.txt",
            "val_list": "list.txt",
            "num_classes": 2,
            "size": 32,
            "scale_size": 32,
            "batch_size": 4,
            "workers": workers,
        },
        "optim": {"epochs": 1, "warmup_epochs": 0},
        "run": {"out_dir": str(tmp_path / f"run{workers}"), "progress": False, "device": "cpu"},
    }
    path = tmp_path / f"train{workers}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _one_error_line(run, command: str) -> str:
    """The command's one error line (progress lines such as train's settings may precede it)."""
    assert run.code == 2, run.err
    errors = [line for line in run.err.splitlines() if line.startswith(f"tsm {command}: error: ")]
    assert len(errors) == 1 and "Traceback" not in run.err, run.err
    return errors[0]


@pytest.mark.parametrize("command", ["train", "test"])
def test_a_data_worker_error_reads_as_with_workers_0(command, clips, checkpoint, tmp_path, run_cli):
    # the corrupt frame 4 of v2 (list line 3) is read in a DataLoader worker process
    def run(workers: int):
        if command == "train":
            return run_cli(["train", "--config", _train_config(tmp_path, clips, workers=workers)])
        return run_cli(
            [
                "test",
                "--checkpoint",
                checkpoint,
                "--data",
                clips,
                "--list",
                "list.txt",
                "--workers",
                workers,
                "--no-progress",
            ]
        )

    in_process = _one_error_line(run(0), command)
    in_worker = _one_error_line(run(2), command)
    assert in_worker == in_process
    assert f"{clips / 'list.txt'}:3: " in in_worker and "img_00004.jpg: corrupt JPEG" in in_worker
    assert "DataLoader worker" not in in_worker


def test_missing_entries_are_found_before_training_starts(clips, checkpoint, tmp_path, run_cli):
    listed = tmp_path / "with_missing.txt"
    listed.write_text("v0 8 0\ngone 8 1\nv1 8 1\nv3 20 1\n")
    config = _train_config(tmp_path, clips, workers=0)
    line = _one_error_line(run_cli(["train", "--config", config, f"data.train_list={listed}"]), "train")
    assert "2 of 4 entries cannot be used" in line and "with_missing.txt:2: frame folder" in line
    assert "with_missing.txt:4: " in line and "lists 20 frames but only 8" in line
    assert not (tmp_path / "run0" / "last.pt").exists()  # nothing was trained
    line = _one_error_line(
        run_cli(
            ["test", "--checkpoint", checkpoint, "--data", clips, "--list", listed, "--workers", 0, "--no-progress"]
        ),
        "test",
    )
    assert "2 of 4 entries cannot be used" in line


@pytest.mark.parametrize("command", ["predict", "stream"])
def test_a_text_file_is_not_a_video(command, checkpoint, tmp_path, run_cli):
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES)
    with av.open(str(notes)) as container:  # the premise: FFmpeg opens it as a "video"
        assert container.format.name == "tty" and container.streams.video
    line = _one_error_line(run_cli([command, notes, "--checkpoint", checkpoint]), command)
    assert f"{notes}: not a video: FFmpeg reads it as text art" in line


@pytest.mark.parametrize("content", [NOTES.encode(), bytes(range(256)) * 4])
def test_a_file_that_is_not_a_checkpoint_is_named(content, clips, tmp_path, run_cli):
    fake = tmp_path / "model.pt"
    fake.write_bytes(content)
    line = _one_error_line(run_cli(["predict", clips / "v0", "--checkpoint", fake]), "predict")
    assert f"{fake}: not a checkpoint: " in line and "torch.save" in line
    assert "weights_only" not in line


def test_a_truncated_checkpoint_is_named(checkpoint, clips, tmp_path, run_cli):
    cut = tmp_path / "cut.pt"
    data = checkpoint.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    line = _one_error_line(run_cli(["predict", clips / "v0", "--checkpoint", cut]), "predict")
    assert f"{cut}: cannot read checkpoint: a damaged or truncated PyTorch file" in line
    assert "weights_only" not in line


def test_a_yaml_syntax_error_names_file_line_and_column(clips, tmp_path, run_cli):
    config = _train_config(tmp_path, clips, workers=0)
    lines = config.read_text().splitlines()
    k = next(i for i, text in enumerate(lines) if text.strip().startswith("arch:"))
    lines[k] = lines[k] + ": resnet50"  # "arch: resnet18: resnet50": a second colon
    config.write_text("\n".join(lines) + "\n")
    line = _one_error_line(run_cli(["train", "--config", config]), "train")
    column = len(lines[k].split(": resnet50")[0]) + 1
    assert f"{config}:{k + 1}:{column}: not valid YAML: mapping values are not allowed here" in line
