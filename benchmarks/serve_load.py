"""tsm serve under load: end-to-end frames/s and latency next to the bare model step.

The setting measured in docs/serve.md: the online TSM-MobileNetV2 at 224x224 through onnxruntime
(untrained weights: the timing does not depend on them), the server a separate process
(``tsm serve``, as a user runs it), clients on loopback sending 256-short-side JPEG frames
as the page does. In one run, in interleaved rounds:

- ``bare``: the model step alone (`export.OnnxStream.update` in this process, the server idle);
- ``one client``: one page-like client, stop-and-wait (the next frame when the result is
  back): frames/s end to end, round trip, the server's model step, and the added latency
  (round trip minus the model step, per frame: decoding, preprocessing, smoothing, the
  WebSocket both ways);

then ``load``: 8 concurrent clients for a few seconds: frames/s per client, p95 round trip,
errors, and the server's resident memory before and after (growth). With ``--browser`` the
page itself is measured too: headless Chromium, fake camera, the page's own frames/s and
round trip (canvas grab + JPEG encoding in the browser included).

Prints a table and writes JSON (``--json``); the load average is recorded with the figures
(the machine may be shared).

    python benchmarks/serve_load.py [--rounds 5] [--frames 60] [--clients 8] [--seconds 4] [--browser] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch


def median_iqr(values):
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return {"median": round(float(q2), 3), "q1": round(float(q1), 3), "q3": round(float(q3), 3)}


def make_frames(count: int, *, short_side: int) -> list[bytes]:
    """JPEG frames of a synthetic clip at the page's size (short side ``short_side``, 4:3)."""
    import simplejpeg

    from temporal_shift.data.synthetic import render_clip

    clip, _ = render_clip(0, rng=np.random.default_rng(0), size=(short_side, short_side * 4 // 3), frames=count)
    return [simplejpeg.encode_jpeg(np.ascontiguousarray(f), quality=85) for f in clip]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args_list: list[str], *, port: int, log: Path) -> subprocess.Popen:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "temporal_shift.cli", "serve", *args_list, "--port", str(port)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tsm serve did not start:\n{log.read_text()}") from None
            time.sleep(0.5)


def browser_figures(url: str, *, seconds: float, fps: int, work: Path) -> dict:
    """The page's own frames/s and round trip with Chromium's fake camera (640x480)."""
    from selenium.webdriver.support.ui import Select

    from temporal_shift.apps.serve.browser import Browser, open_page, page_state, start_camera, wait_for, write_y4m

    clip = np.zeros((30, 480, 640, 3), np.uint8)
    clip[..., 0] = np.linspace(0, 255, 30, dtype=np.uint8)[:, None, None]
    camera = write_y4m(work / "camera.y4m", clip, fps=30)
    with Browser(fake_camera=camera) as browser:
        driver = browser.driver
        open_page(driver, url)
        Select(driver.find_element("id", "fps")).select_by_value(str(fps))
        start_camera(driver)
        wait_for(driver, lambda s: s["frames"] >= 20, timeout=60, what="20 results")
        start = page_state(driver)
        time.sleep(seconds)
        end = page_state(driver)
    frames = end["frames"] - start["frames"]
    return {
        "sampling_fps": end["fps"],
        "page_fps": round(frames / seconds, 2),
        "skipped": end["skipped"] - start["skipped"],
        "rtt_ms_median_last30": round(statistics.median(end["rtts"]), 3),
        "step_ms_median_last30": round(statistics.median(end["models"]), 3),
        "resets": end["resets"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=60, help="frames per round (bare steps and client frames)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of the load phase (twice)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--browser", action="store_true", help="also measure the page in headless Chromium")
    parser.add_argument("--browser-fps", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from temporal_shift import build_model, save_checkpoint
    from temporal_shift.apps.serve.load import rss_mb, run_clients, stream_client
    from temporal_shift.checkpoint.loading import load_online
    from temporal_shift.engine.export import OnnxStream, export_online

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="tsm-serve-bench-"))
    torch.manual_seed(0)
    ckpt = save_checkpoint(build_model("mobilenet_v2", num_classes=27, n_segment=8, mode="causal"), work / "mbv2.pt")
    onnx = export_online(load_online(ckpt), work / "step.onnx", size=args.size)
    short = round(args.size * 8 / 7)
    frames = make_frames(args.frames, short_side=short)
    port = free_port()
    server = start_server(
        [
            "--checkpoint",
            str(ckpt),
            "--runtime",
            "onnxruntime",
            "--onnx",
            str(onnx),
            "--size",
            str(args.size),
            "--max-connections",
            str(max(8, args.clients)),
            "--fps",
            "30",
        ],
        port=port,
        log=work / "serve.log",
    )
    url = f"ws://127.0.0.1:{port}/ws"
    try:
        bare_stream = OnnxStream(onnx)
        x = torch.randn(3, args.size, args.size)
        for _ in range(5):
            bare_stream.update(x)
        rounds = []
        for r in range(args.rounds):  # interleaved: bare steps, then one client, each round
            bare = []
            for _ in range(args.frames):
                t0 = time.perf_counter()
                bare_stream.update(x)
                bare.append((time.perf_counter() - t0) * 1e3)
            client = asyncio.run(stream_client(url, frames, seconds=args.frames / 25.0, fps=25.0))
            if client.error:
                raise RuntimeError(client.error)
            added = [a - b for a, b in zip(client.rtt_ms, client.step_ms, strict=True)]
            rounds.append(
                {
                    "bare_ms": statistics.median(bare),
                    "fps": client.fps,
                    "rtt_ms": statistics.median(client.rtt_ms),
                    "step_ms": statistics.median(client.step_ms),
                    "server_ms": statistics.median(client.server_ms),
                    "added_ms": statistics.median(added),
                    "rtt_over_bare": statistics.median(client.rtt_ms) / statistics.median(bare),
                }
            )
            print(
                f"round {r + 1}: bare {rounds[-1]['bare_ms']:.2f} ms, client {client.fps:.1f} frames/s, "
                f"round trip {rounds[-1]['rtt_ms']:.2f} ms, server step {rounds[-1]['step_ms']:.2f} ms, "
                f"added {rounds[-1]['added_ms']:.2f} ms",
                flush=True,
            )
        load = []
        rss = [rss_mb(server.pid)]
        for _ in range(2):
            results = asyncio.run(run_clients(url, frames, clients=args.clients, seconds=args.seconds))
            load.append([res.summary() for res in results])
            rss.append(rss_mb(server.pid))
        page = (
            browser_figures(f"http://127.0.0.1:{port}/", seconds=8, fps=args.browser_fps, work=work)
            if args.browser
            else None
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    load_after = os.getloadavg()
    one = {k: median_iqr([r[k] for r in rounds]) for k in rounds[0]}
    last = load[-1]
    report = {
        "setting": f"online TSM-MobileNetV2 {args.size}x{args.size}, onnxruntime, server process on loopback, "
        f"JPEG frames {short} short side",
        "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "one_client_rounds": rounds,
        "one_client": one,
        "load": {
            "clients": args.clients,
            "seconds": args.seconds,
            "per_client_last_phase": last,
            "errors": sum(1 for phase in load for c in phase if c["error"]),
            "fps_per_client_median": statistics.median(c["fps"] for c in last),
            "total_fps": round(sum(c["fps"] for c in last), 2),
            "rtt_ms_p95_max": max(c["rtt_ms_p95"] for c in last),
            "server_rss_mb": [round(v, 1) for v in rss],
            "rss_growth_mb_second_phase": round(rss[2] - rss[1], 1),
        },
        "page": page,
    }
    print(json.dumps(report, indent=2))
    print(
        f"\none client: {one['fps']['median']:.1f} frames/s (IQR {one['fps']['q1']:.1f}-{one['fps']['q3']:.1f}), "
        f"bare step {one['bare_ms']['median']:.2f} ms, server step {one['step_ms']['median']:.2f} ms, "
        f"round trip {one['rtt_ms']['median']:.2f} ms, added {one['added_ms']['median']:.2f} ms "
        f"(IQR {one['added_ms']['q1']:.2f}-{one['added_ms']['q3']:.2f}) over {args.rounds} rounds"
    )
    print(
        f"{args.clients} clients: {report['load']['fps_per_client_median']:.1f} frames/s each "
        f"({report['load']['total_fps']:.1f} total), p95 round trip <= {report['load']['rtt_ms_p95_max']:.1f} ms, "
        f"{report['load']['errors']} errors, server RSS {report['load']['server_rss_mb']} MB"
    )
    if page:
        print(
            f"page (Chromium, fake camera, sampling {page['sampling_fps']}/s): {page['page_fps']} frames/s, "
            f"round trip {page['rtt_ms_median_last30']} ms, model step {page['step_ms_median_last30']} ms"
        )
    print(f"load average before {load_before}, after {load_after} ({os.cpu_count()} CPUs)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
