"""The data commands of `tsm`: synth, prepare, prepare extract, bench data."""

from __future__ import annotations

import json

import pytest

from conftest import index_frames
from temporal_shift.cli import main
from temporal_shift.data.encode import write_video
from temporal_shift.data.lists import read_classes, read_list


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "synth"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--num-videos",
                "24",
                "--size",
                "32",
                "--frames",
                "8",
                "--seed",
                "3",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    return out


def test_synth(synth_dir, capsys):
    assert len(read_classes(synth_dir / "classes.txt")) == 12
    assert len(read_list(synth_dir / "train_frames.txt")) + len(read_list(synth_dir / "val_frames.txt")) == 24
    assert (
        main(["synth", "--out", str(synth_dir), "--num-videos", "24", "--size", "32", "--frames", "8", "--seed", "4"])
        == 2
    )
    assert "tsm synth: error:" in capsys.readouterr().err


def test_synth_bad_size(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--size", "31"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tsm synth: error: size must be even") and "\n" not in err


def test_synth_knobs_are_recorded_and_checked(tmp_path, capsys):
    out = tmp_path / "fast"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--num-videos",
                "24",
                "--size",
                "32",
                "--frames",
                "4",
                "--workers",
                "1",
                "--plain",
                "--pair-hues",
                "--motion",
                "3",
                "--object-scale",
                "1.5",
                "--spin",
                "2.5",
            ]
        )
        == 0
    )
    settings = json.loads((out / "meta.json").read_text())["settings"]
    assert (settings["motion"], settings["object_scale"], settings["spin"], settings["pair_hues"]) == (
        3,
        1.5,
        2.5,
        True,
    )
    capsys.readouterr()
    assert main(["synth", "--out", str(tmp_path / "bad"), "--spin", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("spin must be positive, got -1.0") and "\n" not in err


def test_prepare_jester_and_malformed_line(tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("Swiping Left\nSwiping Right\n")
    (tmp_path / "train.csv").write_text("1;Swiping Left\n2;Swiping Right\n")
    (tmp_path / "val.csv").write_text("3;Swiping Right\n")
    root = tmp_path / "videos"
    for i in (1, 2, 3):
        write_video(root / f"{i}.mp4", index_frames(4, height=16, width=16))
    args = [
        "prepare",
        "jester",
        "--root",
        str(root),
        "--out",
        str(tmp_path / "lists"),
        "--labels",
        str(labels),
        "--train",
        str(tmp_path / "train.csv"),
        "--val",
        str(tmp_path / "val.csv"),
    ]
    assert main(args) == 0
    assert (tmp_path / "lists" / "train.txt").read_text() == "1.mp4 0\n2.mp4 1\n"
    assert "train:" in capsys.readouterr().out
    (tmp_path / "val.csv").write_text("3;Swiping Right\n4 Swiping Left\n")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tsm prepare: error:") and f"{tmp_path / 'val.csv'}:2: malformed line" in err


def test_prepare_missing_samples_skip(tmp_path, capsys):
    d = tmp_path / "splits"
    d.mkdir()
    (d / "wave_test_split1.txt").write_text("a.avi 1\nb.avi 2\n")
    root = tmp_path / "hmdb"
    write_video(root / "wave" / "a.mp4", index_frames(4, height=16, width=16))
    base = ["prepare", "hmdb51", "--root", str(root), "--out", str(tmp_path / "o"), "--splits-dir", str(d)]
    assert main(base) == 2
    assert "no frame folder or video named 'b'" in capsys.readouterr().err
    assert main([*base, "--missing", "skip"]) == 0
    assert "1 val samples missing" in capsys.readouterr().out
    assert (tmp_path / "o" / "train_split1.txt").read_text() == "wave/a.mp4 0\n"


def test_prepare_extract(tmp_path, capsys):
    videos = tmp_path / "videos"
    write_video(videos / "x.mp4", index_frames(6, height=32, width=48))
    (videos / "bad.mp4").write_bytes(b"\x00" * 100)
    args = [
        "prepare",
        "extract",
        "--videos",
        str(videos),
        "--out",
        str(tmp_path / "frames"),
        "--short-side",
        "16",
        "--workers",
        "1",
    ]
    assert main(args) == 1  # some videos failed
    out = capsys.readouterr().out
    assert "extracted 1" in out and "FAILED" in out and "bad.mp4" in out
    assert "bad.mp4" in (tmp_path / "frames" / "extract_failures.txt").read_text()
    (videos / "bad.mp4").unlink()
    assert main(args) == 0
    assert "skipped (already done) 1" in capsys.readouterr().out
    assert main(["prepare", "extract", "--videos", str(tmp_path / "none"), "--out", str(tmp_path / "f")]) == 2
    assert "video folder not found" in capsys.readouterr().err


def test_bench_data(synth_dir, tmp_path, capsys):
    from temporal_shift.apps.bench.data import write_avi_copies

    args = [
        "bench",
        "data",
        "--root",
        str(synth_dir),
        "--frames-list",
        str(synth_dir / "train_frames.txt"),
        "--videos-list",
        str(synth_dir / "train_videos.txt"),
        "--avi-list",
        str(write_avi_copies(synth_dir, "train_videos.txt")),
        "--workers",
        "0",
        "--clips",
        "4",
        "--repeats",
        "2",
        "--size",
        "24",
        "--batch-size",
        "2",
        "--json",
        str(tmp_path / "b.json"),
        "--plot",
        str(tmp_path / "b.png"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "frames / mp4" in out and "per worker" in out
    data = json.loads((tmp_path / "b.json").read_text())
    assert len(data["timings"]["frames"]["clips_per_s"]) == 2 and data["timings"]["mp4"]["median"] > 0
    assert data["timings"]["avi"]["median"] > 0  # MPEG-4 Part 2 with B-frames, as UCF101's
    # TorchCodec: timed where it loads, else the reason; AVI with B-frames it cannot read frame-exactly
    assert "mp4 torchcodec" in data["timings"] or "torchcodec" in data["not_timed"]["mp4 torchcodec"]
    assert "cannot read this file frame-exactly" in data["not_timed"].get("avi torchcodec", "frame-exactly")
    assert "not timed:" in out
    assert (tmp_path / "b.png").stat().st_size > 0
    assert main(["bench", "data", "--root", str(synth_dir)]) == 2
    assert "--root needs both" in capsys.readouterr().err
    assert main(["bench", "data", "--frames-list", "x.txt"]) == 2
    assert "need --root" in capsys.readouterr().err
    assert main([*args[:-4], "--clips", "0"]) == 2
    assert ">= 1" in capsys.readouterr().err


def test_bench_data_bad_workers(synth_dir):
    from temporal_shift.apps.bench.data import benchmark_data

    with pytest.raises(ValueError, match="workers must be >= 0"):
        benchmark_data(
            root=synth_dir,
            frames_list=synth_dir / "train_frames.txt",
            videos_list=synth_dir / "train_videos.txt",
            workers=-1,
        )


def test_synth_hard_scene(tmp_path, capsys):
    from temporal_shift.data.synthetic import HARD_CLASSES

    out = tmp_path / "hard"
    argv = ["synth", "--out", str(out), "--num-videos", "24", "--size", "32", "--frames", "4", "--scene", "hard"]
    assert main([*argv, "--plain", "--motion", "3", "--workers", "1"]) == 0
    assert read_classes(out / "classes.txt") == list(HARD_CLASSES)
    assert json.loads((out / "meta.json").read_text())["settings"]["scene"] == "hard"
    capsys.readouterr()
    assert main([*argv, "--pair-hues", "--out", str(tmp_path / "h2")]) == 2
    assert "the hard scene has neither" in capsys.readouterr().err


def test_synth_camouflage_scene(tmp_path, capsys):
    from temporal_shift.data.synthetic import CAMOUFLAGE_CLASSES

    out = tmp_path / "camouflage"
    argv = ["synth", "--out", str(out), "--num-videos", "24", "--size", "32", "--frames", "4", "--scene", "camouflage"]
    assert main([*argv, "--plain", "--pair-hues", "--motion", "3", "--workers", "1"]) == 0
    assert read_classes(out / "classes.txt") == list(CAMOUFLAGE_CLASSES)
    settings = json.loads((out / "meta.json").read_text())["settings"]
    assert settings["scene"] == "camouflage" and settings["pair_hues"] is True
    capsys.readouterr()
    assert main([*argv, "--spin", "2.5", "--out", str(tmp_path / "c2")]) == 2
    assert "the camouflage scene has no rotation" in capsys.readouterr().err
