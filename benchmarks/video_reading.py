"""Frame-exact video reading, before and after: frames wrong on the hard-encoding corpus, the
TSN-8 read time of a long mp4 and a long AVI, clips/s per decoder, and frame extraction wall time.

"Before" is another checkout's code (``--before SRC``, e.g. the main branch's ``src``): each
measurement runs in a fresh process per code version, the versions alternating round after round
(interleaved), and prints medians and interquartile ranges. The corpus is the tests' one
(tests/data/video_corpus.py); the long videos and the 20 extraction videos are written here.

    PYTHONPATH=src python benchmarks/video_reading.py write /tmp/vr
    PYTHONPATH=src python benchmarks/video_reading.py all /tmp/vr --before /work/main/src --rounds 5

TorchCodec needs FFmpeg's shared libraries; where the system has none, PyAV's own (FFmpeg 8) can
serve under their plain names (symlinks ``libavutil.so.60`` -> ``av.libs/libavutil-*.so.60...``)
with ``LD_LIBRARY_PATH`` naming that folder and ``av.libs``; clips/s is then measured for both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LONG = {  # name: write_video settings (1800 frames, 60 s at 30 frames/s, 320x240)
    "long.mp4": dict(fps=30, gop=250, bframes=3, crf=23),  # x264's default keyframe interval
    "long.avi": dict(fps=30, codec="mpeg4", gop=300, bframes=1, packed_bframes=True),  # DivX, as UCF101
}


def write(root: Path) -> None:
    """The corpus, the two long videos and 20 short ones for extraction under ``root``."""
    sys.path.insert(0, str(HERE.parent / "tests" / "data"))
    from video_corpus import CORPUS, coded_frames, write_corpus_file

    from temporal_shift.data.encode import write_video

    (root / "corpus").mkdir(parents=True, exist_ok=True)
    for item in CORPUS:
        write_corpus_file(root / "corpus", item)
    for name, settings in LONG.items():
        write_video(root / name, coded_frames(1800, height=240, width=320), **settings)  # type: ignore[arg-type]
    (root / "twenty").mkdir(exist_ok=True)
    for i in range(20):
        suffix, settings = (".mp4", dict(bframes=2, gop=48)) if i % 2 else (".avi", dict(codec="mpeg4", bframes=2))
        write_video(root / "twenty" / f"v{i:02d}{suffix}", coded_frames(150, height=240, width=320), **settings)  # type: ignore[arg-type]


def frames_wrong(root: Path) -> dict[str, object]:
    """Per corpus file: frames that a one-frame read (random access) returns other than sequential
    decoding's, turned upright; the frame count the reader states; and a TSN-8 read's wrong frames."""
    sys.path.insert(0, str(HERE.parent / "tests" / "data"))
    from video_corpus import BY_NAME, sequential_frames

    from temporal_shift.data.decode import read_video, video_frame_count
    from temporal_shift.data.sampling import TSNSampler

    out: dict[str, object] = {}
    for name, item in BY_NAME.items():
        path = root / "corpus" / name
        expected = np.asarray(sequential_frames(path, upright_turns=item.upright_turns)).transpose(0, 3, 1, 2)
        n = len(expected)

        tsn = TSNSampler(n_segment=8, train=False)(n)[0].tolist()
        out[name] = {
            "frames": n,
            "count": video_frame_count(path),
            "wrong_one_by_one": sum(_wrong(read_video, path, [i], expected) for i in range(n)),
            "wrong_tsn8": _wrong(read_video, path, tsn, expected),
        }
    return out


def _wrong(read_video: Callable, path: Path, indices: list[int], expected: np.ndarray) -> int:
    """How many of ``indices`` ``read_video`` returns other than ``expected`` (all when it fails)."""
    try:
        got = read_video(path, indices).numpy()
    except Exception:
        return len(indices)
    pairs = zip(got, expected[indices], strict=True)
    return sum(g.shape != e.shape or not np.array_equal(g, e) for g, e in pairs)


def read_time(root: Path, *, decoder: str = "pyav", reads: int = 20) -> dict[str, dict[str, float]]:
    """Seconds per TSN-8 training read (random offsets) of each long video: the first read of the
    process (which indexes the file) and the median of the next ``reads``."""
    import inspect

    from temporal_shift.data.decode import read_video
    from temporal_shift.data.sampling import TSNSampler

    kwargs = {"decoder": decoder} if "decoder" in inspect.signature(read_video).parameters else {}
    sampler = TSNSampler(n_segment=8, train=True)
    rng = np.random.default_rng(0)
    out = {}
    for name in LONG:
        times = []
        for _ in range(reads + 1):
            indices = sampler(1800, generator=rng)[0].tolist()
            start = time.perf_counter()
            try:
                read_video(root / name, indices, **kwargs)
            except ValueError as exc:  # TorchCodec refuses files it cannot read frame-exactly
                print(exc, file=sys.stderr)
                break
            times.append(time.perf_counter() - start)
        else:
            out[name] = {
                "first_s": times[0],
                "median_s": statistics.median(times[1:]),
                "clips_per_s": 1 / statistics.median(times[1:]),
            }
    return out


def extract_time(root: Path, out: Path) -> dict[str, float]:
    """Wall seconds of `extract_frames` on the 20 videos, one worker, into a fresh folder."""
    import shutil

    from temporal_shift.data.extract import extract_frames

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = extract_frames(root / "twenty", out, short_side=None, workers=1, progress=False)
    seconds = time.perf_counter() - start
    assert result.extracted == 20 and not result.failed, result
    shutil.rmtree(out)
    return {"extract_s": seconds}


def _child(args: list[str], src: str) -> dict:
    env = dict(os.environ, PYTHONPATH=src)
    done = subprocess.run([sys.executable, __file__, *args], env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _summary(values: list[float]) -> str:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return f"median {median:.4f} (IQR {q1:.4f}-{q3:.4f}, n={len(values)})"


def compare(root: Path, *, before: str, rounds: int, decoders: list[str]) -> None:
    after = str(HERE.parent / "src")
    print("frames wrong:", json.dumps({"before": _child(["wrong", str(root)], before)}), flush=True)
    print("frames wrong:", json.dumps({"after": _child(["wrong", str(root)], after)}), flush=True)
    runs: dict[str, list[dict]] = {}
    for _ in range(rounds):
        for label, src in (("before", before), ("after", after)):
            runs.setdefault(f"read {label}", []).append(_child(["time", str(root)], src))
            runs.setdefault(f"extract {label}", []).append(_child(["extract", str(root)], src))
        for decoder in decoders:
            runs.setdefault(f"read after {decoder}", []).append(
                _child(["time", str(root), "--decoder", decoder], after)
            )
    for key, values in runs.items():
        for field in values[0]:
            if any(field not in v for v in values):
                continue
            if isinstance(values[0][field], dict):
                for stat in values[0][field]:
                    print(key, field, stat, _summary([v[field][stat] for v in values]))
            else:
                print(key, field, _summary([v[field] for v in values]))
    print("load:", os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("write", "wrong", "time", "extract", "all"))
    p.add_argument("root", type=Path)
    p.add_argument("--before", default=None, help="the src folder of the code to compare with")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--decoder", default="pyav")
    p.add_argument("--decoders", nargs="*", default=["pyav", "torchcodec"])
    a = p.parse_args()
    if a.what == "write":
        write(a.root)
    elif a.what == "wrong":
        print(json.dumps(frames_wrong(a.root)))
    elif a.what == "time":
        print(json.dumps(read_time(a.root, decoder=a.decoder)))
    elif a.what == "extract":
        print(json.dumps(extract_time(a.root, a.root / f"frames-{os.getpid()}")))
    else:
        if a.before is None:
            p.error("all needs --before SRC")
        compare(a.root, before=a.before, rounds=a.rounds, decoders=a.decoders)


if __name__ == "__main__":
    main()
