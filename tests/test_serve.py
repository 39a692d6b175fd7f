"""tsm serve without a browser: the protocol on a real uvicorn server on loopback.

Per-connection streams match `tsm stream` runs, reset semantics, every bound and malformed
input closes only its own connection with a reason, no file access, CLI errors, the
cached --demo model (tiny budget), and a bounded load test (slow).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import statistics
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import websockets  # the test extra has the serve extra's packages
from websockets.asyncio.client import connect

from conftest import calibrated_model
from temporal_shift.apps.serve.app import BackgroundServer, ServeSettings, create_app, is_loopback
from temporal_shift.apps.serve.attacks import RawWebSocket, half_open, progressive_jpeg, truncated_jpeg
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


def make_app(media, *, settings=SETTINGS, limits=ServeLimits(), **options):
    model = load_stream(checkpoint=media["ckpt"], classes=media["classes"])
    return create_app(model, settings=settings, limits=limits, **options)


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
        for result, record in zip(results[clip], expected, strict=True):
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
        ([SOURCE, encode_frame(0.0, truncated_jpeg(jpeg))], 1003, "truncated: its image data ends early"),
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
    for result, record in zip(results, expected_records(media, 1), strict=True):
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


# --- attacks (the hostile clients of `serve.attacks`) ---------------------------------------


def raw_session(
    server, messages, *, results: int | None = None, **headers
) -> tuple[int, list[dict], tuple[int | None, str]]:
    """A raw WebSocket client: handshake status, the results it got, and how the server closed
    it (or, given ``results``, that many results and no close)."""
    with RawWebSocket("127.0.0.1", server.port, headers=headers) as ws:
        if not ws.open:
            return ws.status, [], (None, "")
        _, payload = ws.recv_frame()
        assert json.loads(payload)["type"] == "hello"
        for m in messages:
            if isinstance(m, bytes):
                ws.send_frame(0x2, m)
            else:
                ws.send_text(m)
        if results is not None:
            return ws.status, [json.loads(ws.recv_frame()[1]) for _ in range(results)], (None, "")
        payloads, closed = ws.until_closed()
        return ws.status, [json.loads(p) for p in payloads], (closed.code, closed.reason)


def test_a_jpeg_of_thousands_of_scans_is_refused_before_it_is_decoded(media):
    """A 640x640 progressive JPEG of 2,000 scans (25 KB) costs the decoder a pass over every
    block per scan; it is refused from its markers, while an ordinary progressive JPEG
    (libjpeg's 10 scans) is decoded."""
    from PIL import Image

    bomb = progressive_jpeg(2000)
    assert len(bomb) < 30_000
    buffer = __import__("io").BytesIO()
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(buffer, format="JPEG", progressive=True)
    with BackgroundServer(make_app(media)) as s:
        status, results, (code, reason) = raw_session(
            s, [SOURCE, encode_frame(0.0, buffer.getvalue()), encode_frame(1 / FPS, bomb)]
        )
    assert status == 101 and [r["frame"] for r in results] == [0]
    assert (code, reason) == (1008, "frame of more than 16 scans: too costly to decode (send baseline JPEGs)")


def test_decoding_runs_beside_the_model_and_a_costly_client_only_slows_itself(media, monkeypatch):
    """A client whose frames take 2 s each to decode (a stand-in for any costly JPEG) does not
    hold the model thread: another client's round trips stay short meanwhile. A client that
    spends more than its share of decoding time is closed."""
    from temporal_shift.apps.serve import app as app_module

    real = app_module.decode_frame

    def slow_for_the_marked_client(data, *, limits):
        t, image = real(data, limits=limits)
        if t >= 1000.0:  # the costly client's frame times
            time.sleep(2.0)
        return t, image

    monkeypatch.setattr(app_module, "decode_frame", slow_for_the_marked_client)
    jpeg = media["jpegs"][0][0]

    async def scenario(url):
        async def costly():
            async with connect(url) as ws:
                await hello(ws)
                await ws.send(SOURCE)
                await ws.send(encode_frame(1000.0, jpeg))
                return json.loads(await ws.recv())

        async def good():
            await asyncio.sleep(0.3)  # the costly frame is decoding
            rtts = []
            async with connect(url) as ws:
                await hello(ws)
                await ws.send(SOURCE)
                for i in range(8):
                    t0 = time.perf_counter()
                    await ws.send(encode_frame(i / FPS, jpeg))
                    assert json.loads(await ws.recv())["frame"] == i
                    rtts.append(time.perf_counter() - t0)
            return rtts

        return await asyncio.gather(costly(), good())

    with BackgroundServer(make_app(media)) as s:
        costly, rtts = run(scenario(s.ws_url))
    assert costly["frame"] == 0
    assert max(rtts) < 1.0, rtts  # not queued behind the 2 s decode
    # the budget: 0.001 s of decoding a second, one frame of real cost is past it
    limits = ServeLimits(decode_share=0.001)
    with BackgroundServer(make_app(media, limits=limits), limits=limits) as s:
        big = __import__("simplejpeg").encode_jpeg(
            np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8), quality=90
        )
        frames = [encode_frame(i / FPS, big) for i in range(10)]
        _, results, (code, reason) = raw_session(s, [SOURCE, *frames])
    assert code == 1008 and reason.startswith("frames cost more than 0.001 s of decoding a second"), reason
    assert len(results) < 10


