"""tsm serve, checkpoint files and downloads under attack: what each attack does, and what a
good client sees meanwhile.

Runs every attack of issue #25 against one source tree (``--src``: this checkout's ``src`` by
default; give the tree of an older commit to measure "before"), on loopback only:

- ``tsm serve`` (a separate process, as a user runs it: an online TSM-MobileNetV2 at 112x112
  on torch, untrained, default limits) while a page-like *good client* streams frames
  stop-and-wait all along; for each attack: its outcome, and the good client's frames, p95
  and max round trip (ms) during it. Attacks: progressive JPEGs of 30,000 scans, 50
  half-open requests (the page's GET / status and latency meanwhile), a DNS-rebinding
  handshake and page request, 4 idle connections holding every slot (when a newcomer is
  served), 20,000 control messages, a truncated JPEG with an end marker appended, an
  invalid-UTF-8 text frame (log lines it causes), 2,000 bad messages (the server's RSS
  before, after 1,000 and after 2,000), then SIGTERM (exit status, traceback or not);
- checkpoint files, read with ``read_checkpoint`` in a subprocess: a pickle with a
  code-running ``__reduce__`` (the message), a 1 MB deflate-compressed checkpoint that
  inflates to 1 GiB (outcome, peak RSS);
- downloads with ``download_weights`` in subprocesses against a loopback HTTP server: a
  download resumed after the upstream file changed (stitched or not), two concurrent
  downloads of one file, a URL ending in ``/`` (where the partial file goes), and
  ``file:///dev/zero`` (bytes written in 1.5 s).

Prints a table and writes JSON (``--json``); the load average is recorded with it (the
machine may be shared).

    python benchmarks/serve_attacks.py [--src DIR] [--label after] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import hashlib
import http.server
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1] / "src"
SIZE, SHORT = 112, 128


def percentile(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_in(src: Path, code: str, *, timeout: float = 600, cwd: Path | None = None) -> dict:
    """Run ``code`` (which prints one JSON line last) in a fresh interpreter on ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]}
    return json.loads(lines[-1])


# --- the good client ---------------------------------------------------------------------


def good_client_main(url: str, samples: Path) -> None:
    """The good client's own process (``--good-client URL --samples FILE``): a page-like client
    streaming frames stop-and-wait (at most ~25 frames/s) until SIGTERM, reconnecting when
    turned away; one JSON line per round trip or refusal, stamped with the system-wide
    monotonic clock, so that the attacks' process can cut them by phase."""
    from websockets.asyncio.client import connect

    from temporal_shift.apps.serve.protocol import encode_frame

    frames = frames_for(30)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))

    async def run() -> None:
        i = 0
        with samples.open("a") as out:
            while not stopping:
                try:
                    async with connect(url, max_size=None, open_timeout=10) as ws:
                        hello = json.loads(await ws.recv())
                        assert hello["type"] == "hello"
                        await ws.send(json.dumps({"type": "source", "kind": "camera", "fps": 25}))
                        k = 0
                        while not stopping:
                            t0 = time.perf_counter()
                            await ws.send(encode_frame(k / 25, frames[i % len(frames)]))
                            message = json.loads(await ws.recv())
                            assert message["type"] == "result", message
                            out.write(
                                json.dumps({"t": time.monotonic(), "rtt": (time.perf_counter() - t0) * 1e3}) + "\n"
                            )
                            out.flush()
                            i += 1
                            k += 1
                            await asyncio.sleep(0.02)
                except Exception as exc:  # turned away (1013) or closed: try again
                    out.write(
                        json.dumps({"t": time.monotonic(), "refused": f"{type(exc).__name__}: {exc}"[:100]}) + "\n"
                    )
                    out.flush()
                    await asyncio.sleep(0.5)

    asyncio.run(run())


