"""The built-in synthetic temporal dataset.

Twelve classes in six pairs. Five *temporal* pairs can only be told apart by frame
order: moving right/left, moving down/up, growing/shrinking, rotating clockwise/
counter-clockwise, appearing/disappearing (fading in/out). One *control* pair, a still
red vs a still blue object, is separable from any single frame.

The guarantee for temporal pairs: a clip of the second class is drawn exactly like a
clip of the first class and then played backwards. So the set of frames of a clip
(ignoring order) has the same distribution for both classes, and any model that
looks at frames without their order (a per-frame classifier, TSN's average consensus)
is at chance. Positions live on a torus (objects wrap around the edges) and angles on
the circle, so for the moving and rotating pairs even each frame position t on its
own has the same distribution for both classes.

Object shape, colour, size, speed and position, textured backgrounds with per-frame
noise and distractor objects are random. ``clutter=False`` renders the same classes on
plain backgrounds (one colour per clip, weak per-frame noise) without distractors: the
pairs are still told apart only by order, but a small network learns them in far fewer
steps. ``pair_hues=True`` gives each pair's object its own hue band, so one frame tells
the pair (an order-blind model then reaches exactly 50% on the temporal pairs, not less);
``motion`` scales the speed of the moving objects, ``spin`` that of the rotating ones (a
two-tone sail when not 1) and ``object_scale`` the main object's size. `tsm demo` uses plain backgrounds, pair hues,
3x motion and 2.5x spin (`apps.experiments.recipe.DEMO_DATA`, where the reasons are) to fit its 10-minute CPU
budget. Everything is drawn from a generator seeded by (seed, video index), so the output
does not depend on the number of processes.

``scene="hard"`` (`HARD_CLASSES`, `tsm reproduce --data hard`) keeps the twelve classes in the
same pairs, with the same guarantee, but makes the order cue local: a square and a circle act
each class among 3-5 distractors that look like them (squares and circles of the same colours
and sizes, drifting straight at the same speeds; all positions and directions random). The
circle orbits a drifting square clockwise/counter-clockwise, the square chases the circle or
the circle the square, the square runs into the circle and launches it or the other way round,
the circle passes a drifting square clockwise/counter-clockwise (the square on its right/left),
the two go side by side with the square on the circle's right/left; the control pair is a
still red or blue ring. No frame's global features
(colours, shapes, where things are) carry the relation, so a model that compares whole-frame
features across time (late fusion) has no easy way in; one that sees neighbouring frames at
each place (TSM's shift, 3D convolutions) does.

``scene="camouflage"`` (`CAMOUFLAGE_CLASSES`, `tsm reproduce --data camouflage`) keeps the pairs
and the guarantee with a random-dot kinematogram: every frame is a texture of square dots, and a
disc cut from a second texture drawn the same way moves right/left, down/up or along either
diagonal, or stands still while the background moves right/left behind it; the control pair
is a still red or blue ring. Everything moves by whole dots and the disc is made of whole dots,
so within a pair, and across the pairs without ``pair_hues``, every frame is a sample of the
same texture: no frame shows the disc, and only how regions move between frames tells the
class. ``pair_hues`` gives each pair's dots its own hue, as the single scene's objects.

Layout written by ``generate_synthetic(out_dir, ...)`` (names are the constants below)::

    out_dir/frames/<video_id>/img_00001.jpg ...   frame folders (JPEG)
    out_dir/videos/<video_id>.mp4                 the same clips as H.264 mp4
    out_dir/train_frames.txt, val_frames.txt      '<frames/video_id> <num_frames> <label>'
    out_dir/train_videos.txt, val_videos.txt      '<videos/video_id.mp4> <label>'
    out_dir/classes.txt                           one class name per line
    out_dir/meta.json                             classes, temporal/control pairs, settings

List paths are relative to ``out_dir``, which is the root for ``VideoDataset``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from tqdm import tqdm

from temporal_shift.data.encode import write_frame_folder, write_video
from temporal_shift.data.lists import DEFAULT_TEMPLATE, write_classes, write_frame_list, write_video_list

CLASSES: tuple[str, ...] = (
    "moving_right",
    "moving_left",
    "moving_down",
    "moving_up",
    "growing",
    "shrinking",
    "rotating_clockwise",
    "rotating_counterclockwise",
    "appearing",
    "disappearing",
    "still_red",
    "still_blue",
)
# the hard scene's classes (`render_clip(scene="hard")`), in the same pairs: a square and a circle
# act each class among look-alike moving distractors ("clockwise" as seen on screen)
HARD_CLASSES: tuple[str, ...] = (
    "circle_orbiting_square_clockwise",
    "circle_orbiting_square_counterclockwise",
    "square_chasing_circle",
    "circle_chasing_square",
    "square_launching_circle",
    "circle_launching_square",
    "circle_passing_square_clockwise",
    "circle_passing_square_counterclockwise",
    "side_by_side_square_on_the_right",
    "side_by_side_square_on_the_left",
    "red_ring",
    "blue_ring",
)
# the camouflage scene's classes (`render_clip(scene="camouflage")`), in the same pairs: a disc cut
# from a random-dot texture like its background's, seen only by how it moves ("disc" stands for it)
CAMOUFLAGE_CLASSES: tuple[str, ...] = (
    "disc_moving_right",
    "disc_moving_left",
    "disc_moving_down",
    "disc_moving_up",
    "background_moving_right_behind_a_still_disc",
    "background_moving_left_behind_a_still_disc",
    "disc_moving_down_left",
    "disc_moving_up_right",
    "disc_moving_down_right",
    "disc_moving_up_left",
    "red_ring",
    "blue_ring",
)
SCENES: tuple[str, ...] = ("single", "hard", "camouflage")
TEMPORAL_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
CONTROL_PAIRS: tuple[tuple[int, int], ...] = ((10, 11),)

FRAMES_DIR = "frames"
VIDEOS_DIR = "videos"
TRAIN_FRAMES_LIST = "train_frames.txt"
VAL_FRAMES_LIST = "val_frames.txt"
TRAIN_VIDEOS_LIST = "train_videos.txt"
VAL_VIDEOS_LIST = "val_videos.txt"
CLASSES_FILE = "classes.txt"
META_FILE = "meta.json"
FRAME_TEMPLATE = DEFAULT_TEMPLATE
VIDEO_SUFFIX = ".mp4"
DONE_DIR = ".complete"  # <root>/.complete/<clip>: finished clips, kept out of the frame folders

DEFAULT_NUM_VIDEOS = 2000
DEFAULT_SIZE = 64
DEFAULT_FRAMES = 16
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_FPS = 12

_SHAPES = ("circle", "square", "triangle", "bar")
_ASYMMETRIC = ("triangle", "bar")  # shapes whose rotation is visible (at spin=1)
# with spin != 1 the rotating classes draw a sail: a broad blade turning about a point near one
# end, its leading half (clockwise) in a light tint of its colour. It has no rotational symmetry, so
# any turn of less than half a revolution between two frames has one direction, and where it sweeps
# over the background the tint tells the direction locally, whatever its angle (a clock hand,
# a needle, a half disc and an orbiting ball stayed at chance after 225-450 steps in
# benchmarks/synthetic_learnability.py: the sense of their turn is not visible locally)
_FAST_ROTATING = "sail"
_SAIL_TINT = 0.6  # the sail's leading half: its colour 60% of the way to white
_SAIL_SCALE = 2.0  # the sail is drawn twice the size of the other main objects
_SAIL_HALF_WIDTH = 0.55  # half its width, in radii (its length is 1.5 radii)


@dataclass(frozen=True)
class SyntheticPaths:
    """Where ``generate_synthetic`` wrote things."""

    root: Path
    frames_dir: Path
    videos_dir: Path
    train_frames: Path
    val_frames: Path
    train_videos: Path
    val_videos: Path
    classes: Path
    meta: Path


def synthetic_paths(out_dir: str | Path) -> SyntheticPaths:
    """The layout of a synthetic dataset rooted at ``out_dir``."""
    root = Path(out_dir)
    return SyntheticPaths(
        root=root,
        frames_dir=root / FRAMES_DIR,
        videos_dir=root / VIDEOS_DIR,
        train_frames=root / TRAIN_FRAMES_LIST,
        val_frames=root / VAL_FRAMES_LIST,
        train_videos=root / TRAIN_VIDEOS_LIST,
        val_videos=root / VAL_VIDEOS_LIST,
        classes=root / CLASSES_FILE,
        meta=root / META_FILE,
    )


# --- rendering -----------------------------------------------------------------------


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _background(rng: np.random.Generator, frames: int, height: int, width: int, clutter: bool = True) -> np.ndarray:
    grey = rng.uniform(70, 180)
    tint = rng.uniform(-25, 25, size=3)
    if not clutter:
        plain = np.broadcast_to((grey + tint).astype(np.float32), (height, width, 3))
        return plain[None] + rng.standard_normal(size=(frames, height, width, 3), dtype=np.float32) * np.float32(3)
    cells = int(rng.integers(3, 9))
    coarse = rng.normal(0.0, rng.uniform(10, 30), size=(cells + 1, cells + 1, 3))
    ys = np.linspace(0, cells, height)
    xs = np.linspace(0, cells, width)
    y0 = np.minimum(ys.astype(int), cells - 1)
    x0 = np.minimum(xs.astype(int), cells - 1)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    tex = (
        coarse[y0][:, x0] * (1 - fy) * (1 - fx)
        + coarse[y0 + 1][:, x0] * fy * (1 - fx)
        + coarse[y0][:, x0 + 1] * (1 - fy) * fx
        + coarse[y0 + 1][:, x0 + 1] * fy * fx
    )
    base = (grey + tint + tex).astype(np.float32)
    sigma = np.float32(rng.uniform(2, 8))
    noise = rng.standard_normal(size=(frames, height, width, 3), dtype=np.float32) * sigma
    return base[None] + noise


def _coverage(shape: str, dx: np.ndarray, dy: np.ndarray, angle: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape; inputs broadcast over (F, H, W)."""
    c, s = np.cos(angle), np.sin(angle)
    u = c * dx + s * dy
    v = -s * dx + c * dy
    if shape == "circle":
        d = radius - np.sqrt(u * u + v * v)
    elif shape == "square":
        d = 0.8 * radius - np.maximum(np.abs(u), np.abs(v))
    elif shape == "bar":
        d = np.minimum(radius - np.abs(u), 0.4 * radius - np.abs(v))
    elif shape == "ring":  # the hard scene's control object
        dist = np.sqrt(u * u + v * v)
        d = np.minimum(radius - dist, dist - 0.55 * radius)
    elif shape in ("sail", "sail_lead"):  # a broad blade along +u; its +v half leads a clockwise turn
        d = np.minimum(np.minimum(1.25 * radius - u, u + 0.25 * radius), _SAIL_HALF_WIDTH * radius - np.abs(v))
        if shape == "sail_lead":
            d = np.minimum(d, v)
    else:  # triangle: three half-planes, inradius r/2
        d = None
        for a in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3):
            h = 0.5 * radius - (u * math.cos(a) - v * math.sin(a))
            d = h if d is None else np.minimum(d, h)
    return np.clip(d + 0.5, 0.0, 1.0)