def test_half_open_requests_do_not_shut_the_page_out(media):
    """50 connections that never finish their request head: the page and /health still
    answer 200 within a second; the unfinished ones are closed after the head timeout; past
    the socket cap the newest evict the longest-waiting, never the page's requests."""
    limits = ServeLimits(header_timeout=1.0)
    with BackgroundServer(make_app(media, limits=limits), limits=limits) as s:
        sockets = half_open("127.0.0.1", s.port, 50)
        try:
            for path in ("/", "/health"):
                started = time.perf_counter()
                with urllib.request.urlopen(s.url + path, timeout=5) as response:
                    assert response.status == 200
                assert time.perf_counter() - started < 1.0
            assert run(stream_clip(s.ws_url, media["jpegs"][0][:2]))[1]["frame"] == 1
            time.sleep(1.5)
            for sock in sockets:  # the server hung up on every one of them
                sock.settimeout(2)
                assert sock.recv(1024) == b""
        finally:
            for sock in sockets:
                sock.close()
    limits = ServeLimits(max_sockets=16, header_timeout=30.0)
    with BackgroundServer(make_app(media, limits=limits), limits=limits) as s:
        sockets = half_open("127.0.0.1", s.port, 40)  # far past the cap, and they would wait 30 s
        try:
            started = time.perf_counter()
            with urllib.request.urlopen(s.url + "/health", timeout=5) as response:
                assert response.status == 200
            assert time.perf_counter() - started < 1.0
        finally:
            for sock in sockets:
                sock.close()


def test_other_host_names_are_refused_dns_rebinding(media):
    """A page of evil.example whose name was made to resolve to 127.0.0.1 reaches the server
    with its own name in Host and Origin: the handshake and the page are refused. The
    loopback names, --host and --allowed-host are answered."""
    with BackgroundServer(make_app(media, allowed_host=("tsm.lan",))) as s:
        evil = f"evil.example:{s.port}"
        status, _, _ = raw_session(s, [], Host=evil, Origin=f"http://{evil}")
        assert status == 403
        request = urllib.request.Request(s.url + "/health", headers={"Host": evil})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 400 and b"--allowed-host" in info.value.read()
        for name in (f"localhost:{s.port}", f"127.0.0.1:{s.port}", f"[::1]:{s.port}", f"tsm.lan:{s.port}", "TSM.LAN"):
            status, results, _ = raw_session(
                s, [SOURCE, encode_frame(0.0, media["jpegs"][0][0])], results=1, Host=name, Origin=f"http://{name}"
            )
            assert status == 101 and results[0]["frame"] == 0, name
    from temporal_shift.apps.serve.guard import HostGuard, allowed_hosts, host_name

    assert host_name("[::1]:80") == "::1" and host_name("Example.COM.:8000") == "example.com"
    assert host_name("x:port") is None and host_name("[::1") is None and host_name("") is None
    assert not HostGuard(None, allowed=allowed_hosts("127.0.0.1")).allows("a:b:c")
    wildcard = HostGuard(None, allowed=allowed_hosts("0.0.0.0"), any_ip=True)
    assert wildcard.allows("192.168.1.5:8000") and wildcard.allows("[fe80::1]:8000")
    assert not wildcard.allows("evil.example:8000") and not wildcard.allows("0.0.0.0.evil.example")
    assert HostGuard(None, allowed=allowed_hosts("127.0.0.1", ["*"])).allows("anything")