class GoodClient:
    """`good_client_main` in a process of its own (its round trips are not slowed by the
    attackers' threads in this one)."""

    def __init__(self, url: str, work: Path) -> None:
        self.url, self.samples = url, work / "good.jsonl"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(HERE)}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--good-client", self.url, "--samples", str(self.samples)], env=env
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def events(self) -> list[dict]:
        if not self.samples.exists():
            return []
        return [json.loads(line) for line in self.samples.read_text().splitlines() if line.strip()]

    def first_result_after(self, t: float) -> float | None:
        return next((e["t"] for e in self.events() if "rtt" in e and e["t"] >= t), None)

    def figures(self, t0: float, t1: float) -> dict:
        events = [e for e in self.events() if t0 <= e["t"] <= t1]
        rtts = [e["rtt"] for e in events if "rtt" in e]
        return {
            "frames": len(rtts),
            "p95_ms": round(percentile(rtts, 95), 1),
            "max_ms": round(max(rtts), 1) if rtts else None,
            "median_ms": round(statistics.median(rtts), 1) if rtts else None,
            "refused": sum(1 for e in events if "refused" in e),
        }


# --- the server ---------------------------------------------------------------------------


class Server:
    def __init__(self, src: Path, work: Path) -> None:
        from temporal_shift import build_model, save_checkpoint

        self.src, self.work = src, work
        self.ckpt = work / "mbv2.pt"
        if not self.ckpt.exists():
            import torch

            torch.manual_seed(0)
            save_checkpoint(build_model("mobilenet_v2", num_classes=27, n_segment=8, mode="causal"), self.ckpt)
        self.port = free_port()
        self.log = work / f"serve-{self.port}.log"
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "temporal_shift.cli",
                "serve",
                "--checkpoint",
                str(self.ckpt),
                "--size",
                str(SIZE),
                "--short-side",
                str(SHORT),
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        import urllib.request

        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tsm serve did not start:\n{self.log.read_text()}") from None
                time.sleep(0.5)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def frames_for(count: int) -> list[bytes]:
    import simplejpeg

    from temporal_shift.data.synthetic import render_clip

    clip, _ = render_clip(0, rng=np.random.default_rng(0), size=(SHORT, SHORT * 4 // 3), frames=count)
    return [simplejpeg.encode_jpeg(np.ascontiguousarray(f), quality=85) for f in clip]


# --- serve attacks --------------------------------------------------------------------------


def raw_exchange(port: int, messages, *, headers=None, results: int = 0, timeout: float = 60) -> dict:
    """One hostile WebSocket session: status, results, close, seconds."""
    from temporal_shift.apps.serve.attacks import RawWebSocket

    started = time.perf_counter()
    with RawWebSocket("127.0.0.1", port, headers=headers, timeout=timeout) as ws:
        if not ws.open:
            return {"status": ws.status, "seconds": round(time.perf_counter() - started, 3)}
        ws.recv_frame()  # hello
        for m in messages:
            if isinstance(m, bytes):
                ws.send_frame(0x2, m)
            else:
                ws.send_text(m.encode() if isinstance(m, str) else m)
        got = []
        closed = None
        for _ in range(results):
            opcode, payload = ws.recv_frame()
            if opcode == 0x8:
                closed = (int.from_bytes(payload[:2], "big"), payload[2:].decode(errors="replace"))
                break
            got.append(json.loads(payload))
        if closed is None and not results:
            _, c = ws.until_closed()
            closed = (c.code, c.reason)
        return {
            "status": ws.status,
            "results": len(got),
            "closed": closed,
            "seconds": round(time.perf_counter() - started, 3),
        }


SOURCE = json.dumps({"type": "source", "kind": "camera", "fps": 25})


async def serve_attacks(server: Server, good: GoodClient, *, bad_messages: int, report: dict) -> None:
    from temporal_shift.apps.serve.attacks import half_open, progressive_jpeg, truncated_jpeg
    from temporal_shift.apps.serve.protocol import encode_frame

    port = server.port
    rows = report["serve"] = {}
    good.start()
    while good.first_result_after(0.0) is None:  # the good client is streaming
        await asyncio.sleep(0.25)

    async def phase(name: str, attack, *, settle: float = 1.0):
        started = time.monotonic()
        outcome = await attack()
        await asyncio.sleep(settle)
        rows[name] = {
            "outcome": outcome,
            "seconds": round(time.monotonic() - started, 2),
            "good_client": good.figures(started, time.monotonic()),
        }
        print(f"{name}: {outcome} | good client {rows[name]['good_client']}", flush=True)

    await phase("quiet", lambda: asyncio.sleep(4))

    bomb = progressive_jpeg(30_000)

    async def scans():
        def one(i):
            return raw_exchange(port, [SOURCE, encode_frame(0.0, bomb)], results=1, timeout=120)

        results = await asyncio.gather(*(asyncio.to_thread(one, i) for i in range(3)))
        return {
            "bytes": len(bomb),
            "accepted": sum(r.get("results", 0) for r in results),
            "closes": [r.get("closed") for r in results],
            "attacker_s": [r["seconds"] for r in results],
        }

    await phase("progressive_30000_scans_x3", scans)

    async def half_open_attack():
        import urllib.error
        import urllib.request

        sockets = await asyncio.to_thread(half_open, "127.0.0.1", port, 50)
        statuses, latencies = [], []
        try:
            end = time.monotonic() + 5
            while time.monotonic() < end:
                t0 = time.perf_counter()
                try:
                    with await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/", None, 5) as r:
                        statuses.append(r.status)
                except urllib.error.HTTPError as exc:
                    statuses.append(exc.code)
                except OSError as exc:
                    statuses.append(type(exc).__name__)
                latencies.append((time.perf_counter() - t0) * 1e3)
                await asyncio.sleep(0.2)
            open_after = 0
            for s in sockets:  # the server hung up?
                s.setblocking(False)
                try:
                    open_after += s.recv(1) != b""
                except BlockingIOError:
                    open_after += 1
                except OSError:
                    pass
        finally:
            for s in sockets:
                s.close()
        return {
            "page_statuses": {str(k): statuses.count(k) for k in set(statuses)},
            "page_p95_ms": round(percentile(latencies, 95), 1),
            "half_open_still_open_after_5s": open_after,
        }

    await phase("half_open_x50", half_open_attack)

    async def rebinding():
        import urllib.error
        import urllib.request

        from temporal_shift.apps.serve.attacks import RawWebSocket

        evil = f"evil.example:{port}"
        with RawWebSocket("127.0.0.1", port, headers={"Host": evil, "Origin": f"http://{evil}"}) as raw:
            handshake = raw.status
        request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Host": evil})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                page = r.status
        except urllib.error.HTTPError as exc:
            page = exc.code
        return {"handshake_status": handshake, "health_status": page}

    await phase("dns_rebinding", rebinding)

    async def idle_slots():
        from websockets.asyncio.client import connect

        good.stop()  # the good client leaves; four idle connections take every slot; it comes back
        held = [await connect(server.ws_url) for _ in range(4)]
        for ws in held:
            await ws.recv()
        started = time.monotonic()
        good.start()
        while time.monotonic() < started + 40 and good.first_result_after(started) is None:
            await asyncio.sleep(0.25)
        served = good.first_result_after(started)
        closes = []
        for ws in held:
            closes.append(ws.close_code)
            await ws.close()
        return {
            "newcomer_served_after_s": round(served - started, 1) if served else "not within 40 s",
            "idle_close_codes": closes,
        }

    await phase("idle_slots_x4", idle_slots)

    async def text_flood():
        flood = [json.dumps({"type": "reset"})] * 20_000

        def go():
            from temporal_shift.apps.serve.attacks import RawWebSocket

            with RawWebSocket("127.0.0.1", port) as ws:
                ws.recv_frame()
                sent = 0
                try:
                    for m in [SOURCE, *flood]:
                        ws.send_text(m)
                        sent += 1
                except OSError:
                    pass
                started = time.perf_counter()
                _, closed = ws.until_closed()  # None: still open when the socket timed out (10 s)
                return {
                    "sent": sent,
                    "closed": (closed.code, closed.reason) if closed.code else "not within 10 s",
                    "close_after_s": round(time.perf_counter() - started, 2),
                }

        return await asyncio.to_thread(go)

    await phase("control_flood_20000", text_flood, settle=2.0)

    truncated = truncated_jpeg(frames_for(1)[0])

    async def cut():
        return await asyncio.to_thread(
            raw_exchange, port, [SOURCE, encode_frame(0.0, truncated)], results=1, timeout=30
        )

    await phase("truncated_jpeg_plus_eoi", cut)

    async def utf8():
        before = server.log_text().count("\n")
        from temporal_shift.apps.serve.attacks import RawWebSocket

        def go():
            with RawWebSocket("127.0.0.1", port) as ws:
                ws.recv_frame()
                ws.send_text(b"\xff\xfe")
                _, closed = ws.until_closed()
                return closed.code

        code = await asyncio.to_thread(go)
        await asyncio.sleep(0.5)
        added = server.log_text().splitlines()[before:]
        return {"close_code": code, "log_lines": len(added), "traceback": any("Traceback" in x for x in added)}

    await phase("invalid_utf8", utf8)

    async def many_bad():
        from temporal_shift.apps.serve.attacks import RawWebSocket

        small_bomb = progressive_jpeg(300, side=256)
        kinds = [
            ["not json"],
            [json.dumps({"type": "source", "fps": "fast"})],
            [SOURCE, b"\x00\x01"],
            [SOURCE, encode_frame(0.0, truncated)],
            [SOURCE, encode_frame(0.0, small_bomb)],
            [SOURCE, encode_frame(0.0, b"GIF89a")],
            "invalid utf-8",
        ]
        rss = [rss_mb(server.proc.pid)]
        outcomes: dict[str, int] = {}

        def go(i):
            kind = kinds[i % len(kinds)]
            if kind == "invalid utf-8":
                with RawWebSocket("127.0.0.1", port) as ws:
                    ws.recv_frame()
                    ws.send_text(b"\xff\xfe")
                    code = ws.until_closed()[1].code
            else:
                r = raw_exchange(port, kind, results=1, timeout=30)
                code = r["closed"][0] if r.get("closed") else ("result" if r.get("results") else r.get("status"))
            outcomes[str(code)] = outcomes.get(str(code), 0) + 1

        def sender(first: int):  # 3 at a time: the fourth slot stays the good client's
            for i in range(first, bad_messages, 3):
                go(i)
                if i + 3 >= bad_messages // 2 > i:
                    rss.append(rss_mb(server.proc.pid))

        await asyncio.gather(*(asyncio.to_thread(sender, k) for k in range(3)))
        rss.append(rss_mb(server.proc.pid))
        return {
            "messages": bad_messages,
            "outcomes": outcomes,
            "server_rss_mb": [round(x, 1) for x in (rss[0], rss[len(rss) // 2], rss[-1])],
        }

    await phase("bad_messages_2000", many_bad)
    good.stop()


def sigterm(server: Server) -> dict:
    before = len(server.log_text())
    server.proc.send_signal(signal.SIGTERM)
    try:
        rc = server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        rc = "killed after 30 s"
    text = server.log_text()[before:]  # what stopping wrote
    return {
        "exit_status": rc,
        "traceback": "Traceback" in text,
        "last_line": (text.strip().splitlines() or [""])[-1][:120],
    }


# --- checkpoints ---------------------------------------------------------------------------------


def checkpoint_attacks(src: Path, work: Path) -> dict:
    import zipfile

    import torch

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {work / 'pwned'}",))

    evil = work / "evil.pt"
    torch.save({"state_dict": {}, "x": RunsCode()}, evil)
    bomb = work / "bomb.pt"
    if not bomb.exists():
        big = work / "big.pt"
        torch.save({"w": torch.zeros(1 << 28)}, big)  # 1 GiB of zeros
        with zipfile.ZipFile(big) as a, zipfile.ZipFile(bomb, "w") as b:
            for info in a.infolist():
                b.writestr(
                    info.filename,
                    a.read(info.filename),
                    compress_type=zipfile.ZIP_DEFLATED if "/data/" in info.filename else zipfile.ZIP_STORED,
                    compresslevel=9,
                )
        big.unlink()
    code = """
        import json, sys, time
        from temporal_shift.checkpoint.format import read_checkpoint
        t = time.perf_counter()
        try:
            data = read_checkpoint(sys.argv[1] if len(sys.argv) > 1 else %r)
            outcome = "loaded: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in data.items() if hasattr(v, "shape"))
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {str(exc)[:300]}"
        hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0].split()[1]
        print(json.dumps({"outcome": outcome, "seconds": round(time.perf_counter() - t, 2),
                          "peak_rss_mb": round(int(hwm) / 1024)}))
    """
    return {
        "code_running_pickle": {**run_in(src, code % str(evil)), "ran": (work / "pwned").exists()},
        "deflate_bomb": {"file_mb": round(bomb.stat().st_size / 2**20, 2), **run_in(src, code % str(bomb))},
    }


# --- downloads -----------------------------------------------------------------------------------


class FileServer:
    """Loopback HTTP for the download attacks: versions with ETags, Range/If-Range honoured,
    the first answer cut short, a slow mode for the concurrent downloads."""

    def __init__(self, payloads: dict[str, bytes]) -> None:
        self.payloads, self.cut, self.then, self.delay = dict(payloads), set(), {}, 0.0
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # http.server names it
                path = self.path
                outer.requests.append((path, self.headers.get("Range")))
                body = outer.payloads.get(path)
                if body is None:
                    self.send_error(404)
                    return
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and self.headers.get("If-Range") not in (None, etag):
                    match = None
                start = int(match.group(1)) if match else 0
                part = body[start:]
                self.send_response(206 if match else 200)
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", email.utils.formatdate(1_700_000_000, usegmt=True))
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                if path in outer.cut:
                    outer.cut.discard(path)
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                else:
                    for i in range(0, len(part), 1 << 16):
                        self.wfile.write(part[i : i + (1 << 16)])
                        if outer.delay:
                            time.sleep(outer.delay)
                if path in outer.then:
                    outer.payloads[path] = outer.then.pop(path)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


DOWNLOAD = """
    import json, sys, time
    from temporal_shift.hub.published import PublishedWeights
    from temporal_shift.hub.weights import download_weights
    from temporal_shift.models.config import ModelConfig
    url, cache = sys.argv[1], sys.argv[2]
    entry = PublishedWeights(name="attack_tsm_mobilenetv2_jester", url=url,
                             model=ModelConfig(arch="mobilenet_v2", num_classes=27, n_segment=8), dataset="jester",
                             accuracies=(), gmacs=2.4, sources=())
    t = time.perf_counter()
    try:
        path = download_weights(entry, cache_dir=cache, progress=False, retries=%d, backoff=0)
        outcome = "ok " + str(path)
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {str(exc)[:240]}"
    print(json.dumps({"outcome": outcome, "seconds": round(time.perf_counter() - t, 2)}))
"""


def download_in(src: Path, url: str, cache: Path, *, retries: int = 3, timeout: float = 300) -> subprocess.Popen:
    code = textwrap.dedent(DOWNLOAD % retries)
    return subprocess.Popen(
        [sys.executable, "-c", code, url, str(cache)],
        env={**os.environ, "PYTHONPATH": str(src)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def outcome_of(proc: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"outcome": (err.strip().splitlines() or ["?"])[-1][:240]}


def download_attacks(src: Path, work: Path) -> dict:
    import torch

    # two versions of a published file: the reference release's TSM-MobileNetV2 key layout
    # (tests/fixtures/reference_release), 27 classes, random weights
    keys = json.loads((HERE.parent / "tests" / "fixtures" / "reference_release" / "keys.json").read_text())
    shapes = dict(
        keys["mobilenetv2"], **{"new_fc.weight": [27, keys["mobilenetv2"]["new_fc.weight"][1]], "new_fc.bias": [27]}
    )
    files = []
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        state = {
            f"module.{k}": torch.randn(shape, generator=g) if shape else torch.tensor(1) for k, shape in shapes.items()
        }
        path = work / f"release{seed}.pth"
        torch.save({"epoch": 1, "arch": "mobilenetv2", "state_dict": state}, path)
        files.append(path.read_bytes())
    v1, v2 = files
    rows: dict[str, dict] = {}
    server = FileServer({"/changed/w.pth": v1, "/slow/w.pth": v1, "/": v1})
    try:
        # resumed after the upstream file changed: the first answer breaks half-way, then v2 is served
        server.cut.add("/changed/w.pth")
        server.then["/changed/w.pth"] = v2
        cache = work / "dl-changed"
        result = outcome_of(download_in(src, server.url("/changed/w.pth"), cache))
        got = (cache / "w.pth").read_bytes() if (cache / "w.pth").exists() else b""
        rows["changed_upstream"] = {
            **result,
            "file": "v2 whole" if got == v2 else "v1 whole" if got == v1 else ("stitched v1+v2" if got else "none"),
            "ranges_asked": [r for _, r in server.requests if _ == "/changed/w.pth"],
        }
        # two downloads of the same file at once (two processes), over a slow link
        server.delay = 0.004
        cache = work / "dl-concurrent"
        procs = [download_in(src, server.url("/slow/w.pth"), cache)]
        time.sleep(1.0)
        procs.append(download_in(src, server.url("/slow/w.pth"), cache))
        results = [outcome_of(p) for p in procs]
        server.delay = 0.0
        rows["concurrent_x2"] = {
            "outcomes": [r["outcome"][:160] for r in results],
            "both_ok": all(r["outcome"].startswith("ok") for r in results),
            "transfers": sum(1 for p, _ in server.requests if p == "/slow/w.pth"),
        }
        # a URL ending in /
        base = work / "dl-slash"
        cache = base / "cache"
        result = outcome_of(download_in(src, server.url("/"), cache))
        outside = sorted(str(p.relative_to(base)) for p in base.rglob("*") if cache not in p.parents and p != cache)
        rows["url_ending_in_slash"] = {**result, "written_outside_the_cache": outside}
    finally:
        server.httpd.shutdown()
    # file:///dev/zero: stopped at once, or killed after 2 GiB or 30 s
    cache = work / "dl-zero"
    proc = download_in(src, "file:///dev/zero", cache, retries=0)
    started, written = time.monotonic(), 0
    while proc.poll() is None and written < 2 << 30 and time.monotonic() < started + 30:
        time.sleep(0.1)
        written = sum(p.stat().st_size for p in cache.glob("*")) if cache.exists() else 0
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        out = {"outcome": f"still writing after {time.monotonic() - started:.1f} s (killed)"}
    else:
        out = outcome_of(proc)
    rows["file_dev_zero"] = {**out, "bytes_written": written}
    for p in cache.glob("*"):
        p.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=HERE, help="the source tree to attack (default: this one's)")
    parser.add_argument("--label", default="after")
    parser.add_argument("--bad-messages", type=int, default=2000)
    parser.add_argument("--skip", nargs="*", default=[], choices=("serve", "checkpoints", "downloads"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--good-client", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.good_client:
        good_client_main(args.good_client, args.samples)
        return
    src = args.src.resolve()
    report: dict = {
        "label": args.label,
        "src": str(src),
        "cpu_count": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
    }
    work = Path(tempfile.mkdtemp(prefix="tsm-attacks-"))
    if "serve" not in args.skip:
        server = Server(src, work)
        good = GoodClient(server.ws_url, work)

        try:
            asyncio.run(serve_attacks(server, good, bad_messages=args.bad_messages, report=report))
        finally:
            report["sigterm"] = sigterm(server)
            print("sigterm:", report["sigterm"], flush=True)
    if "checkpoints" not in args.skip:
        report["checkpoints"] = checkpoint_attacks(src, work)
        print("checkpoints:", json.dumps(report["checkpoints"], indent=1), flush=True)
    if "downloads" not in args.skip:
        report["downloads"] = download_attacks(src, work)
        print("downloads:", json.dumps(report["downloads"], indent=1), flush=True)
    report["loadavg_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