def _wrap(delta: np.ndarray, period: float) -> np.ndarray:
    return (delta + period / 2) % period - period / 2


def _object(
    rng: np.random.Generator,
    *,
    frames: int,
    height: int,
    width: int,
    radius: float,
    kind: str,
    hue: float | None,
    motion: float = 1.0,
    spin: float = 1.0,
    vivid: bool = False,
) -> dict[str, np.ndarray | str]:
    """Per-frame parameters of one object playing ``kind`` forwards (``motion`` scales the
    speed of moving objects, ``spin`` that of rotating ones; ``vivid`` draws saturated, bright colours)."""
    scale = min(height, width) / 64.0
    t = np.arange(frames, dtype=np.float64) - (frames - 1) / 2
    cx = np.full(frames, rng.uniform(0, width))
    cy = np.full(frames, rng.uniform(0, height))
    size = np.ones(frames)
    angle = np.full(frames, rng.uniform(0, 2 * math.pi))
    alpha = np.ones(frames)
    shape = str(rng.choice(_ASYMMETRIC if kind == "rotate" else _SHAPES))
    if kind == "rotate" and spin != 1.0:  # spin=1 keeps the data written before spin existed
        shape = _FAST_ROTATING
        radius = radius * _SAIL_SCALE
    if kind == "move_x":
        cx = (cx + rng.uniform(1.0, 2.5) * motion * scale * t) % width
    elif kind == "move_y":
        cy = (cy + rng.uniform(1.0, 2.5) * motion * scale * t) % height
    elif kind == "grow":
        lo = rng.uniform(0.3, 0.6)
        hi = lo * rng.uniform(1.8, 2.6)
        size = lo + (hi - lo) * (t - t[0]) / max(t[-1] - t[0], 1)
    elif kind == "rotate":
        angle = angle + math.radians(rng.uniform(8, 20)) * spin * t  # + is clockwise (y down)
    elif kind == "fade_in":
        lo, hi = rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0)
        alpha = lo + (hi - lo) * (t - t[0]) / max(t[-1] - t[0], 1)
    elif kind == "still":
        cx = (cx + rng.normal(0, 0.3 * scale, frames)) % width
        cy = (cy + rng.normal(0, 0.3 * scale, frames)) % height
    elif kind == "drift":
        direction = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(0.3, 1.5) * scale
        cx = (cx + speed * math.cos(direction) * t) % width
        cy = (cy + speed * math.sin(direction) * t) % height
    if hue is None:
        hue = rng.uniform(0, 1)
    low_s, low_v = (0.85, 0.85) if vivid else (0.6, 0.75)
    colour = _hsv_to_rgb(hue % 1.0, rng.uniform(low_s, 1.0), rng.uniform(low_v, 1.0)) * 255
    return {
        "shape": shape,
        "cx": cx,
        "cy": cy,
        "radius": radius * size,
        "angle": angle,
        "alpha": alpha,
        "colour": colour,
    }


