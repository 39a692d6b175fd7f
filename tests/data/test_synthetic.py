"""The synthetic temporal dataset: layout, determinism and its no-single-frame guarantee."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

import temporal_shift.data.synthetic as synthetic
from temporal_shift.data.dataset import VideoDataset
from temporal_shift.data.lists import FrameRecord, VideoRecord, read_classes, read_list
from temporal_shift.data.sampling import TSNSampler
from temporal_shift.data.synthetic import (
    CAMOUFLAGE_CLASSES,
    CLASSES,
    CONTROL_PAIRS,
    HARD_CLASSES,
    TEMPORAL_PAIRS,
    generate_synthetic,
    pair_of,
    render_clip,
)


def _digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    paths = generate_synthetic(out, num_videos=24, size=32, frames=6, seed=5, workers=1, progress=False)
    return paths


def test_layout_is_readable_by_lists_and_dataset(tiny):
    assert read_classes(tiny.classes) == list(CLASSES)
    train = read_list(tiny.train_frames, kind="frames", num_classes=len(CLASSES))
    val = read_list(tiny.val_frames, kind="frames", num_classes=len(CLASSES))
    assert len(train) + len(val) == 24 and len(val) == 12  # at least one clip per class in each split
    assert all(isinstance(r, FrameRecord) and r.num_frames == 6 for r in train + val)
    assert sorted(r.label for r in train + val) == sorted(list(range(12)) * 2)
    videos = read_list(tiny.train_videos, kind="videos", num_classes=len(CLASSES))
    assert all(isinstance(r, VideoRecord) and r.path.endswith(".mp4") for r in videos)
    assert [r.path.split("/")[-1] for r in videos] == [r.path.split("/")[-1] + ".mp4" for r in train]
    meta = json.loads(tiny.meta.read_text())
    assert meta["temporal_pairs"] == [list(p) for p in TEMPORAL_PAIRS]

    sampler = TSNSampler(n_segment=4, train=False)
    frames_ds = VideoDataset(list_file=tiny.train_frames, root=tiny.root, sampler=sampler)
    videos_ds = VideoDataset(list_file=tiny.train_videos, root=tiny.root, sampler=sampler)
    (a, la), (b, lb) = frames_ds[0], videos_ds[0]
    assert a.shape == b.shape == (4, 3, 32, 32) and la == lb
    # the mp4 and the JPEG folder hold the same clip (up to lossy coding)
    assert (a.float() - b.float()).abs().mean() < 8


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    again = generate_synthetic(tmp_path / "a", num_videos=24, size=32, frames=6, seed=5, workers=2, progress=False)
    assert _digest(again.root) == _digest(tiny.root)  # also independent of the worker count
    other = generate_synthetic(tmp_path / "b", num_videos=24, size=32, frames=6, seed=6, workers=1, progress=False)
    a, b = _digest(again.root), _digest(other.root)
    assert a.keys() == b.keys()
    assert sum(a[k] != b[k] for k in a) > len(a) // 2


def test_rerun_resumes_and_rejects_other_settings(tiny, tmp_path):
    out = tmp_path / "r"
    generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False)
    first = _digest(out)
    victim = out / "frames" / "synth_000003" / "img_00002.jpg"
    victim.unlink()  # an interrupted clip: frame missing, no completion marker
    (out / ".complete" / "synth_000003").unlink()
    assert sorted(p.name for p in (out / "frames" / "synth_000004").iterdir()) == [  # frames only
        f"img_{i:05d}.jpg" for i in range(1, 5)
    ]
    generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False)
    assert _digest(out) == first
    with pytest.raises(ValueError, match="other settings"):
        generate_synthetic(out, num_videos=24, size=32, frames=4, seed=2, workers=1, progress=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 15}, "size"),
        ({"size": 33}, "size"),
        ({"frames": 1}, "frames"),
        ({"num_videos": 23}, "num_videos"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    args = {"num_videos": 24, "size": 32, "frames": 4, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate_synthetic(tmp_path, **args)


def test_render_clip_bad_label():
    with pytest.raises(ValueError, match="out of range"):
        render_clip(12, rng=np.random.default_rng(0), size=32, frames=4)


def test_pair_of():
    assert pair_of(1) == (0, 1) and pair_of(11) == (10, 11)
    with pytest.raises(ValueError, match="no synthetic class pair"):
        pair_of(99)


# --- the guarantee: single frames carry no class information in temporal pairs -------

CLIPS_PER_CLASS = 48
SIZE, FRAMES = 32, 8


def _render_pair(pair, *, seed, clips_per_class=CLIPS_PER_CLASS, **knobs):
    clips, params, labels = [], [], []
    for k, label in enumerate(pair):
        for i in range(clips_per_class):
            clip, p = render_clip(label, rng=np.random.default_rng([seed, label, i]), size=SIZE, frames=FRAMES, **knobs)
            clips.append(clip)
            params.append(p)
            labels.append(k)
    return np.stack(clips), params, np.array(labels)


def _frame_features(frames: np.ndarray) -> torch.Tensor:
    """Per-frame features: 8x8 colour thumbnail, per-channel mean/std, per-channel
    histograms and a histogram of the hues of saturated pixels."""
    x = torch.from_numpy(frames).float().div(255).permute(0, 3, 1, 2)  # (N, 3, H, W)
    thumb = torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)
    stats = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
    bins = (x * 7.999).long()
    hist = torch.stack(
        [torch.stack([(bins[:, c] == b).float().mean(dim=(1, 2)) for b in range(8)], 1) for c in range(3)], 1
    ).flatten(1)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    hue = torch.atan2(np.sqrt(3) * (g - b), 2 * r - g - b)  # -pi..pi
    saturated = (x.amax(1) - x.amin(1)) > 0.3
    hue_bin = ((hue + np.pi) / (2 * np.pi) * 11.999).long()
    hue_hist = torch.stack([((hue_bin == k) & saturated).float().mean(dim=(1, 2)) for k in range(12)], 1)
    return torch.cat([thumb, stats, hist, hue_hist.sqrt()], dim=1)


def _logistic_accuracy(x_train, y_train, x_test, y_test) -> float:
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    torch.manual_seed(0)
    linear = torch.nn.Linear(x_train.shape[1], 1)
    opt = torch.optim.Adam(linear.parameters(), lr=0.05, weight_decay=1e-3)
    target = torch.as_tensor(y_train, dtype=torch.float32)
    for _ in range(200):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(linear(x_train).squeeze(1), target)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = (linear(x_test).squeeze(1) > 0).numpy().astype(int)
    return float((pred == np.asarray(y_test)).mean())


def _centroid_accuracy(x_train, y_train, x_test, y_test) -> float:
    """Nearest centroid on the (standardised) hue histogram, the last 12 features."""
    x_train, x_test = x_train[:, -12:], x_test[:, -12:]
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    centroids = torch.stack([x_train[torch.as_tensor(y_train) == k].mean(0) for k in (0, 1)])
    pred = torch.cdist(x_test, centroids).argmin(1).numpy()
    return float((pred == np.asarray(y_test)).mean())


def _per_frame_accuracies(pair, *, seed=0, clips_per_class=CLIPS_PER_CLASS, **knobs) -> tuple[float, float]:
    """Train per-frame classifiers on frames of half the clips, test on the other half."""
    clips, _, labels = _render_pair(pair, seed=seed, clips_per_class=clips_per_class, **knobs)
    clip_ids = np.arange(len(clips))
    train = clip_ids % 2 == 0
    feats = _frame_features(clips.reshape(-1, SIZE, SIZE, 3)).reshape(len(clips), FRAMES, -1)
    frame_labels = np.repeat(labels, FRAMES)
    x_tr, x_te = feats[train].flatten(0, 1), feats[~train].flatten(0, 1)
    y_tr = frame_labels.reshape(len(clips), FRAMES)[train].reshape(-1)
    y_te = frame_labels.reshape(len(clips), FRAMES)[~train].reshape(-1)
    return _logistic_accuracy(x_tr, y_tr, x_te, y_te), _centroid_accuracy(x_tr, y_tr, x_te, y_te)


@pytest.mark.parametrize("pair", TEMPORAL_PAIRS, ids=[f"{CLASSES[a]}-vs-{CLASSES[b]}" for a, b in TEMPORAL_PAIRS])
def test_per_frame_classifier_is_at_chance_on_temporal_pairs(pair):
    logistic, centroid = _per_frame_accuracies(pair)
    # 48 test clips (x 8 correlated frames): chance +- ~3 standard errors
    assert abs(logistic - 0.5) < 0.15, logistic
    assert abs(centroid - 0.5) < 0.15, centroid


def test_per_frame_classifier_separates_the_control_pair():
    (pair,) = CONTROL_PAIRS
    logistic, centroid = _per_frame_accuracies(pair)
    assert logistic > 0.85 and centroid > 0.7, (logistic, centroid)


def _unwrap_slope(values: np.ndarray, period: float | None) -> float:
    steps = np.diff(values)
    if period is not None:
        steps = (steps + period / 2) % period - period / 2
    return float(steps.mean())


@pytest.mark.parametrize("pair", TEMPORAL_PAIRS, ids=[f"{CLASSES[a]}-vs-{CLASSES[b]}" for a, b in TEMPORAL_PAIRS])
def test_frame_order_separates_temporal_pairs(pair):
    """The rendered motion goes the way the class name says, and reversed for the partner."""
    _, params, labels = _render_pair(pair, seed=1)
    name = CLASSES[pair[0]]
    key, period = {
        "moving_right": ("cx", SIZE),
        "moving_down": ("cy", SIZE),
        "growing": ("radius", None),
        "rotating_clockwise": ("angle", None),
        "appearing": ("alpha", None),
    }[name]
    slopes = np.array([_unwrap_slope(p[key], period) for p in params])
    assert (slopes[labels == 0] > 0).all() and (slopes[labels == 1] < 0).all()


def _order_accuracy(pair, statistic) -> float:
    """Accuracy of sign(stat(second half) - stat(first half)) of a per-frame statistic."""
    clips, _, labels = _render_pair(pair, seed=2)
    stat = np.array([[statistic(f) for f in clip] for clip in clips])  # (clips, T)
    half = FRAMES // 2
    order = stat[:, half:].mean(1) - stat[:, :half].mean(1)
    return float(((order > 0) == (labels == 0)).mean())  # first class: the statistic rises


def _saliency(frame: np.ndarray) -> float:
    """How much of the frame differs from its median colour (object area x contrast)."""
    f = frame.astype(np.float32)
    return float(np.abs(f - np.median(f.reshape(-1, 3), axis=0)).mean())


@pytest.mark.parametrize("pair", [(4, 5), (8, 9)], ids=["growing-vs-shrinking", "appearing-vs-disappearing"])
def test_pixel_order_feature_separates_temporal_pairs(pair):
    """A statistic read in frame order (does the object get more visible?) separates the
    pair from pixels, while the per-frame classifiers above are at chance."""
    accuracy = _order_accuracy(pair, _saliency)
    assert accuracy > 0.8, accuracy


def test_unreadable_metadata_is_an_error(tmp_path):
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"meta.json: unreadable synthetic dataset metadata"):
        generate_synthetic(tmp_path, num_videos=24, size=32, frames=4, progress=False)


def test_plain_variant_keeps_the_order_guarantee_without_clutter(tmp_path):
    for label in range(len(CLASSES)):
        clip, params = render_clip(label, rng=np.random.default_rng([3, label]), size=32, frames=8, clutter=False)
        # a plain background: away from the main object, pixels deviate from the clip's
        # background colour by the weak noise only (no texture, no distractor objects)
        ys, xs = np.mgrid[0:32, 0:32] + 0.5
        far = np.ones((32, 32), dtype=bool)
        for t in range(8):
            dx = (xs - params["cx"][t] + 16) % 32 - 16
            dy = (ys - params["cy"][t] + 16) % 32 - 16
            far &= np.hypot(dx, dy) > params["radius"][t] * 1.2 + 1
        background = clip[:, far].astype(np.float32)
        assert far.sum() > 200
        assert background.std(axis=(0, 1)).max() < 6, label
    for first, second in TEMPORAL_PAIRS:  # the second class is the first played backwards
        a, _ = render_clip(first, rng=np.random.default_rng(9), size=32, frames=8, clutter=False)
        b, _ = render_clip(second, rng=np.random.default_rng(9), size=32, frames=8, clutter=False)
        np.testing.assert_array_equal(b, a[::-1])
    busy, _ = render_clip(0, rng=np.random.default_rng(9), size=32, frames=8)
    assert not np.array_equal(busy, render_clip(0, rng=np.random.default_rng(9), size=32, frames=8, clutter=False)[0])
    out = tmp_path / "plain"
    generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False, clutter=False)
    assert json.loads((out / "meta.json").read_text())["settings"]["clutter"] is False
    with pytest.raises(ValueError, match="other settings"):
        generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False)


def test_pair_hues_name_the_pair_and_keep_the_order_guarantee(tmp_path):
    from temporal_shift.data.synthetic import PAIR_HUES

    def hue(rgb):
        r, g, b = rgb / 255.0
        mx, mn = max(r, g, b), min(r, g, b)
        if mx == r:
            h = ((g - b) / (mx - mn)) % 6
        elif mx == g:
            h = (b - r) / (mx - mn) + 2
        else:
            h = (r - g) / (mx - mn) + 4
        return h / 6

    for first, second in TEMPORAL_PAIRS:
        for seed in range(4):
            a, pa = render_clip(
                first, rng=np.random.default_rng([seed, 5]), size=32, frames=8, clutter=False, pair_hues=True
            )
            b, _ = render_clip(
                second, rng=np.random.default_rng([seed, 5]), size=32, frames=8, clutter=False, pair_hues=True
            )
            np.testing.assert_array_equal(b, a[::-1])  # still only the order differs within a pair
            t = int(np.argmax(pa["alpha"]))  # the most opaque frame: the object's own colour at its centre
            cx, cy = int(pa["cx"][t]) % 32, int(pa["cy"][t]) % 32
            centre = a[t, cy, cx].astype(np.float64)
            distance = abs((hue(centre) - PAIR_HUES[first // 2] + 0.5) % 1.0 - 0.5)
            assert distance < 0.06, (first, seed, hue(centre))
    out = tmp_path / "hues"
    generate_synthetic(
        out,
        num_videos=24,
        size=32,
        frames=4,
        seed=1,
        workers=1,
        progress=False,
        clutter=False,
        pair_hues=True,
        motion=2.0,
    )
    settings = json.loads((out / "meta.json").read_text())["settings"]
    assert settings["pair_hues"] is True and settings["motion"] == 2.0
    with pytest.raises(ValueError, match="other settings"):
        generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False, clutter=False)


def test_motion_scales_the_speed_of_moving_objects_and_object_scale_their_size(tmp_path):
    for label, key in ((0, "cx"), (2, "cy")):
        slow = render_clip(label, rng=np.random.default_rng(4), size=64, frames=8, clutter=False)[1][key]
        fast = render_clip(label, rng=np.random.default_rng(4), size=64, frames=8, clutter=False, motion=2.0)[1][key]
        period = 64 if key != "angle" else 2 * np.pi
        step_slow = (np.diff(slow) + period / 2) % period - period / 2
        step_fast = (np.diff(fast) + period / 2) % period - period / 2
        np.testing.assert_allclose(step_fast, 2 * step_slow, atol=1e-9)
    turn = [render_clip(6, rng=np.random.default_rng(4), size=64, frames=8, motion=m)[1]["angle"] for m in (1, 2)]
    np.testing.assert_array_equal(*turn)  # motion leaves rotation alone: spin is its own knob
    small, big = (
        render_clip(4, rng=np.random.default_rng(4), size=64, frames=8, object_scale=k)[1]["radius"] for k in (1.0, 1.6)
    )
    np.testing.assert_allclose(big, 1.6 * small)
    for key, bad in (("motion", 0), ("object_scale", -1.0), ("spin", 0.0)):
        with pytest.raises(ValueError, match=f"{key} must be positive"):
            render_clip(0, rng=np.random.default_rng(0), size=32, frames=4, **{key: bad})
        with pytest.raises(ValueError, match=f"{key} must be positive"):
            generate_synthetic(tmp_path / key, num_videos=24, size=32, frames=4, progress=False, **{key: bad})


def test_spin_scales_the_rotation_of_a_sail_that_has_one_direction():
    for label, sign in ((6, 1), (7, -1)):
        slow = render_clip(label, rng=np.random.default_rng(4), size=64, frames=8, clutter=False)[1]["angle"]
        fast = render_clip(label, rng=np.random.default_rng(4), size=64, frames=8, clutter=False, spin=2.5)[1]["angle"]
        np.testing.assert_allclose(np.diff(fast), 2.5 * np.diff(slow))
        assert (sign * np.diff(fast) > 0).all()
    # the sail has no rotational symmetry: turned by 90, 120 or 180 degrees it covers other pixels
    # (a triangle, resp. a bar, would look the same), so a fast turn keeps one direction
    from temporal_shift.data.synthetic import _coverage

    ys, xs = np.mgrid[-16:16, -16:16] + 0.5
    r = np.float64(8.0)
    base = _coverage("sail", xs, ys, np.float64(0.3), r)
    for turn in (np.pi / 2, 2 * np.pi / 3, np.pi):
        assert np.abs(_coverage("sail", xs, ys, np.float64(0.3 + turn), r) - base).sum() > 0.3 * base.sum()
    lead = _coverage("sail_lead", xs, ys, np.float64(0.3), r)
    assert 0.4 < lead.sum() / base.sum() < 0.6 and (lead <= base + 1e-9).all()  # its leading half


def test_the_sails_light_half_leads_a_clockwise_turn_and_trails_the_reversed_one():
    """Where the sail newly covers the background from one frame to the next, a clockwise
    clip shows the light half, the counter-clockwise one (the same clip backwards) the dark
    half: a cue visible locally, whatever the sail's angle, and only in the order."""
    for seed in range(6):
        for label, light_leads in ((6, True), (7, False)):
            clip, _ = render_clip(
                label, rng=np.random.default_rng([seed, 9]), size=64, frames=8, clutter=False, pair_hues=True, spin=2.5
            )
            frames = clip.astype(np.float64)
            background = np.median(frames[0].reshape(-1, 3), axis=0)
            covered = np.abs(frames - background).sum(-1) > 60  # the sail's pixels
            brightness = frames.sum(-1)
            new = covered[1:] & ~covered[:-1]  # pixels the sail reaches in the next frame
            old = covered[1:] & covered[:-1]
            assert new.sum() > 20, (seed, label)
            lighter = brightness[1:][new].mean() > brightness[1:][old].mean()
            assert lighter == light_leads, (seed, label)


