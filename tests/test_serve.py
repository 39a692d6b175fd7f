"""tsm serve without a browser: the protocol on a real uvicorn server on loopback.

Per-connection streams match `tsm stream` runs, reset semantics, every bound and malformed
input closes only its own connection with a reason, no file access, CLI errors, the
cached --demo model (tiny budget), and a bounded load test (slow).
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import websockets  # the test extra has the serve extra's packages
from websockets.asyncio.client import connect

from conftest import calibrated_model
from temporal_shift.apps.serve.app import BackgroundServer, ServeSettings, create_app, is_loopback
from temporal_shift.apps.serve.protocol import ServeLimits, encode_frame
from temporal_shift.apps.stream import load_stream, stream_predictions
from temporal_shift.checkpoint.format import save_checkpoint
from temporal_shift.checkpoint.loading import load_online
from temporal_shift.data.encode import write_frame_folder
from temporal_shift.data.lists import write_classes
from temporal_shift.models.online import OnlineStream

K = 4
SIZE, SHORT = 32, 36
N_FRAMES = 10
FPS = 25.0
CLASSES = ["wave", "clap", "jump", "sit"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    rng = np.random.default_rng(0)
    folders = []
    for clip in range(2):
        frames = rng.integers(0, 255, (N_FRAMES, 40, 48, 3), dtype=np.uint8)
        frames[:, :, :, clip] = np.linspace(0, 255, N_FRAMES, dtype=np.uint8)[:, None, None]  # motion over time
        folders.append(write_frame_folder(root / f"clip{clip}", frames))
    model = calibrated_model(
        "resnet18", num_classes=K, n_segment=4, size=SIZE, calibration_seed=1, head_std=0.01, mode="causal"
    )
    ckpt = save_checkpoint(model, root / "causal.pt")
    classes = write_classes(root / "classes.txt", CLASSES)
    jpegs = [[p.read_bytes() for p in sorted(folder.iterdir())] for folder in folders]
    return {"root": root, "folders": folders, "ckpt": ckpt, "classes": classes, "jpegs": jpegs}


SETTINGS = ServeSettings(size=SIZE, short_side=SHORT, smooth=2, hysteresis=2, topk=3, fps=FPS)


def make_app(media, *, settings=SETTINGS, limits=ServeLimits()):
    model = load_stream(checkpoint=media["ckpt"], classes=media["classes"])
    return create_app(model, settings=settings, limits=limits)


@pytest.fixture(scope="module")
def server(media):
    with BackgroundServer(make_app(media)) as s:
        yield s


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


async def hello(ws) -> dict:
    message = json.loads(await ws.recv())
    assert message["type"] == "hello"
    return message


async def stream_clip(url: str, jpegs: list[bytes], *, fps: float = FPS, times=None, pause: float = 0.0):
    """Send a source and its frames; the results in order."""
    async with connect(url) as ws:
        await hello(ws)
        await ws.send(json.dumps({"type": "source", "kind": "file", "fps": fps}))
        results = []
        for i, jpeg in enumerate(jpegs):
            t = times[i] if times is not None else i / fps
            await ws.send(encode_frame(t, jpeg))
            results.append(json.loads(await ws.recv()))
            await asyncio.sleep(pause)  # lets the other client's frames interleave
        return results


async def closed_with(ws) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    with pytest.raises(websockets.ConnectionClosed) as info:
        for _ in range(100):
            await ws.recv()
    return info.value.rcvd.code, info.value.rcvd.reason


def expected_records(media, clip: int):
    stream = OnlineStream(load_online(media["ckpt"]))
    return list(
        stream_predictions(
            media["folders"][clip],
            stream,
            classes=CLASSES,
            size=SIZE,
            short_side=SHORT,
            smooth=2,
            hysteresis=2,
            topk=3,
            fps=FPS,
        )
    )


def same(result: dict, record) -> None:
    assert result["type"] == "result"
    assert (result["frame"], result["label"], result["reset"]) == (record.frame, record.label, record.reset)
    assert [e["index"] for e in result["topk"]] == [e["index"] for e in record.topk]
    assert [e["score"] for e in result["topk"]] == pytest.approx([e["score"] for e in record.topk], abs=1e-5)
    assert (result["score"] is None) == (record.score is None)
    if record.score is not None:
        assert result["score"] == pytest.approx(record.score, abs=1e-5)


def test_two_clients_get_the_labels_of_two_separate_stream_runs(media, server):
    async def both():
        return await asyncio.gather(*(stream_clip(server.ws_url, media["jpegs"][c], pause=0.005) for c in (0, 1)))

    results = run(both())
    for clip in (0, 1):
        expected = expected_records(media, clip)
        assert len(results[clip]) == len(expected) == N_FRAMES
        for result, record in zip(results[clip], expected):
            same(result, record)
        assert all(r["latency_ms"] > 0 and r["server_ms"] >= r["latency_ms"] for r in results[clip])
    # the clips differ, so shared buffers would have mixed them: the two runs must differ too
    assert [r["topk"] for r in results[0]] != [r["topk"] for r in results[1]]


def test_reset_on_request_on_gap_and_on_new_source(media, server):
    jpegs = media["jpegs"][0]

    async def session():
        async with connect(server.ws_url) as ws:
            await hello(ws)
            out = []

            async def frame(t, jpeg):
                await ws.send(encode_frame(t, jpeg))
                out.append(json.loads(await ws.recv()))

            await ws.send(json.dumps({"type": "source", "kind": "camera", "fps": FPS}))
            for i in range(3):
                await frame(i / FPS, jpegs[i])  # 0 start, 1, 2 continue
            await frame(3 / FPS, jpegs[0])  # continuing: buffers carry frames 0-2
            await ws.send(json.dumps({"type": "reset"}))
            await frame(4 / FPS, jpegs[0])  # request
            await frame(5 / FPS, jpegs[1])
            await frame(7 / FPS, jpegs[0])  # a skipped tick: gap
            await frame(8 / FPS, jpegs[1])
            await frame(8 / FPS, jpegs[0])  # time not moving forward: gap
            await ws.send(json.dumps({"type": "source", "kind": "file", "fps": FPS / 2}))
            await frame(100.0, jpegs[0])  # new source: start
            await frame(100.0 + 2 / FPS, jpegs[1])  # one step at the new rate: no gap
            await frame(100.0 + 3 / FPS, jpegs[2])  # half a step: within the tolerance
            return out

    out = run(session())
    assert [r["reset"] for r in out] == [
        "start",
        None,
        None,
        None,
        "request",
        None,
        "gap",
        None,
        "gap",
        "start",
        None,
        None,
    ]
    first = out[0]["topk"]
    assert out[3]["topk"] != first  # same image, different past: the buffers matter
    for i in (4, 6, 8, 9):  # same image after a reset: exactly a fresh stream's result
        assert out[i]["topk"] == first and out[i]["label"] == out[0]["label"]


def test_gap_rule_follows_the_source_fps(media, server):
    jpegs = media["jpegs"][0]
    fps = 10.0
    # steps of 1/fps are continuous, 1.4/fps too (within half a frame), 1.6/fps is a gap
    times = [0.0, 0.1, 0.24, 0.40, 0.50]
    results = run(stream_clip(server.ws_url, jpegs[:5], fps=fps, times=times))
    assert [r["reset"] for r in results] == ["start", None, None, "gap", None]


async def expect_close(url: str, messages, *, code: int, reason: str):
    async with connect(url, max_size=None) as ws:
        await hello(ws)
        for m in messages:
            await ws.send(m)
        got_code, got_reason = await closed_with(ws)
    assert got_code == code, got_reason
    assert reason in got_reason
    return got_reason


SOURCE = json.dumps({"type": "source", "kind": "camera", "fps": FPS})


def test_malformed_messages_close_only_their_connection(media, server):
    jpeg = media["jpegs"][0][0]
    bad = [
        (["not json"], 1003, "not JSON"),
        (["[1, 2]"], 1003, "JSON object"),
        ([json.dumps({"type": "play"})], 1003, "unknown message type 'play'"),
        ([json.dumps({"type": "source", "fps": "fast"})], 1003, "fps must be a positive number"),
        ([json.dumps({"type": "source", "fps": 0})], 1003, "fps must be a positive number"),
        ([json.dumps({"type": "source", "fps": 10, "kind": "screen"})], 1003, "kind must be"),
        ([encode_frame(0.0, jpeg)], 1008, "frame before a source message"),
        ([SOURCE, b"\x00\x01"], 1003, "expected an 8-byte time + a JPEG"),
        ([SOURCE, encode_frame(0.0, b"GIF89a not a jpeg")], 1003, "not a JPEG"),
        ([SOURCE, encode_frame(0.0, jpeg[: len(jpeg) // 2])], 1003, "truncated"),
        ([SOURCE, struct.pack("<d", math.nan) + jpeg], 1003, "finite"),
        (["x" * 2000], 1009, "control message over 1024 bytes"),
    ]

    async def scenario():
        # a good client streams all along; every bad one is closed with its reason
        good = asyncio.create_task(stream_clip(server.ws_url, media["jpegs"][1], pause=0.05))
        for messages, code, reason in bad:
            await expect_close(server.ws_url, messages, code=code, reason=reason)
        return await good

    results = run(scenario())
    assert len(results) == N_FRAMES and [r["frame"] for r in results] == list(range(N_FRAMES))
    for result, record in zip(results, expected_records(media, 1)):
        same(result, record)


def test_bounds_message_size_frame_size_rate_and_connections(media):
    limits = ServeLimits(max_connections=2, max_side=64, max_message_bytes=4096, max_fps=5)
    source = json.dumps({"type": "source", "kind": "camera", "fps": 5})
    big = np.full((80, 60, 3), 128, dtype=np.uint8)
    import simplejpeg

    too_wide = simplejpeg.encode_jpeg(big, quality=50)
    jpeg = media["jpegs"][0][0]
    assert len(too_wide) < 4096
    with BackgroundServer(make_app(media, limits=limits), limits=limits) as s:

        async def scenario():
            await expect_close(
                s.ws_url,
                [source, encode_frame(0.0, b"\xff\xd8" + bytes(5000))],
                code=1009,
                reason="over the limit of 4096",
            )
            await expect_close(
                s.ws_url, [source, encode_frame(0.0, too_wide)], code=1008, reason="60x80 over the limit of 64 pixels"
            )
            await expect_close(
                s.ws_url,
                [json.dumps({"type": "source", "fps": 30})],
                code=1008,
                reason="fps 30 over this server's limit of 5",
            )
            # a burst of 1 s of frames passes, sustained flooding does not
            flood = [source] + [encode_frame(i / 5, jpeg) for i in range(40)]
            await expect_close(s.ws_url, flood, code=1008, reason="more than 5 frames a second")
            # connections: two are served, the third is turned away, the two still work
            async with connect(s.ws_url) as a, connect(s.ws_url) as b:
                await hello(a)
                await hello(b)
                async with connect(s.ws_url) as c:
                    code, reason = await closed_with(c)
                assert (code, reason) == (1013, "server busy: 2 connections is the limit")
                for ws in (a, b):
                    await ws.send(source)
                    await ws.send(encode_frame(0.0, jpeg))
                    assert json.loads(await ws.recv())["reset"] == "start"
            # and once they leave, a new one is served
            return await stream_clip(s.ws_url, media["jpegs"][0][:2], fps=5)

        assert len(run(scenario())) == 2
        health = json.loads(urllib.request.urlopen(s.url + "/health", timeout=10).read())
        assert health["connections"] == 0 and health["max_connections"] == 2


def test_cross_origin_pages_cannot_connect(server):
    async def attempt(origin):
        async with connect(server.ws_url, origin=origin) as ws:
            return await hello(ws)

    assert run(attempt(f"http://127.0.0.1:{server.port}"))["classes"] == CLASSES  # the page's own origin
    with pytest.raises(websockets.InvalidStatus) as info:
        run(attempt("http://evil.example"))
    assert info.value.response.status_code == 403


def test_only_the_page_is_served_and_no_files_are_touched(media, server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    page = urllib.request.urlopen(server.url + "/", timeout=10)
    assert page.headers["Content-Type"].startswith("text/html") and b"tsm serve" in page.read()
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    for path in (
        "/index.html",
        "/secret.txt",
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/static/../../etc/passwd",
        f"/{media['ckpt']}",
        "/serve/index.html",
        "/ws/../secret.txt",
    ):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url + path, timeout=10)
        assert info.value.code == 404, path
    run(stream_clip(server.ws_url, media["jpegs"][0][:3]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.txt"]  # nothing written here
    assert sorted(p.name for p in media["root"].iterdir()) == ["causal.pt", "classes.txt", "clip0", "clip1"]


def test_loopback_by_default(run_cli):
    from temporal_shift.cli import build_parser

    assert build_parser().parse_args(["serve", "--demo"]).host == "127.0.0.1"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


def test_cli_errors_are_one_line(media, run_cli, tmp_path):
    code, out, err = run_cli(["serve"])
    assert code == 2 and "needs a causal (online) model" in err and "--demo" in err and len(err.splitlines()) == 1
    bidirectional = save_checkpoint(
        calibrated_model("resnet18", num_classes=K, n_segment=4, size=SIZE, calibration_seed=1, mode="bidirectional"),
        tmp_path / "offline.pt",
    )
    code, out, err = run_cli(["serve", "--checkpoint", bidirectional])
    assert code == 2 and str(bidirectional) in err and "causal" in err
    code, out, err = run_cli(["serve", "--checkpoint", tmp_path / "missing.pt"])
    assert code == 2 and "missing.pt" in err
    code, out, err = run_cli(["serve", "--checkpoint", media["ckpt"], "--runtime", "onnxruntime"])
    assert code == 2 and "--onnx" in err
    code, out, err = run_cli(["serve", "--checkpoint", media["ckpt"], "--fps", "90"])
    assert code == 2 and "--max-fps" in err
    for option, message in (
        ("--smooth", "smooth must be at least 1"),
        ("--hysteresis", "hysteresis must be at least 1"),
        ("--topk", "topk must be at least 1"),
        ("--max-connections", "max_connections"),
    ):
        code, out, err = run_cli(["serve", "--checkpoint", media["ckpt"], option, "0"])
        assert code == 2 and message in err, (option, err)
    code, out, err = run_cli(["serve", "--checkpoint", media["ckpt"], "--classes", tmp_path / "none.txt"])
    assert code == 2 and "none.txt" in err
    with pytest.raises(SystemExit):  # argparse: --demo or a model, not both
        run_cli(["serve", "--demo", "--checkpoint", media["ckpt"]])
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_cli(["serve", "--checkpoint", media["ckpt"], "--port", port])
    assert code == 2 and f"127.0.0.1:{port}" in err and "--port" in err


@pytest.mark.slow  # the ONNX export alone takes ~15 s
def test_onnxruntime_runtime_matches_torch(media, tmp_path):
    from temporal_shift.engine.export import export_online

    onnx = export_online(load_online(media["ckpt"]), tmp_path / "step.onnx", size=SIZE)
    model = load_stream(runtime="onnxruntime", checkpoint=media["ckpt"], onnx=onnx, classes=media["classes"])
    app = create_app(
        model, settings=ServeSettings(size=SIZE, short_side=SHORT, smooth=2, hysteresis=2, runtime="onnxruntime")
    )

    async def both(url):
        return await asyncio.gather(*(stream_clip(url, media["jpegs"][c], pause=0.005) for c in (0, 1)))

    with BackgroundServer(app) as s:
        results = run(both(s.ws_url))
    for clip in (0, 1):
        expected = expected_records(media, clip)
        assert [r["label"] for r in results[clip]] == [r.label for r in expected]
        for result, record in zip(results[clip], expected):
            assert [e["score"] for e in result["topk"]] == pytest.approx([e["score"] for e in record.topk], abs=1e-3)


def test_demo_model_is_trained_once_and_cached(tmp_path, monkeypatch):
    from temporal_shift.apps.serve.demo_model import DemoServeBudget, demo_cache_dir, ensure_demo_model

    monkeypatch.setenv("TSM_SERVE_CACHE", str(tmp_path / "from-env"))
    assert demo_cache_dir() == tmp_path / "from-env"
    monkeypatch.delenv("TSM_SERVE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo_cache_dir() == tmp_path / "xdg" / "temporal-shift" / "serve-demo"
    budget = DemoServeBudget(num_videos=24, epochs=1, batch_size=8)
    lines: list[str] = []
    first = ensure_demo_model(cache_dir=tmp_path / "cache", budget=budget, progress=False, log=lines.append)
    assert first.trained_now and first.checkpoint.is_file() and str(tmp_path / "cache") in lines[0]
    assert sorted(p.name for p in first.folder.iterdir()) == ["causal.pt", "classes.txt", "demo.json"]  # no data left
    again = ensure_demo_model(cache_dir=tmp_path / "cache", budget=budget, progress=False, log=lines.append)
    assert not again.trained_now and "cached in" in lines[-1]
    model = load_stream(checkpoint=again.checkpoint)
    assert model.classes[10:] == ["still_red", "still_blue"] and model.input_size == 32 and model.scale_size == 32
    (again.folder / "step.onnx").write_bytes(b"stale export of the previous model")
    other = ensure_demo_model(
        cache_dir=tmp_path / "cache",
        budget=DemoServeBudget(num_videos=24, epochs=1, batch_size=8, seed=1),
        progress=False,
        log=lines.append,
    )
    assert other.trained_now and not (other.folder / "step.onnx").exists()  # another budget: retrained


@pytest.mark.slow
def test_demo_model_exports_its_step_for_onnxruntime_once(tmp_path):
    from temporal_shift.apps.serve.demo_model import DemoServeBudget, ensure_demo_model

    demo = ensure_demo_model(
        cache_dir=tmp_path,
        budget=DemoServeBudget(num_videos=24, epochs=1, batch_size=8),
        progress=False,
        log=lambda line: None,
    )
    onnx = demo.onnx()
    stamp = onnx.stat().st_mtime_ns
    assert demo.onnx() == onnx and onnx.stat().st_mtime_ns == stamp  # cached
    model = load_stream(runtime="onnxruntime", checkpoint=demo.checkpoint, onnx=onnx)
    assert model.classes[10] == "still_red" and model.input_size == 32


@pytest.mark.slow
def test_load_eight_clients_on_loopback(media):
    """8 page-like clients stream at once for 3 s, twice: every client gets results in order
    with no error, frames/s and p95 round trip are reported, and the server's memory does
    not grow from the first round to the second (bounded per-connection state)."""
    from temporal_shift.apps.serve.load import rss_mb, run_clients

    limits = ServeLimits(max_connections=8)
    jpegs = media["jpegs"][0] + media["jpegs"][1]
    with BackgroundServer(make_app(media, limits=limits), limits=limits) as s:
        rounds = []
        for _ in range(3):
            results = run(run_clients(s.ws_url, jpegs, clients=8, seconds=3.0))
            rounds.append((results, rss_mb()))
        health = json.loads(urllib.request.urlopen(s.url + "/health", timeout=10).read())
    for results, _ in rounds:
        assert [r.error for r in results] == [None] * 8
        assert all(r.frames >= 1 for r in results)
        summaries = [r.summary() for r in results]
        print("load:", [(x["fps"], x["rtt_ms_p95"]) for x in summaries])
        assert all(math.isfinite(x["rtt_ms_p95"]) and x["rtt_ms_p95"] >= x["step_ms_median"] for x in summaries)
    # fair share: no client starves while others stream
    fps = [r.fps for r in rounds[-1][0]]
    assert min(fps) > 0.5 * statistics.median(fps)
    growth = rounds[2][1] - rounds[1][1]
    assert growth < 20, f"server memory grew by {growth:.1f} MB between two equal rounds"
    assert health["connections"] == 0 and health["served"] == 24