_KIND = {0: "move_x", 2: "move_y", 4: "grow", 6: "rotate", 8: "fade_in"}
# pair_hues=True: the hue band of each temporal pair's object (clear of the control pair's red and blue)
PAIR_HUES: tuple[float, ...] = (0.13, 0.33, 0.5, 0.76, 0.9)
_PAIR_HUE_SPREAD = 0.02


class _Knobs(TypedDict):
    """The draws and canvas both scenes' renderers take."""

    rng: np.random.Generator
    frames: int
    height: int
    width: int
    clutter: bool


def render_clip(
    label: int,
    *,
    rng: np.random.Generator,
    size: int | tuple[int, int],
    frames: int,
    clutter: bool = True,
    motion: float = 1.0,
    pair_hues: bool = False,
    object_scale: float = 1.0,
    spin: float = 1.0,
    scene: str = "single",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render one clip of class ``label``: uint8 (frames, H, W, 3) and the main
    object's per-frame parameters (cx, cy, radius, angle, alpha; in display order).
    ``scene="hard"``: the hard scene's class (`HARD_CLASSES`: a square and a circle among
    look-alike moving distractors; ``pair_hues`` and ``spin`` do not apply), its parameters the
    circle's cx, cy and the square's ref_cx, ref_cy. ``scene="camouflage"``: the camouflage
    scene's class (`CAMOUFLAGE_CLASSES`: a disc of random dots over random dots, seen only by how
    it moves; ``spin`` does not apply), its parameters those of `_render_camouflage`.
    ``clutter=False``: plain background, no distractors. ``motion`` scales the speed of
    the moving classes (rotation has its own knob, ``spin``). ``pair_hues=True``: the main
    object's hue names its pair (`PAIR_HUES`), so one frame tells the pair and only the
    order tells the class.
    ``object_scale`` scales the main object's size. ``spin`` scales the rotation speed of the
    rotating classes (8-20 degrees a frame at ``spin=1``, a triangle or a bar, as before ``spin``
    existed); any other ``spin`` draws a sail twice that size, a broad blade whose leading half
    is a light tint of its colour: it has no rotational symmetry (up to 180 degrees between two
    frames the turn has one direction), and where it sweeps over the background the tint shows
    the direction locally (a sail reaches 1.25 ``radius`` ahead of its turning point, 0.25 behind)."""
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"label {label} out of range for {len(CLASSES)} synthetic classes")
    _check_rates(motion=motion, object_scale=object_scale, spin=spin)
    _check_scene(scene, pair_hues=pair_hues, spin=spin)
    height, width = (size, size) if isinstance(size, int) else size
    knobs: _Knobs = {"rng": rng, "frames": frames, "height": height, "width": width, "clutter": clutter}
    if scene == "hard":
        clip, params = _render_hard(label, motion=motion, object_scale=object_scale, **knobs)
    elif scene == "camouflage":
        clip, params = _render_camouflage(label, motion=motion, object_scale=object_scale, pair_hues=pair_hues, **knobs)
    else:
        clip, params = _render_single(
            label, motion=motion, object_scale=object_scale, pair_hues=pair_hues, spin=spin, **knobs
        )
    if label < 10 and label % 2 == 1:  # second class of a temporal pair: play backwards
        clip = clip[::-1].copy()
        params = {k: v[::-1].copy() for k, v in params.items()}
    return clip, params


def _render_single(
    label: int,
    *,
    rng: np.random.Generator,
    frames: int,
    height: int,
    width: int,
    clutter: bool,
    motion: float,
    pair_hues: bool,
    object_scale: float,
    spin: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One clip of the single scene's class ``label`` (forwards, `render_clip` reverses) and its main
    object's per-frame parameters."""
    scale = min(height, width) / 64.0
    canvas = _background(rng, frames, height, width, clutter)
    distractors = (
        [
            _object(
                rng,
                frames=frames,
                height=height,
                width=width,
                radius=rng.uniform(1.5, 3.5) * scale,
                kind=kind,
                hue=None,
            )
            for kind in ["still"] * int(rng.integers(1, 3)) + ["drift"] * int(rng.integers(0, 2))
        ]
        if clutter
        else []
    )
    main = _main_object(
        label,
        rng=rng,
        frames=frames,
        height=height,
        width=width,
        scale=scale * object_scale,
        motion=motion,
        pair_hues=pair_hues,
        spin=spin,
    )
    layers = [(obj, obj["shape"], obj["colour"]) for obj in [*distractors, main]]
    if main["shape"] == "sail":  # its leading half in a light tint of its colour
        layers.append((main, "sail_lead", main["colour"] + (255.0 - main["colour"]) * _SAIL_TINT))
    for obj, shape, colour in layers:
        canvas = _paint(canvas, obj, shape=shape, colour=colour)
    clip = np.clip(canvas, 0, 255).round().astype(np.uint8)
    return clip, {k: np.asarray(main[k], dtype=np.float64) for k in ("cx", "cy", "radius", "angle", "alpha")}