def test_datasets_written_before_motion_and_pair_hues_are_still_reused(tmp_path):
    out = tmp_path / "old"
    generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False)
    meta = json.loads((out / "meta.json").read_text())
    for key in ("motion", "pair_hues", "object_scale", "clutter", "spin", "rotating_object"):
        del meta["settings"][key]
    (out / "meta.json").write_text(json.dumps(meta))
    generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False)


def test_a_dataset_whose_rotating_classes_drew_the_old_clock_hand_is_refused(tmp_path):
    """spin != 1 drew a clock hand before the sail; same settings, other pictures: such a
    folder must not be resumed as if it held today's data."""
    out = tmp_path / "hand"
    generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False, spin=2.5)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["settings"]["rotating_object"] == "sail"
    del meta["settings"]["rotating_object"]  # as written by the version that drew the hand
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="other settings"):
        generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False, spin=2.5)


# --- the hard scene: the order is in a local relation, no frame's global features tell it ---

HARD = {"scene": "hard", "clutter": False, "motion": 3.0}  # as `tsm reproduce --data hard`
HARD_IDS = [f"{HARD_CLASSES[a]}-vs-{HARD_CLASSES[b]}" for a, b in TEMPORAL_PAIRS]


def test_hard_scene_pairs_are_each_other_backwards_and_the_dataset_names_its_classes(tmp_path):
    for first, second in TEMPORAL_PAIRS:
        a, pa = render_clip(first, rng=np.random.default_rng(9), size=32, frames=8, **HARD)
        b, pb = render_clip(second, rng=np.random.default_rng(9), size=32, frames=8, **HARD)
        np.testing.assert_array_equal(b, a[::-1])
        np.testing.assert_array_equal(pb["cx"], pa["cx"][::-1])
    out = tmp_path / "hard"
    paths = generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False, **HARD)
    assert read_classes(paths.classes) == list(HARD_CLASSES)
    meta = json.loads(paths.meta.read_text())
    assert meta["classes"] == list(HARD_CLASSES) and meta["settings"]["scene"] == "hard"
    first = _digest(out)
    generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False, **HARD)
    assert _digest(out) == first  # deterministic and resumable like the single scene
    with pytest.raises(ValueError, match="other settings"):  # a single-scene dataset is another dataset
        generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False, clutter=False)
    for bad, match in (
        ({"scene": "busy"}, "unknown scene 'busy'"),
        ({**HARD, "pair_hues": True}, "the hard scene has neither"),
        ({**HARD, "spin": 2.5}, "the hard scene has neither"),
    ):
        with pytest.raises(ValueError, match=match):
            render_clip(0, rng=np.random.default_rng(0), size=32, frames=4, **bad)