def test_idle_connections_are_closed_and_their_slots_freed(media):
    """Connections that read the hello and send nothing hold no slot for long: each is
    closed (4408) after the idle timeout, and a newcomer is served."""
    limits = ServeLimits(max_connections=2, idle_timeout=1.0)
    with BackgroundServer(make_app(media, limits=limits), limits=limits) as s:

        async def scenario():
            async with connect(s.ws_url) as a, connect(s.ws_url) as b:
                await hello(a)
                await hello(b)
                await a.send(SOURCE)  # control messages are not activity
                return [await closed_with(a), await closed_with(b)], await stream_clip(s.ws_url, media["jpegs"][0][:2])

        closes, results = run(scenario())
    assert closes == [(4408, "idle: no frame for 1 s")] * 2 and len(results) == 2


def test_control_messages_are_rate_limited(media, server):
    flood = [json.dumps({"type": "reset"})] * 500
    status, _, (code, reason) = raw_session(server, [SOURCE, *flood])
    assert status == 101 and (code, reason) == (1008, "more than 10 control messages a second")


def test_protocol_errors_are_logged_in_one_line_each(media, server):
    """Invalid UTF-8 in a text frame (which uvicorn logs with a traceback) and the app's own
    refusals: one log line each, no traceback."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        with RawWebSocket("127.0.0.1", server.port) as ws:
            ws.recv_frame()
            ws.send_text(b"\xff\xfe not UTF-8")
            _, closed = ws.until_closed()
        assert closed.code == 1007
        raw_session(server, ["not json"])
        time.sleep(0.2)
    finally:
        logger.removeHandler(handler)
    lines = [r for r in records if r.levelno >= logging.WARNING]
    assert [r.exc_info for r in records] == [None] * len(records)
    utf8 = [r.getMessage() for r in lines if "UTF-8" in r.getMessage()]
    assert len(utf8) == 1 and "\n" not in utf8[0] and "(1007)" in utf8[0]
    refused = [r.getMessage() for r in lines if "not JSON" in r.getMessage()]
    assert len(refused) == 1 and '"WebSocket /ws" closed (1003): control message is not JSON' in refused[0]


@pytest.mark.slow  # a `tsm serve` process: ~6-13 s to start on a 2-core CPU
def test_sigterm_stops_the_server_cleanly_while_a_page_streams(media, tmp_path):
    """``tsm serve`` as a user runs it, a client streaming, then SIGTERM: it exits at once
    with one line and no traceback."""
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**__import__("os").environ, "PYTHONPATH": src}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "temporal_shift.cli",
            "serve",
            "--checkpoint",
            str(media["ckpt"]),
            "--size",
            str(SIZE),
            "--short-side",
            str(SHORT),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
                time.sleep(0.2)

        async def stream_then_terminate():
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await hello(ws)
                await ws.send(SOURCE)
                for i in range(3):
                    await ws.send(encode_frame(i / FPS, media["jpegs"][0][i]))
                    await ws.recv()
                proc.send_signal(signal.SIGTERM)
                return await closed_with(ws)

        code, _ = run(stream_then_terminate())
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 1012  # "service restart": the server went away
    assert "Traceback" not in err, err
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "tsm serve: interrupted", err


def test_sigterm_while_the_demo_model_trains_is_one_line(run_cli, tmp_path, monkeypatch):
    import functools
    import types

    from temporal_shift.data import synthetic
    from temporal_shift.engine import train

    @functools.wraps(synthetic.generate_synthetic)  # the CLI reads its defaults from the signature
    def no_data(root, **kw):
        return types.SimpleNamespace(root=root, classes=root / "classes.txt")

    def interrupted(config):  # what train returns after SIGTERM: the demo stops, no traceback
        return types.SimpleNamespace(interrupted=True)

    monkeypatch.setattr(synthetic, "generate_synthetic", no_data)
    monkeypatch.setattr(train, "train", interrupted)
    code, _, err = run_cli(["serve", "--demo", "--demo-cache", tmp_path / "demo"])
    assert code == 130 and err.strip().splitlines()[-1] == "tsm serve: interrupted"


def test_cli_limits_and_allowed_hosts(run_cli):
    from temporal_shift.cli import build_parser

    args = build_parser().parse_args(
        [
            "serve",
            "--demo",
            "--max-scans",
            "4",
            "--idle-timeout",
            "9",
            "--header-timeout",
            "2",
            "--max-sockets",
            "32",
            "--max-control-rate",
            "3",
            "--decode-share",
            "0.25",
            "--allowed-host",
            "a.lan",
            "--allowed-host",
            "b",
        ]
    )
    assert (args.max_scans, args.idle_timeout, args.header_timeout, args.max_sockets) == (4, 9.0, 2.0, 32)
    assert (args.max_control_rate, args.decode_share, args.allowed_host) == (3.0, 0.25, ["a.lan", "b"])
    code, _, err = run_cli(["serve", "--demo", "--idle-timeout", "0"])
    assert code == 2 and "idle_timeout must be a positive number" in err


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
    code, _, err = run_cli(["serve"])
    assert code == 2 and "needs a causal (online) model" in err and "--demo" in err and len(err.splitlines()) == 1
    bidirectional = save_checkpoint(
        calibrated_model("resnet18", num_classes=K, n_segment=4, size=SIZE, calibration_seed=1, mode="bidirectional"),
        tmp_path / "offline.pt",
    )
    code, _, err = run_cli(["serve", "--checkpoint", bidirectional])
    assert code == 2 and str(bidirectional) in err and "causal" in err
    code, _, err = run_cli(["serve", "--checkpoint", tmp_path / "missing.pt"])
    assert code == 2 and "missing.pt" in err
    code, _, err = run_cli(["serve", "--checkpoint", media["ckpt"], "--runtime", "onnxruntime"])
    assert code == 2 and "--onnx" in err
    code, _, err = run_cli(["serve", "--checkpoint", media["ckpt"], "--fps", "90"])
    assert code == 2 and "--max-fps" in err
    for option, message in (
        ("--smooth", "smooth must be at least 1"),
        ("--hysteresis", "hysteresis must be at least 1"),
        ("--topk", "topk must be at least 1"),
        ("--max-connections", "max_connections"),
    ):
        code, _, err = run_cli(["serve", "--checkpoint", media["ckpt"], option, "0"])
        assert code == 2 and message in err, (option, err)
    code, _, err = run_cli(["serve", "--checkpoint", media["ckpt"], "--classes", tmp_path / "none.txt"])
    assert code == 2 and "none.txt" in err
    with pytest.raises(SystemExit):  # argparse: --demo or a model, not both
        run_cli(["serve", "--demo", "--checkpoint", media["ckpt"]])
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _out, err = run_cli(["serve", "--checkpoint", media["ckpt"], "--port", port])
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
        for result, record in zip(results[clip], expected, strict=True):
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