def _main_object(
    label: int,
    *,
    rng: np.random.Generator,
    frames: int,
    height: int,
    width: int,
    scale: float,
    motion: float,
    pair_hues: bool,
    spin: float,
) -> dict[str, Any]:
    """The object that makes a clip's class (radius 6-10 times ``scale``): still and red or blue
    for the control pair, else moving as its pair does (`_KIND`), in its pair's hue with ``pair_hues``.
    Draws from ``rng`` in a fixed order (hue, then radius): a seed gives the same clip."""
    if label >= 10:
        hue = rng.uniform(-0.04, 0.04) if label == 10 else rng.uniform(0.6, 0.68)
        return _object(
            rng,
            frames=frames,
            height=height,
            width=width,
            radius=rng.uniform(6, 10) * scale,
            kind="still",
            hue=hue,
            vivid=pair_hues,
        )
    pair_hue = PAIR_HUES[label // 2] + rng.uniform(-_PAIR_HUE_SPREAD, _PAIR_HUE_SPREAD) if pair_hues else None
    return _object(
        rng,
        frames=frames,
        height=height,
        width=width,
        radius=rng.uniform(6, 10) * scale,
        kind=_KIND[label - label % 2],
        hue=pair_hue,
        motion=motion,
        spin=spin,
        vivid=pair_hues,
    )


def _paint(canvas: np.ndarray, obj: dict[str, Any], *, shape: str, colour: np.ndarray) -> np.ndarray:
    """``canvas`` (frames, H, W, 3) float with ``shape`` of ``obj`` drawn over it in ``colour``,
    anti-aliased, at its per-frame position, angle, size and opacity (wrapping at the edges)."""
    height, width = canvas.shape[1:3]
    ys = np.arange(height, dtype=np.float32) + 0.5
    xs = np.arange(width, dtype=np.float32) + 0.5
    dx = _wrap(xs[None, :] - obj["cx"][:, None].astype(np.float32), width)[:, None, :]
    dy = _wrap(ys[None, :] - obj["cy"][:, None].astype(np.float32), height)[:, :, None]
    f32 = {k: obj[k].astype(np.float32)[:, None, None] for k in ("angle", "radius", "alpha")}
    cover = (_coverage(shape, dx, dy, f32["angle"], f32["radius"]) * f32["alpha"])[..., None]
    return canvas + (colour.astype(np.float32) - canvas) * cover


# --- the hard scene --------------------------------------------------------------------
# A square and a circle act the class among 3-5 look-alike distractors (squares and circles
# of the same colours, drifting straight at the same speeds). Every square and circle, actors
# and distractors alike, takes one of the `PAIR_HUES`; positions and directions are uniform
# (on the torus), so a frame's global features (colours, shapes, where things are) say
# nothing of the class, and the order is in a local relation: how the circle moves around
# the square, which of the two leads, which moves first. Each temporal pair's second class
# is the first played backwards, as in the single-object scene; moreover every frame
# position t has the same distribution in both classes of a pair (the orbits and paths
# start at uniform angles, a launch's contact is mid-clip).

_HARD_DISTRACTORS = (3, 5)  # at least, at most
_REF_SPEED = (0.2, 1.0)  # the square's drift while the circle orbits or passes it (x motion, scale)


def _hard_colour(rng: np.random.Generator, hue: float | None = None) -> np.ndarray:
    """A vivid colour: ``hue``, else one of `PAIR_HUES` (jittered) as every square and circle of the hard scene."""
    if hue is None:
        hue = PAIR_HUES[int(rng.integers(len(PAIR_HUES)))] + rng.uniform(-_PAIR_HUE_SPREAD, _PAIR_HUE_SPREAD)
    return _hsv_to_rgb(hue % 1.0, rng.uniform(0.85, 1.0), rng.uniform(0.85, 1.0)) * 255


@dataclass(frozen=True)
class _Stage:
    """What every act of the hard scene draws from: frame times t (centred on mid-clip), the frame
    size, ``size`` (radii and distances, 1 at 64 px) and ``motion`` (speeds)."""

    t: np.ndarray
    height: int
    width: int
    size: float
    motion: float

    def place(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.uniform(0, self.width), rng.uniform(0, self.height)])

    def speed(self, rng: np.random.Generator, low: float = 1.0, high: float = 2.5) -> float:
        return rng.uniform(low, high) * self.motion * self.size

    def radius(self, rng: np.random.Generator) -> float:
        return rng.uniform(5, 7) * self.size

    def turn(self, rng: np.random.Generator) -> np.ndarray:
        """An angle growing (clockwise on screen) 7-13 degrees a frame times ``motion``, from a uniform start."""
        return rng.uniform(0, 2 * math.pi) + math.radians(rng.uniform(7, 13)) * self.motion * self.t


def _thing(shape: str, path: np.ndarray, radius: float, angle: float, colour: np.ndarray) -> dict[str, Any]:
    """An object of the hard scene: per-frame centre ``path`` (2, frames; wrapped onto the frame by
    `_paint`), fixed size and angle."""
    frames = path.shape[1]
    return {
        "shape": shape,
        "cx": path[0].astype(np.float64),
        "cy": path[1].astype(np.float64),
        "radius": np.full(frames, radius),
        "angle": np.full(frames, angle),
        "alpha": np.ones(frames),
        "colour": colour,
    }


def _heading(rng: np.random.Generator) -> np.ndarray:
    phi = rng.uniform(0, 2 * math.pi)
    return np.array([math.cos(phi), math.sin(phi)])