def _wrapped(delta: np.ndarray) -> np.ndarray:
    return (delta + SIZE / 2) % SIZE - SIZE / 2


def _hard_cue(name: str, p: dict[str, np.ndarray]) -> float:
    """Positive when the clip acts the class ``name`` forwards (the pair's first class), from its
    actors' positions in display order."""
    circle = np.stack([p["cx"], p["cy"]])
    step = _wrapped(np.diff(circle, axis=1))  # the circle's moves from frame to frame
    offset = _wrapped(circle - np.stack([p["ref_cx"], p["ref_cy"]]))  # the circle seen from the square
    if name == "side_by_side_square_on_the_right":  # y down: the square is right of the heading
        return float((step[1] * offset[0, 1:] - step[0] * offset[1, 1:]).sum())
    if name in ("circle_orbiting_square_clockwise", "circle_passing_square_clockwise"):
        return _unwrap_slope(np.arctan2(offset[1], offset[0]), 2 * np.pi)
    if name == "square_chasing_circle":  # the circle moves away from the square, which follows
        return float((step * offset[:, 1:]).sum())
    square = _wrapped(np.diff(np.stack([p["ref_cx"], p["ref_cy"]]), axis=1))
    moved = np.hypot(*square) - np.hypot(*step)  # > 0 where the square moves and the circle does not
    half = FRAMES // 2
    return float(moved[: half - 1].sum() - moved[half:].sum())  # square_launching_circle: the square first


