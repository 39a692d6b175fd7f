"""tsm stream: per-frame records, equality with a hand-run OnlineStream, smoothing and
hysteresis, gap resets, annotated video, onnxruntime runtime, CLI errors."""

from __future__ import annotations

import io
import json
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from conftest import calibrated_model
from temporal_shift.apps.stream import (
    GapDetector,
    ScoreFilter,
    StreamPredictor,
    StreamSummary,
    stream_predictions,
)
from temporal_shift.checkpoint.format import save_checkpoint
from temporal_shift.checkpoint.loading import load_online
from temporal_shift.data.decode import read_video
from temporal_shift.data.encode import write_frame_folder, write_video
from temporal_shift.data.lists import write_classes
from temporal_shift.data.sources import SourceFrame
from temporal_shift.data.transforms import test_transform as make_test_transform
from temporal_shift.models.online import OnlineStream

K = 4
SIZE, SHORT = 32, 36
N_FRAMES = 8
CLASSES = ["wave", "clap", "jump", "sit"]


pytestmark = pytest.mark.usefixtures("one_thread")


def causal_model(*, mode: str = "causal"):
    return calibrated_model(
        "resnet18", num_classes=K, n_segment=4, size=SIZE, calibration_seed=1, head_std=0.01, mode=mode
    )


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    frames = np.random.default_rng(0).integers(0, 255, (N_FRAMES, 40, 48, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.linspace(0, 255, N_FRAMES, dtype=np.uint8)[:, None, None]  # motion over time
    video = write_video(root / "clip.mp4", frames, fps=10)
    folder = write_frame_folder(root / "frames", frames)
    ckpt = save_checkpoint(causal_model(), root / "causal.pt")
    classes = write_classes(root / "classes.txt", CLASSES)
    return {"root": root, "video": video, "folder": folder, "ckpt": ckpt, "classes": classes, "frames": frames}


def probs_of(record):
    p = torch.zeros(K, dtype=torch.float64)
    for entry in record.topk:
        p[entry["index"]] = entry["score"]
    return p


@pytest.mark.parametrize("every", [1, 2])
def test_one_record_per_processed_frame(media, every):
    stream = OnlineStream(load_online(media["ckpt"]))
    summary = StreamSummary()
    for source, fps in ((media["video"], 10), (media["folder"], 25)):
        records = list(
            stream_predictions(
                source,
                stream,
                classes=CLASSES,
                size=SIZE,
                short_side=SHORT,
                every=every,
                topk=2,
                summary=summary,
            )
        )
        assert [r.frame for r in records] == list(range(0, N_FRAMES, every))
        assert [r.time for r in records] == pytest.approx([i / fps for i in range(0, N_FRAMES, every)])
        assert records[0].reset == "start" and all(r.reset is None for r in records[1:])
        assert all(len(r.topk) == 2 and r.label in CLASSES for r in records)
    assert summary.frames_read == 2 * N_FRAMES
    assert summary.frames_processed == 2 * len(range(0, N_FRAMES, every))
    assert summary.to_dict()["step_latency_ms_median"] > 0


def test_scores_equal_online_stream_run_by_hand(media):
    online = load_online(media["ckpt"])
    records = list(
        stream_predictions(
            media["video"],
            OnlineStream(online),
            classes=CLASSES,
            size=SIZE,
            short_side=SHORT,
            every=2,
            topk=K,
        )
    )
    frames = read_video(media["video"], range(0, N_FRAMES, 2))
    transform = make_test_transform(size=SIZE, scale_size=SHORT)
    by_hand = OnlineStream(online)
    expected = torch.stack([torch.softmax(by_hand.update(transform(f)).double(), 0) for f in frames])
    got = torch.stack([probs_of(r) for r in records])
    assert torch.allclose(got, expected, atol=2e-6)
    assert (expected.max(0).values - expected.min(0).values).max() > 1e-4  # frames do differ


def test_smoothing_and_hysteresis_on_a_hand_made_sequence():
    a, b = torch.tensor([0.9, 0.1]), torch.tensor([0.1, 0.9])
    f = ScoreFilter(smooth=1, hysteresis=3)
    currents = [f.update(p)[1] for p in (a, a, a, b, b, a, b, b, b, b)]
    assert currents == [None, None, 0, 0, 0, 0, 0, 0, 1, 1]
    f = ScoreFilter(smooth=2, hysteresis=1)
    outs = [f.update(p) for p in (a, b, b, a)]
    assert torch.allclose(outs[1][0], torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert torch.allclose(outs[2][0], b.double()) and outs[2][1] == 1
    assert torch.allclose(outs[3][0], torch.tensor([0.5, 0.5], dtype=torch.float64))
    f.reset()
    assert f.current is None and torch.allclose(f.update(a)[0], a.double())
    with pytest.raises(ValueError, match="smooth"):
        ScoreFilter(smooth=0)


def test_gap_rule():
    gaps = GapDetector(fps=10, every=2)
    assert [gaps.check(t) for t in (0.0, 0.2, 0.4, 0.7, 0.9, 0.5)] == [False, False, False, True, False, True]


def test_gap_and_request_reset_the_stream(media):
    online = load_online(media["ckpt"])
    transform = make_test_transform(size=SIZE, scale_size=SHORT)
    images = torch.from_numpy(media["frames"]).permute(0, 3, 1, 2)
    times = [0.0, 0.1, 0.2, 0.6, 0.7]  # frames 3.. come after a 0.4 s jump at 10 fps
    source = [SourceFrame(index=i, time=t, image=images[i]) for i, t in enumerate(times)]
    predictor = StreamPredictor(OnlineStream(online), classes=CLASSES, size=SIZE, short_side=SHORT, topk=K)
    records = list(predictor.run(source, fps=10))
    assert [r.reset for r in records] == ["start", None, None, "gap", None]
    fresh = OnlineStream(online)
    expected = torch.softmax(fresh.update(transform(images[3])).double(), 0)
    assert torch.allclose(probs_of(records[3]), expected, atol=2e-6)
    continued = OnlineStream(online)
    for i in range(4):
        last = continued.update(transform(images[i]))
    assert not torch.allclose(probs_of(records[3]), torch.softmax(last.double(), 0), atol=1e-4)

    def requested():
        for frame in source[:3]:
            yield frame
            if frame.index == 0:
                predictor.request_reset()

    assert [r.reset for r in predictor.run(requested(), fps=10)] == ["start", "request", None]
    assert predictor.summary.resets == {"start": 2, "gap": 1, "request": 1}


def test_gap_in_real_video_timestamps(media):
    # a video whose frames 4.. are stamped 3 frames later: dropped frames in the container
    path = media["root"] / "dropped.mp4"
    with av.open(str(path), "w") as container:
        s = container.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 48, 40, "yuv420p"
        s.codec_context.time_base = Fraction(1, 10)
        for i, frame in enumerate(media["frames"][:6]):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = (i if i < 4 else i + 3), Fraction(1, 10)
            for packet in s.encode(vf):
                container.mux(packet)
        for packet in s.encode():
            container.mux(packet)
    records = list(
        stream_predictions(path, OnlineStream(load_online(media["ckpt"])), classes=CLASSES, size=SIZE, short_side=SHORT)
    )
    assert [r.reset for r in records] == ["start", None, None, None, "gap", None]
    assert records[4].time == pytest.approx(0.7)


def test_cli_json_lines_summary_and_annotated_video(media, run_cli, tmp_path):
    out_video, summary = tmp_path / "annotated.mp4", tmp_path / "summary.json"
    code, out, err = run_cli(
        [
            "stream",
            media["video"],
            "--checkpoint",
            media["ckpt"],
            "--classes",
            media["classes"],
            "--size",
            SIZE,
            "--every",
            2,
            "--smooth",
            2,
            "--hysteresis",
            2,
            "--out-video",
            out_video,
            "--json-summary",
            summary,
        ],
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["frame"] for r in lines] == [0, 2, 4, 6]
    assert lines[0]["label"] is None  # hysteresis 2: nothing is stable after one step
    assert all(r["label"] in CLASSES for r in lines[1:])
    assert "frames/s" in err and "p95" in err
    assert json.loads(summary.read_text())["frames_processed"] == 4
    with av.open(str(out_video)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == N_FRAMES  # every source frame, annotated with the current label


def test_a_folder_streams_its_frame_template_like_predict(media, run_cli, tmp_path):
    folder = tmp_path / "v"
    write_frame_folder(folder, media["frames"])  # img_00001.jpg ...
    for template in ("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg", "x_{:05d}.jpg", "y_{:05d}.jpg"):
        write_frame_folder(folder, media["frames"][:-1], template=template)  # flow next to the frames
    code, out, err = run_cli(["stream", folder, "--checkpoint", media["ckpt"], "--size", SIZE])
    assert code == 0, err
    assert [json.loads(line)["frame"] for line in out.splitlines()] == list(range(N_FRAMES))
    renamed = tmp_path / "renamed"
    write_frame_folder(renamed, media["frames"][:3], template="frame_{:04d}.jpg")
    write_frame_folder(renamed, media["frames"][:2], template="x_{:05d}.jpg")
    code, out, err = run_cli(["stream", renamed, "--checkpoint", media["ckpt"], "--size", SIZE])
    assert code == 2 and "flow images" in err and "--template" in err and err.count("\n") == 1, err
    code, out, err = run_cli(
        ["stream", renamed, "--checkpoint", media["ckpt"], "--size", SIZE, "--template", "frame_{:04d}.jpg"]
    )
    assert code == 0 and len(out.splitlines()) == 3, err


def test_onnxruntime_runtime_gives_the_same_top1(media, run_cli, tmp_path):
    pytest.importorskip("onnxruntime")
    from temporal_shift.engine.export import export_online

    onnx = export_online(load_online(media["ckpt"]), tmp_path / "step.onnx", size=SIZE)
    common = ["stream", media["folder"], "--size", SIZE, "--topk", 1]
    code, torch_out, err = run_cli([*common, "--checkpoint", media["ckpt"]])
    assert code == 0, err
    code, ort_out, err = run_cli([*common, "--runtime", "onnxruntime", "--onnx", onnx])
    assert code == 0, err
    torch_top = [json.loads(x)["topk"][0] for x in torch_out.splitlines()]
    ort_top = [json.loads(x)["topk"][0] for x in ort_out.splitlines()]
    assert len(torch_top) == N_FRAMES
    assert [t["index"] for t in torch_top] == [t["index"] for t in ort_top]
    assert [t["score"] for t in torch_top] == pytest.approx([t["score"] for t in ort_top], abs=1e-4)
    # the export is for one frame size: another --size is a one-line error, not a crash
    code, out, err = run_cli(["stream", media["folder"], "--size", 48, "--runtime", "onnxruntime", "--onnx", onnx])
    assert code == 2 and err.count("\n") == 1 and "shape" in err and out == "", err


@pytest.mark.slow  # the ExecuTorch lowering and OpenVINO's conversion take ~20 s each on 2 cores
@pytest.mark.parametrize(("runtime", "suffix"), [("executorch", ".pte"), ("openvino", ".xml")])
def test_executorch_and_openvino_runtimes_give_the_same_top1(media, run_cli, tmp_path, runtime, suffix):
    pytest.importorskip(runtime)
    from temporal_shift.engine.export import export_online

    step = export_online(load_online(media["ckpt"]), tmp_path / f"step{suffix}", format=runtime, size=SIZE)
    common = ["stream", media["folder"], "--size", SIZE, "--topk", 1]
    code, torch_out, err = run_cli([*common, "--checkpoint", media["ckpt"]])
    assert code == 0, err
    code, out, err = run_cli([*common, "--runtime", runtime, "--exported", step, "--threads", 1])
    assert code == 0, err
    torch_top = [json.loads(x)["topk"][0] for x in torch_out.splitlines()]
    got = [json.loads(x)["topk"][0] for x in out.splitlines()]
    assert [t["index"] for t in torch_top] == [t["index"] for t in got]
    assert [t["score"] for t in torch_top] == pytest.approx([t["score"] for t in got], abs=1e-4)


def test_cli_errors_are_one_line(media, run_cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    bidirectional = save_checkpoint(causal_model(mode="bidirectional"), tmp_path / "bidir.pt")
    wrong_classes = write_classes(tmp_path / "three.txt", CLASSES[:3])
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    cases = [
        (["stream", tmp_path / "missing.mp4", "--checkpoint", media["ckpt"]], "missing.mp4"),
        (["stream", not_video, "--checkpoint", media["ckpt"]], "notes.mp4"),
        (["stream", empty, "--checkpoint", media["ckpt"]], "no JPEG frames"),
        (["stream", media["video"], "--checkpoint", bidirectional], "causal"),
        (["stream", media["video"], "--checkpoint", media["ckpt"], "--classes", wrong_classes], "3 class names"),
        (["stream", "7", "--checkpoint", media["ckpt"]], "camera 7"),
        (["stream", media["video"], "--runtime", "onnxruntime"], "--onnx"),
    ]
    for args, needle in cases:
        code, out, err = run_cli(args)
        assert code == 2, (args, err)
        assert err.count("\n") == 1 and needle in err, err
        assert out == ""


def test_load_stream_is_the_cli_without_argparse(media, tmp_path):
    from temporal_shift.apps.stream import load_stream, run_stream

    model = load_stream(checkpoint=media["ckpt"])
    assert model.classes == ["0", "1", "2", "3"] and isinstance(model.stream, OnlineStream)
    assert load_stream(checkpoint=media["ckpt"], classes=media["classes"]).classes == CLASSES
    for kwargs, message in [
        ({}, "--checkpoint is required with --runtime torch"),
        ({"checkpoint": media["ckpt"], "onnx": tmp_path / "x.onnx"}, "--onnx is for --runtime onnxruntime"),
        ({"runtime": "onnxruntime", "checkpoint": media["ckpt"]}, "needs --onnx FILE"),
        ({"runtime": "tensorrt"}, "runtime must be one of torch, onnxruntime, executorch, openvino"),
        ({"runtime": "executorch"}, "--runtime executorch needs --exported FILE"),
        ({"runtime": "openvino", "onnx": tmp_path / "x.onnx"}, "--onnx is for --runtime onnxruntime"),
        (
            {"checkpoint": media["ckpt"], "classes": write_classes(tmp_path / "two.txt", CLASSES[:2])},
            "two.txt: 2 class names, but the model has 4 classes",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            load_stream(**kwargs)
    # short_side defaults to size * 8/7, as the CLI's --short-side
    lines = io.StringIO()
    summary = run_stream(media["folder"], model.stream, classes=model.classes, out=lines, size=SIZE, topk=2)
    direct = list(
        stream_predictions(
            media["folder"],
            OnlineStream(load_online(media["ckpt"])),
            classes=model.classes,
            size=SIZE,
            short_side=round(SIZE * 8 / 7),
            topk=2,
        )
    )
    assert summary.frames_processed == len(direct) == N_FRAMES
    assert [json.loads(line)["topk"] for line in lines.getvalue().splitlines()] == [r.topk for r in direct]