def _hard_actors(label: int, rng: np.random.Generator, stage: _Stage) -> tuple[dict | None, dict]:
    """The square and the circle (or, for the control pair, no square and a ring) acting the
    first class of ``label``'s pair, forwards."""
    t, kind = stage.t, label // 2
    start = stage.place(rng)
    if kind == 5:  # the control pair: a still ring, red or blue (a frame tells them apart)
        hue = rng.uniform(-0.04, 0.04) if label == 10 else rng.uniform(0.6, 0.68)
        path = start[:, None] + rng.normal(0, 0.3 * stage.size, (2, len(t)))
        return None, _thing("ring", path, 1.2 * stage.radius(rng), 0.0, _hard_colour(rng, hue))
    r_square, r_circle = stage.radius(rng), stage.radius(rng)
    touching = 0.8 * r_square + r_circle  # between the centres of a square's face and a circle in contact
    u, speed, angle = _heading(rng), stage.speed(rng), rng.uniform(0, 2 * math.pi)
    if kind in (0, 3):  # the circle goes round a drifting square: in a circle, or straight past it
        square = start[:, None] + np.outer(_heading(rng) * stage.speed(rng, *_REF_SPEED), t)
        if kind == 0:  # orbiting clockwise
            theta = stage.turn(rng)
            circle = square + touching * rng.uniform(1.3, 1.7) * np.stack([np.cos(theta), np.sin(theta)])
        else:  # passing with the square on its right (y down): clockwise about the square
            right = np.array([-u[1], u[0]])
            circle = square - (touching + rng.uniform(1, 4) * stage.size) * right[:, None] + np.outer(u * speed, t)
    elif kind == 1:  # the square chases the circle: both go along u, the square behind
        circle = start[:, None] + np.outer(u * speed, t)
        square = circle - (touching + rng.uniform(2, 5) * stage.size) * u[:, None]
        angle = math.atan2(u[1], u[0])
    elif kind == 2:  # the square launches the circle: it runs into it mid-clip and stops, the circle runs on
        square = start[:, None] - np.outer(u, touching + speed * np.maximum(-t, 0))
        circle = start[:, None] + np.outer(u, speed * np.maximum(t, 0))
        angle = math.atan2(u[1], u[0])  # a face towards the circle
    else:  # kind 4: the two go side by side along u, the square on the circle's right
        circle = start[:, None] + np.outer(u * speed, t)
        square = circle + (touching + rng.uniform(2, 5) * stage.size) * np.array([-u[1], u[0]])[:, None]
        angle = math.atan2(u[1], u[0])
    square_colour, circle_colour = _hard_colour(rng), _hard_colour(rng)
    return (
        _thing("square", square, r_square, angle, square_colour),
        _thing("circle", circle, r_circle, 0.0, circle_colour),
    )


def _hard_distractor(rng: np.random.Generator, stage: _Stage) -> dict[str, Any]:
    """A square or circle of the actors' colours and sizes, drifting straight at their speeds."""
    shape = ("square", "circle")[int(rng.integers(2))]
    path = stage.place(rng)[:, None] + np.outer(_heading(rng) * stage.speed(rng), stage.t)
    return _thing(shape, path, stage.radius(rng), rng.uniform(0, 2 * math.pi), _hard_colour(rng))