@pytest.mark.parametrize("pair", TEMPORAL_PAIRS, ids=HARD_IDS)
def test_hard_scene_classes_act_what_their_names_say(pair):
    _, params, labels = _render_pair(pair, seed=1, **HARD)
    cues = np.array([_hard_cue(HARD_CLASSES[pair[0]], p) for p in params])
    assert (cues[labels == 0] > 0).all() and (cues[labels == 1] < 0).all()


@pytest.mark.parametrize("pair", TEMPORAL_PAIRS, ids=HARD_IDS)
def test_hard_scene_per_frame_classifier_is_at_chance_on_temporal_pairs(pair):
    # more clips than for the single scene: a frame of the hard scene holds 5-7 objects in random
    # places, and a classifier fitted to 96 clips' frames lands further from 50% by chance alone
    logistic, centroid = _per_frame_accuracies(pair, clips_per_class=96, **HARD)
    assert abs(logistic - 0.5) < 0.15, logistic
    assert abs(centroid - 0.5) < 0.15, centroid


def test_hard_scene_control_pair_is_told_from_one_frame():
    (pair,) = CONTROL_PAIRS
    logistic, _ = _per_frame_accuracies(pair, **HARD)
    assert logistic > 0.75, logistic  # the thin ring's colour among distractors: well above chance


