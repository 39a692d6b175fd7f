"""`tsm bench compare`: the efficiency table of the comparison models, measured side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from temporal_shift.apps.bench.compare import (
    CONTENDERS,
    PUBLISHED_ONLY,
    benchmark_compare,
    build_contender,
    parse_names,
    plot_compare,
)
from temporal_shift.models.factory import FAMILIES

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["tsm", "tsn", "single_frame"]  # ResNet-50 2D models: quick at 32 px


def test_every_contender_builds_as_a_known_family() -> None:
    for name, contender in CONTENDERS.items():
        family = contender.options.get("family", "tsn")
        if family not in FAMILIES:  # pragma: no cover - only while a family is being added
            pytest.fail(f"contender {name} names family {family!r}, which is not in FAMILIES")
        assert build_contender(name, num_classes=2).config.n_segment == contender.frames


def test_parse_names() -> None:
    assert parse_names("tsm, tsn") == ["tsm", "tsn"]
    assert set(parse_names("all")) == set(CONTENDERS)
    for spec, message in (
        ("tsm,x3d", "unknown model 'x3d'"),
        ("tsm,tsm", "named twice"),
        (",", "no model names"),
        ("i3d_gcn", "published figures only"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_names(spec)
    assert set(PUBLISHED_ONLY).isdisjoint(CONTENDERS)


def test_compare_measures_every_model_side_by_side(tmp_path: Path) -> None:
    result = benchmark_compare(FAST, size=32, repeats=3, warmup=0, batch_size=2, device="cpu")
    assert list(result.params) == FAST
    for name in FAST:
        assert result.sizes[name] == 32 and result.frames[name] == 8
        assert len(result.samples_ms[name]) == 3 and len(result.throughput_samples_ms[name]) == 3
        assert result.videos_per_s[name] > 0
    assert result.params["tsm"] == result.params["tsn"]  # the shift has no parameters
    assert result.gmacs["tsm"] == pytest.approx(result.gmacs["tsn"])  # ... and no multiply-adds
    assert result.gmacs["single_frame"] == pytest.approx(result.gmacs["tsn"] / 8, rel=1e-3)
    # ratios are to the TSM of the same T, per round
    assert result.ratio_to_tsm["tsn"]["reference"] == "tsm"
    assert result.ratio_to_tsm["tsm"]["median"] == pytest.approx(1.0)
    table = result.table()
    for name in FAST + list(PUBLISHED_ONLY):
        assert name in table
    assert "17.4" in table and "77.4" in table  # TSM's published latency and throughput
    data = json.loads(result.to_json())
    assert data["published"]["tsm"]["gmacs"] == 33 and "i3d_gcn" in data["published_only"]
    png = plot_compare(result, tmp_path / "cmp.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_compare_writes_json_and_png(tmp_path: Path, run_cli) -> None:
    r = run_cli(
        [
            "bench",
            "compare",
            "tsm,single_frame",
            "--size",
            32,
            "--repeats",
            2,
            "--batch-size",
            2,
            "--warmup",
            0,
            "--device",
            "cpu",
            "--json",
            tmp_path / "c.json",
            "--plot",
            tmp_path / "c.png",
        ]
    )
    assert r.code == 0, r.err
    assert "single_frame" in r.out and "x TSM" in r.out
    assert json.loads((tmp_path / "c.json").read_text())["frames"] == {"tsm": 8, "single_frame": 8}
    assert (tmp_path / "c.png").stat().st_size > 0


def test_cli_compare_errors_are_one_line(run_cli) -> None:
    r = run_cli(["bench", "compare", "tsm,nope"])
    assert r.code == 2
    assert r.err.startswith("tsm bench: error: unknown model 'nope'") and len(r.err.strip().splitlines()) == 1