def _render_hard(
    label: int,
    *,
    rng: np.random.Generator,
    frames: int,
    height: int,
    width: int,
    clutter: bool,
    motion: float,
    object_scale: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One clip of the hard scene's class ``label`` (forwards, `render_clip` reverses) and its
    actors' per-frame positions: the circle's (or ring's) cx, cy, the square's ref_cx, ref_cy
    (NaN for the control pair's ring, which has no square)."""
    canvas = _background(rng, frames, height, width, clutter)
    t = np.arange(frames, dtype=np.float64) - (frames - 1) / 2
    stage = _Stage(t=t, height=height, width=width, size=min(height, width) / 64.0 * object_scale, motion=motion)
    square, circle = _hard_actors(label, rng, stage)
    count = int(rng.integers(_HARD_DISTRACTORS[0], _HARD_DISTRACTORS[1] + 1))
    things = [_hard_distractor(rng, stage) for _ in range(count)]
    things += [circle] if square is None else [square, circle]
    for k in rng.permutation(len(things)):  # no layer order tells the actors from the distractors
        canvas = _paint(canvas, things[k], shape=things[k]["shape"], colour=things[k]["colour"])
    clip = np.clip(canvas, 0, 255).round().astype(np.uint8)
    nan = np.full(frames, np.nan)
    params = {
        "cx": circle["cx"] % width,
        "cy": circle["cy"] % height,
        "ref_cx": nan if square is None else square["cx"] % width,
        "ref_cy": nan if square is None else square["cy"] % height,
    }
    return clip, params


# --- the camouflage scene ----------------------------------------------------------------
# A random-dot kinematogram: every frame is a texture of square dots (cells), each cell one of
# the clip's two colours at random, and a disc cut from a second texture drawn the same way.
# Everything is rendered on the cell grid and scaled up, positions move by whole cells and the
# disc is made of whole cells, so no frame shows an edge, a seam or a phase: each frame on its
# own is a sample of the same texture whatever the class (with ``pair_hues``, whatever the class
# within its pair), and only how regions move between frames shows the disc and its direction.
# A per-frame model (TSN) has no cue; a model that sees neighbouring frames at each place has.
# Each frame is a window onto textures larger than the frame by the clip's largest step, so
# nothing wraps: what leaves at one edge is gone and what enters at the other is new texture.
# (A first version rolled the textures round the frame; late fusion, comparing the frames'
# pooled features, then read the background pair partly after 8640 steps, docs/reproduce.md.)
# The disc is not wrapped either: near an edge it is partly outside the frame. A frame whose
# side is not a multiple of the cell cuts the last cell.

_CAMO_CELL = 2  # pixels a cell at 32x32 (scaled with the frame)
_CAMO_DENSITY = 0.5  # the odds of a dot in a cell
_CAMO_RADIUS = (4.0, 6.0)  # the disc's radius in cells at 32x32, times object_scale
# direction (dx, dy) of the first class of each temporal pair (y down); kind 2 moves the background
_CAMO_DIRECTIONS = {0: (1, 0), 1: (0, 1), 2: (1, 0), 3: (-1, 1), 4: (1, 1)}


def _dots(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A random binary texture (rows, cols): each cell a dot (1) with odds `_CAMO_DENSITY`."""
    return (rng.random((rows, cols)) < _CAMO_DENSITY).astype(np.int64)


def _window(texture: np.ndarray, top: int, left: int, rows: int, cols: int) -> np.ndarray:
    """The (rows, cols) part of ``texture`` from (top, left): a texture moved by (dy, dx) cells is
    the window from (margin - dy, margin - dx), its new cells at the edge it moves away from."""
    return texture[top : top + rows, left : left + cols]


def _render_camouflage(
    label: int,
    *,
    rng: np.random.Generator,
    frames: int,
    height: int,
    width: int,
    clutter: bool,
    motion: float,
    object_scale: float,
    pair_hues: bool,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One clip of the camouflage scene's class ``label`` (forwards, `render_clip` reverses) and
    its per-frame parameters in pixels: the disc's centre (cx, cy; the ring's for the control
    pair; it may lie outside the frame) and radius (the cells whose centres it covers are the
    disc's), and how far the background texture has moved (background_dx, background_dy; whole
    cells). Nothing wraps round the frame: each frame is a window onto larger textures. Speeds are
    those of the single scene (1-2.5 px a frame at 64x64, times ``motion``), rounded to whole
    cells; ``clutter`` adds stronger per-frame noise."""
    cell = max(1, round(_CAMO_CELL * min(height, width) / 32))
    rows, cols = -(-height // cell), -(-width // cell)
    t = np.arange(frames, dtype=np.float64) - (frames - 1) / 2
    kind = label // 2
    hue = rng.uniform(0, 1)
    if pair_hues:  # the dots' hue names the pair (the control pair's is any pair's)
        band = kind if kind < 5 else int(rng.integers(len(PAIR_HUES)))
        hue = PAIR_HUES[band] + rng.uniform(-_PAIR_HUE_SPREAD, _PAIR_HUE_SPREAD)
    high = _hsv_to_rgb(hue % 1.0, rng.uniform(0.85, 1.0), rng.uniform(0.85, 1.0)) * 255
    low = _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.1, 0.3)) * 255
    centre = np.array([rng.uniform(0, cols), rng.uniform(0, rows)])
    radius = rng.uniform(*_CAMO_RADIUS) * min(rows, cols) / 16 * object_scale
    speed = rng.uniform(1.0, 2.5) * motion * min(height, width) / 64 / cell  # cells a frame
    disc_step = np.zeros((frames, 2), dtype=np.int64)
    back_step = np.zeros((frames, 2), dtype=np.int64)
    if kind < 5:
        direction = np.array(_CAMO_DIRECTIONS[kind], dtype=np.float64)
        # whole cells, from a random phase: even steps (no pause at mid-clip), the same when played backwards
        travel = np.outer(t, direction / np.linalg.norm(direction)) * speed + rng.uniform(0, 1, size=2)
        moved = np.floor(travel).astype(np.int64)
        if kind == 2:
            back_step = moved
        else:
            disc_step = moved
    # each frame is a window onto textures `margin` cells wider on every side than the frame
    margin = int(np.abs(np.concatenate([back_step, disc_step])).max())
    background = _dots(rng, rows + 2 * margin, cols + 2 * margin)
    inside = _dots(rng, rows + 2 * margin, cols + 2 * margin)
    ys, xs = np.mgrid[0:rows, 0:cols] + 0.5
    grid = np.empty((frames, rows, cols), dtype=np.int64)
    for f in range(frames):
        bx, by = back_step[f]
        dx, dy = disc_step[f]
        frame = _window(background, margin - by, margin - bx, rows, cols)
        inside_disc = (xs - centre[0] - dx) ** 2 + (ys - centre[1] - dy) ** 2 <= radius**2
        grid[f] = np.where(inside_disc, _window(inside, margin - dy, margin - dx, rows, cols), frame)
    colours = np.stack([low, high]).astype(np.float32)
    canvas = colours[grid].repeat(cell, axis=1).repeat(cell, axis=2)[:, :height, :width]
    sigma = np.float32(rng.uniform(4, 10) if clutter else 3)
    canvas = canvas + rng.standard_normal(size=canvas.shape, dtype=np.float32) * sigma
    cx = (centre[0] + disc_step[:, 0]) * cell  # may lie outside the frame: the disc is partly out
    cy = (centre[1] + disc_step[:, 1]) * cell
    if kind == 5:  # the control pair: a still ring, red or blue, over the still texture (where the disc is)
        hue = rng.uniform(-0.04, 0.04) if label == 10 else rng.uniform(0.6, 0.68)
        ring = _thing(
            "ring",
            np.array([cx, cy]),
            radius * cell,  # the size of the disc it stands in for
            0.0,
            _hard_colour(rng, hue),
        )
        canvas = _paint(canvas, ring, shape="ring", colour=ring["colour"])
    clip = np.clip(canvas, 0, 255).round().astype(np.uint8)
    return clip, {
        "cx": cx.astype(np.float64),
        "cy": cy.astype(np.float64),
        "radius": np.full(frames, radius * cell),
        "background_dx": (back_step[:, 0] * cell).astype(np.float64),
        "background_dy": (back_step[:, 1] * cell).astype(np.float64),
    }


# --- writing -------------------------------------------------------------------------


def _assign(num_videos: int, seed: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Balanced labels in a seeded order, and a per-class stratified validation split."""
    rng = np.random.default_rng([seed, 2**31])
    labels = rng.permutation(np.arange(num_videos) % len(CLASSES))
    is_val = np.zeros(num_videos, dtype=bool)
    for c in range(len(CLASSES)):
        members = np.flatnonzero(labels == c)
        n_val = min(max(1, round(len(members) * val_fraction)), len(members) - 1)
        is_val[members[:n_val]] = True  # every class in both splits (num_videos >= 2 per class)
    return labels, is_val


def video_id(index: int) -> str:
    return f"synth_{index:06d}"


def rotating_object(spin: float) -> str:
    """What the rotating classes draw at ``spin`` (recorded in meta.json): a triangle or a bar
    at 1, the two-tone sail otherwise."""
    return "triangle/bar" if spin == 1.0 else _FAST_ROTATING


def _check_rates(*, motion: float, object_scale: float, spin: float) -> None:
    for key, value in (("motion", motion), ("object_scale", object_scale), ("spin", spin)):
        if not value > 0:
            raise ValueError(f"{key} must be positive, got {value}")


def scene_classes(scene: str = "single") -> tuple[str, ...]:
    """The class names of a scene of `SCENES`: `CLASSES` (one object per clip), `HARD_CLASSES` or
    `CAMOUFLAGE_CLASSES`."""
    _check_scene(scene, pair_hues=False, spin=1.0)
    return {"hard": HARD_CLASSES, "camouflage": CAMOUFLAGE_CLASSES}.get(scene, CLASSES)


def _check_scene(scene: str, *, pair_hues: bool, spin: float) -> None:
    """A scene of `SCENES` and only its settings (``pair_hues`` and ``spin`` belong to some)."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; expected one of {', '.join(SCENES)}")
    if scene == "hard" and (pair_hues or spin != 1.0):
        raise ValueError("pair_hues and spin are settings of the single scene; the hard scene has neither")
    if scene == "camouflage" and spin != 1.0:
        raise ValueError("spin is a setting of the single scene; the camouflage scene has no rotation")


def _make_one(job: tuple[Path, int, int, int, int, int, int, bool, float, bool, float, float, str]) -> int:
    root, index, label, seed, height, width, frames, clutter, motion, pair_hues, object_scale, spin, scene = job
    name = video_id(index)
    folder = root / FRAMES_DIR / name
    video = root / VIDEOS_DIR / (name + VIDEO_SUFFIX)
    marker = root / DONE_DIR / name
    legacy = folder / ".complete"  # earlier versions marked a clip inside its frame folder
    if legacy.is_file():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("")
        legacy.unlink()
    if marker.is_file() and folder.is_dir() and video.is_file():
        return index
    clip, _ = render_clip(
        label,
        rng=np.random.default_rng([seed, index]),
        size=(height, width),
        frames=frames,
        clutter=clutter,
        motion=motion,
        pair_hues=pair_hues,
        object_scale=object_scale,
        spin=spin,
        scene=scene,
    )
    write_frame_folder(folder, clip, template=FRAME_TEMPLATE, quality=90)
    write_video(video, clip, fps=DEFAULT_FPS)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    return index


def generate_synthetic(
    out_dir: str | Path,
    *,
    num_videos: int = DEFAULT_NUM_VIDEOS,
    size: int | tuple[int, int] = DEFAULT_SIZE,
    frames: int = DEFAULT_FRAMES,
    seed: int = 0,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    workers: int | None = None,
    progress: bool = True,
    clutter: bool = True,
    motion: float = 1.0,
    pair_hues: bool = False,
    object_scale: float = 1.0,
    spin: float = 1.0,
    scene: str = "single",
) -> SyntheticPaths:
    """Write the synthetic dataset to ``out_dir`` (layout in the module docstring).

    ``size`` is the side of square frames or (height, width), even numbers (H.264).
    ``clutter``, ``motion``, ``pair_hues``, ``object_scale``, ``spin`` and ``scene`` (`SCENES`:
    one object per clip, the hard scene of `HARD_CLASSES` or the camouflage scene of
    `CAMOUFLAGE_CLASSES`): see `render_clip`.
    Re-running with the same arguments skips finished clips and gives identical files.
    """
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    _check_settings(
        height=height, width=width, frames=frames, num_videos=num_videos, workers=workers, val_fraction=val_fraction
    )
    _check_rates(motion=motion, object_scale=object_scale, spin=spin)
    _check_scene(scene, pair_hues=pair_hues, spin=spin)
    paths = synthetic_paths(out_dir)
    settings = _settings_of(
        num_videos=num_videos,
        height=height,
        width=width,
        frames=frames,
        seed=seed,
        val_fraction=val_fraction,
        clutter=clutter,
        motion=motion,
        pair_hues=pair_hues,
        object_scale=object_scale,
        spin=spin,
        scene=scene,
    )
    _check_same_settings(paths, settings, out_dir=out_dir)
    _write_meta(paths, settings)  # first, so that resuming an interrupted run checks the settings too
    paths.frames_dir.mkdir(parents=True, exist_ok=True)
    paths.videos_dir.mkdir(parents=True, exist_ok=True)
    labels, is_val = _assign(num_videos, seed, val_fraction)
    render = tuple(settings[key] for key in _RENDER_KEYS)  # what each clip's job needs of the settings
    jobs = [(paths.root, i, int(labels[i]), *render, scene) for i in range(num_videos)]
    _make_all(jobs, workers=workers or min(os.cpu_count() or 1, 8), progress=progress)
    _write_lists(paths, labels=labels, is_val=is_val, frames=frames, classes=scene_classes(scene))
    return paths


# the job tuple of `_make_all` after (root, index, label), before the scene
_RENDER_KEYS = ("seed", "height", "width", "frames", "clutter", "motion", "pair_hues", "object_scale", "spin")


def _settings_of(
    *,
    num_videos: int,
    height: int,
    width: int,
    frames: int,
    seed: int,
    val_fraction: float,
    clutter: bool,
    motion: float,
    pair_hues: bool,
    object_scale: float,
    spin: float,
    scene: str,
) -> dict[str, Any]:
    """The settings a dataset folder records (meta.json) and a rerun must repeat."""
    settings: dict[str, Any] = {
        "num_videos": num_videos,
        "height": height,
        "width": width,
        "frames": frames,
        "seed": seed,
        "val_fraction": val_fraction,
        "clutter": clutter,
        "motion": float(motion),
        "pair_hues": pair_hues,
        "object_scale": float(object_scale),
        "spin": float(spin),
        "rotating_object": rotating_object(spin) if scene == "single" else None,
        # the single scene's settings (and meta.json) are as before scenes existed
        **({} if scene == "single" else {"scene": scene}),
        # the camouflage scene's first version rolled its textures round the frame: its folders
        # (and `tsm reproduce`'s runs on them) are another dataset
        **({"texture_wraps": False} if scene == "camouflage" else {}),
    }
    return settings


def _check_settings(
    *, height: int, width: int, frames: int, num_videos: int, workers: int | None, val_fraction: float
) -> None:
    if height < 16 or width < 16 or height % 2 or width % 2:
        raise ValueError(f"size must be even and at least 16, got {height}x{width}")
    if frames < 2:
        raise ValueError(f"frames must be at least 2, got {frames}")
    if num_videos < 2 * len(CLASSES):
        raise ValueError(
            f"num_videos must be at least {2 * len(CLASSES)} (every class in train and val), got {num_videos}"
        )
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")


def _check_same_settings(paths: SyntheticPaths, settings: dict[str, Any], *, out_dir: str | Path) -> None:
    """A dataset already in ``paths`` must have been made with ``settings``: it is resumed, never overwritten."""
    if not paths.meta.is_file():
        return
    try:
        old = json.loads(paths.meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{paths.meta}: unreadable synthetic dataset metadata ({exc}); use a new --out directory"
        ) from None
    old_settings = old.get("settings")
    if isinstance(old_settings, dict):
        # written before the options existed
        old_settings = {
            "clutter": True,
            "motion": 1.0,
            "pair_hues": False,
            "object_scale": 1.0,
            "spin": 1.0,
            **old_settings,
        }
        # before the key existed, spin != 1 drew a clock hand: such a dataset is not this one
        old_settings.setdefault("rotating_object", "triangle/bar" if old_settings["spin"] == 1.0 else "hand")
    if old_settings != settings:
        raise ValueError(
            f"{paths.meta}: {out_dir} holds a synthetic dataset with other settings "
            f"{old.get('settings')}; use a new --out directory"
        )


def _write_meta(paths: SyntheticPaths, settings: dict[str, Any]) -> None:
    meta = {
        "classes": list(scene_classes(settings.get("scene", "single"))),
        "temporal_pairs": [list(p) for p in TEMPORAL_PAIRS],
        "control_pairs": [list(p) for p in CONTROL_PAIRS],
        "frame_template": FRAME_TEMPLATE,
        "fps": DEFAULT_FPS,
        "settings": settings,
    }
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.meta.write_text(json.dumps(meta, indent=2) + "\n")


def _make_all(jobs: Sequence[tuple], *, workers: int, progress: bool) -> None:
    """Render and write every clip not finished yet (`_make_one`), in ``workers`` processes."""
    bar = tqdm(total=len(jobs), desc="synth", unit="clip", disable=not progress)
    if workers == 1:
        for job in jobs:
            _make_one(job)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            try:
                for _ in pool.map(_make_one, jobs, chunksize=16):
                    bar.update()
            except BaseException:  # interrupted (Ctrl-C, SIGTERM): drop the clips not started yet
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    bar.close()


def _write_lists(
    paths: SyntheticPaths, *, labels: np.ndarray, is_val: np.ndarray, frames: int, classes: Sequence[str]
) -> None:
    """The train/val frame and video lists and classes.txt (``classes``)."""
    num_videos = len(labels)
    frame_rows = [(f"{FRAMES_DIR}/{video_id(i)}", frames, int(labels[i])) for i in range(num_videos)]
    video_rows = [(f"{VIDEOS_DIR}/{video_id(i)}{VIDEO_SUFFIX}", int(labels[i])) for i in range(num_videos)]
    write_frame_list(paths.train_frames, [r for r, v in zip(frame_rows, is_val, strict=True) if not v])
    write_frame_list(paths.val_frames, [r for r, v in zip(frame_rows, is_val, strict=True) if v])
    write_video_list(paths.train_videos, [r for r, v in zip(video_rows, is_val, strict=True) if not v])
    write_video_list(paths.val_videos, [r for r, v in zip(video_rows, is_val, strict=True) if v])
    write_classes(paths.classes, classes)


def pair_of(label: int, pairs: Sequence[tuple[int, int]] = TEMPORAL_PAIRS + CONTROL_PAIRS) -> tuple[int, int]:
    """The (first, second) pair a synthetic class belongs to."""
    for pair in pairs:
        if label in pair:
            return pair
    raise ValueError(f"label {label} is in no synthetic class pair")


def generate_class_folders(
    out_dir: str | Path,
    *,
    classes: Sequence[str],
    videos_per_class: int,
    size: int | tuple[int, int] = DEFAULT_SIZE,
    frames: int = DEFAULT_FRAMES,
    seed: int = 0,
    fps: int = DEFAULT_FPS,
    **render: Any,
) -> Path:
    """Synthetic clips of some of the classes as a tree of your own videos would be:
    ``out_dir/<class>/<class>_<k>.mp4`` (what ``tsm prepare folder`` and ``tsm finetune`` read).

    ``classes`` are names of `CLASSES`; ``render`` are `render_clip`'s options (``clutter``,
    ``pair_hues``, ``motion`` ...). Clip k of a class is drawn from a generator seeded by
    (seed, label, k): the same call writes the same videos."""
    unknown = [name for name in classes if name not in CLASSES]
    if unknown:
        raise ValueError(f"unknown synthetic classes {', '.join(unknown)}; choose from {', '.join(CLASSES)}")
    if videos_per_class < 1:
        raise ValueError(f"videos_per_class must be at least 1, got {videos_per_class}")
    root = Path(out_dir)
    for name in classes:
        label = CLASSES.index(name)
        for k in range(videos_per_class):
            rng = np.random.default_rng([seed, label, k])
            clip, _ = render_clip(label, rng=rng, size=size, frames=frames, **render)
            write_video(root / name / f"{name}_{k:03d}{VIDEO_SUFFIX}", clip, fps=fps)
    return root


def render_sequence(
    labels: Sequence[int],
    *,
    frames_each: int | Sequence[int],
    size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    **render: Any,
) -> np.ndarray:
    """One long uint8 (frames, H, W, 3) video: a clip of each class of ``labels`` in turn,
    ``frames_each`` frames long (one count, or one per clip), for testing recognition over time
    (the true segment boundaries are the cumulative frame counts)."""
    counts = [frames_each] * len(labels) if isinstance(frames_each, int) else list(frames_each)
    if len(counts) != len(labels):
        raise ValueError(f"frames_each: {len(counts)} counts for {len(labels)} clips")
    clips = [
        render_clip(label, rng=np.random.default_rng([seed, k]), size=size, frames=n, **render)[0]
        for k, (label, n) in enumerate(zip(labels, counts, strict=True))
    ]
    return np.concatenate(clips)