def _late_fusion_of_global_features(pair, knobs, *, clips_per_class) -> float:
    """A linear classifier on the T=4 centre frames' global features (`_frame_features`: thumbnail,
    colour statistics and histograms) side by side in time order, as late fusion's head sees
    its frames' pooled features; trained on half the clips, tested on the other half."""
    clips, _, labels = _render_pair(pair, seed=3, clips_per_class=clips_per_class, **knobs)
    clips = clips[:, 1::2]
    features = _frame_features(clips.reshape(-1, SIZE, SIZE, 3)).reshape(len(clips), -1)
    train = np.arange(len(clips)) % 2 == 0
    return _logistic_accuracy(features[train], labels[train], features[~train], labels[~train])


def test_the_demos_global_cues_are_gone_from_the_hard_scene():
    """On the demo's data a frame's global features change in one direction over a growing or
    appearing clip: a linear classifier on the frames' features side by side (late fusion's
    head) reads the order. In the hard scene it is at chance on every pair."""
    demo = {"clutter": False, "pair_hues": True, "motion": 3.0, "spin": 2.5, "object_scale": 1.5}
    for pair in ((4, 5), (8, 9)):
        assert _late_fusion_of_global_features(pair, demo, clips_per_class=64) > 0.85, pair
    for pair in TEMPORAL_PAIRS:
        accuracy = _late_fusion_of_global_features(pair, HARD, clips_per_class=128)
        assert abs(accuracy - 0.5) < 0.15, (HARD_CLASSES[pair[0]], accuracy)


# --- the camouflage scene: no frame shows the disc, only how regions move between frames ---

CAMO = {"scene": "camouflage", "clutter": False, "motion": 3.0}
CAMO_IDS = [f"{CAMOUFLAGE_CLASSES[a]}-vs-{CAMOUFLAGE_CLASSES[b]}" for a, b in TEMPORAL_PAIRS]
_HEADINGS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}


def test_camouflage_pairs_are_each_other_backwards_and_the_dataset_names_its_classes(tmp_path):
    for first, second in TEMPORAL_PAIRS:
        a, pa = render_clip(first, rng=np.random.default_rng(9), size=32, frames=8, **CAMO)
        b, pb = render_clip(second, rng=np.random.default_rng(9), size=32, frames=8, **CAMO)
        np.testing.assert_array_equal(b, a[::-1])
        np.testing.assert_array_equal(pb["cx"], pa["cx"][::-1])
        np.testing.assert_array_equal(pb["background_dx"], pa["background_dx"][::-1])
    out = tmp_path / "camouflage"
    paths = generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False, **CAMO)
    assert read_classes(paths.classes) == list(CAMOUFLAGE_CLASSES)
    meta = json.loads(paths.meta.read_text())
    assert meta["classes"] == list(CAMOUFLAGE_CLASSES) and meta["settings"]["scene"] == "camouflage"
    first = _digest(out)
    generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False, **CAMO)
    assert _digest(out) == first
    with pytest.raises(ValueError, match="other settings"):  # the hard scene's data is another dataset
        generate_synthetic(
            out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False, **{**CAMO, "scene": "hard"}
        )
    with pytest.raises(ValueError, match="the camouflage scene has no rotation"):
        render_clip(0, rng=np.random.default_rng(0), size=32, frames=4, **CAMO, spin=2.5)
    # a folder of the first version (its textures wrapped round the frame) is not resumed
    meta["settings"].pop("texture_wraps")
    paths.meta.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="other settings"):
        generate_synthetic(out, num_videos=24, size=32, frames=4, seed=1, workers=1, progress=False, **CAMO)


def _named_heading(name: str) -> np.ndarray:
    """The direction (x, y; y down) a class's name says its disc or background moves."""
    words = name.split("_moving_")[1].split("_behind")[0].split("_")
    return np.sum([_HEADINGS[w] for w in words], axis=0)


@pytest.mark.parametrize("label", range(10), ids=CAMOUFLAGE_CLASSES[:10])
def test_camouflage_classes_move_what_their_names_say(label):
    """From one frame to the next, the pixels well inside the disc are the last frame's moved by
    the disc's step, those well outside are the background moved by its own step; the steps
    go the named way, and the other region stands still."""
    name = CAMOUFLAGE_CLASSES[label]
    cell = synthetic._CAMO_CELL  # pixels a cell at 32x32
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    disc_checks = 0
    for i in range(6):
        clip, p = render_clip(label, rng=np.random.default_rng([4, i]), size=SIZE, frames=FRAMES, **CAMO)
        frames = clip.astype(np.float32)
        disc = np.rint(np.stack([np.diff(p["cx"]), np.diff(p["cy"])], axis=1))
        back = np.stack([np.diff(p["background_dx"]), np.diff(p["background_dy"])], axis=1)
        moving, still = (back, disc) if name.startswith("background") else (disc, back)
        assert (still == 0).all()
        heading = _named_heading(name)
        assert ((moving @ heading) > 0).sum() >= FRAMES // 2 and ((moving @ heading) >= 0).all(), moving
        assert (np.abs(moving) @ (heading == 0) == 0).all(), moving  # no sideways step
        radius = p["radius"][0]
        for f in range(FRAMES - 1):
            for inside, (dx, dy) in ((True, disc[f]), (False, back[f])):
                # a pixel of frame f + 1 and where it came from in frame f (in the frame), both well in the region
                now = np.hypot(xs - p["cx"][f + 1], ys - p["cy"][f + 1])
                then = np.hypot(xs - dx - p["cx"][f], ys - dy - p["cy"][f])
                region = (now < radius - cell) & (then < radius - cell)
                if not inside:
                    region = (now > radius + cell) & (then > radius + cell)
                region &= (xs - dx > 0) & (xs - dx < SIZE) & (ys - dy > 0) & (ys - dy < SIZE)
                moved = np.roll(frames[f], (int(dy), int(dx)), axis=(0, 1))
                if inside and not region.any():
                    continue  # the disc left the frame (it may, near an edge); the background never does
                assert region.any() and np.abs(frames[f + 1] - moved)[region].mean() < 6, (name, i, f, inside)
                disc_checks += inside
    assert disc_checks >= 4 * (FRAMES - 1), disc_checks  # the disc is mostly in the frame


@pytest.mark.parametrize("label", [0, 2, 4, 6])
def test_camouflage_texture_does_not_wrap_round_the_frame(label):
    """What a step moves out at one edge is gone: the cells it brings in at the other are new
    texture (as often the same colour as not), not the ones that left. A wrap would let a model
    that compares whole frames read the motion from their edges."""
    cell = synthetic._CAMO_CELL
    background_moves = CAMOUFLAGE_CLASSES[label].startswith("background")
    same, cells = 0, 0
    for i in range(8):
        clip, p = render_clip(label, rng=np.random.default_rng([5, i]), size=SIZE, frames=FRAMES, **CAMO)
        grid = clip[:, cell // 2 :: cell, cell // 2 :: cell].astype(np.float32)  # a pixel in each cell
        if background_moves:  # whole frame
            steps = np.stack([np.diff(p["background_dx"]), np.diff(p["background_dy"])], axis=1) // cell
        else:  # the disc moves: its own cells, here checked as the whole frame's wrap of the disc texture
            steps = np.stack([np.diff(p["cx"]), np.diff(p["cy"])], axis=1) // cell
        for f in range(FRAMES - 1):
            dx, dy = (int(v) for v in steps[f])
            if dx == dy == 0:
                continue
            entered = np.ones(grid.shape[1:3], dtype=bool)  # the cells a step of (dx, dy) brings in
            entered[max(dy, 0) : grid.shape[1] + min(dy, 0), max(dx, 0) : grid.shape[2] + min(dx, 0)] = False
            wrapped = np.roll(grid[f], (dy, dx), axis=(0, 1))  # where they would have come from
            if not background_moves:  # only the cells inside the disc at both frames
                ys, xs = (np.mgrid[0 : grid.shape[1], 0 : grid.shape[2]] + 0.5) * cell
                entered &= np.hypot(xs - p["cx"][f + 1], ys - p["cy"][f + 1]) < p["radius"][0] - cell
            match = (np.abs(grid[f + 1] - wrapped).max(-1) < 25)[entered]
            same, cells = same + int(match.sum()), cells + match.size
    assert cells > 100 and 0.3 < same / cells < 0.7, (same, cells)


@pytest.mark.parametrize("pair", [*TEMPORAL_PAIRS, (0, 4), (2, 6)], ids=[*CAMO_IDS, "disc-vs-background", "axis"])
def test_camouflage_per_frame_classifier_is_at_chance(pair):
    """Every frame is the same random texture whatever the class: a per-frame classifier tells
    neither a class from its partner nor one pair's frames from another's."""
    logistic, centroid = _per_frame_accuracies(pair, clips_per_class=96, **CAMO)
    assert abs(logistic - 0.5) < 0.15, logistic
    assert abs(centroid - 0.5) < 0.15, centroid


def test_camouflage_pair_hues_name_the_pair_in_every_frame_and_nothing_more():
    """With ``pair_hues`` (as `tsm reproduce --data camouflage`) the dots' hue tells one pair's
    frames from another's, as on the demo's data, and still not a class from its partner."""
    hued = {**CAMO, "pair_hues": True}
    logistic, centroid = _per_frame_accuracies((0, 4), **hued)
    assert logistic > 0.9 and centroid > 0.9, (logistic, centroid)
    logistic, centroid = _per_frame_accuracies((2, 3), clips_per_class=96, **hued)
    assert abs(logistic - 0.5) < 0.15 and abs(centroid - 0.5) < 0.15, (logistic, centroid)


def test_camouflage_control_pair_is_told_from_one_frame():
    """The ring's colour: a linear classifier on global features reads it above chance among dots
    of any hue, and clearly among the pair hues' (clear of red and blue), as the recipe draws them."""
    (pair,) = CONTROL_PAIRS
    logistic, centroid = _per_frame_accuracies(pair, clips_per_class=96, **CAMO)
    assert logistic > 0.65 and centroid > 0.7, (logistic, centroid)
    logistic, centroid = _per_frame_accuracies(pair, **CAMO, pair_hues=True)
    assert logistic > 0.8 and centroid > 0.9, (logistic, centroid)


def test_late_fusion_of_global_features_is_at_chance_on_the_camouflage_scene():
    for pair in TEMPORAL_PAIRS:
        accuracy = _late_fusion_of_global_features(pair, CAMO, clips_per_class=128)
        assert abs(accuracy - 0.5) < 0.15, (CAMOUFLAGE_CLASSES[pair[0]], accuracy)
