"""Your videos, your classes: `tsm finetune` end to end, predictions over a long video, `pipeline`.

The data is a class-folder tree of mp4 files from the synthetic generator (32x32, plain
backgrounds, each class's object in its own hue). The source checkpoint is built here: a TSM
ResNet-18 trained briefly on five *other* synthetic classes, so fine-tuning transfers its
features, as fine-tuning from published weights does. One fine-tuning run (module fixture)
serves the accuracy, model-card, long-video and pipeline tests: 16 s on an idle 2-core CPU, 34 s
under load, so they are slow tests (``-m slow``). `tests/test_pipeline.py`, `tests/test_timeline.py`
and `tests/data/test_folder.py` cover the same pieces on untrained models in the default suite, as
do the flow and recipe tests below.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from temporal_shift.checkpoint.format import read_checkpoint, save_checkpoint
from temporal_shift.data.encode import write_video
from temporal_shift.data.folder import prepare_folder
from temporal_shift.data.synthetic import CLASSES, DEFAULT_FPS, generate_class_folders, render_sequence
from temporal_shift.engine.config import config_from_dict
from temporal_shift.engine.finetune import FinetuneRecipe, FinetuneResult, finetune
from temporal_shift.engine.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

RENDER = dict(size=32, frames=8, clutter=False, pair_hues=True, object_scale=2.5)
SOURCE_CLASSES = ("moving_left", "shrinking", "rotating_clockwise", "appearing", "moving_up")
TARGET = ("still_red", "moving_down", "still_blue")  # one hue each: a few epochs learn them


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The source checkpoint: TSM-R18 (T=4, 32x32) trained for 6 epochs on five other classes."""
    base = tmp_path_factory.mktemp("pretrain")
    root = generate_class_folders(base / "videos", classes=SOURCE_CLASSES, videos_per_class=8, seed=1, **RENDER)
    data = prepare_folder(root, out_dir=base / "data", progress=False)
    config = config_from_dict(
        {
            "model": {"arch": "resnet18", "n_segment": 4, "dropout": 0.3, "small_maps": True},
            "data": {
                "root": str(data.root),
                "train_list": str(data.train_list),
                "val_list": str(data.val_list),
                "num_classes": data.num_classes,
                "size": 32,
                "scale_size": 32,
                "scales": [1.0],
                "flip": False,
                "batch_size": 4,
                "workers": 0,
            },
            "optim": {"optimizer": "adamw", "lr": 1e-3, "lr_batch": None, "schedule": "cosine", "epochs": 6},
            "run": {"out_dir": str(base / "run"), "progress": False},
        }
    )
    return train(config).last_checkpoint


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory, pretrained: Path) -> FinetuneResult:
    base = tmp_path_factory.mktemp("finetune")
    root = generate_class_folders(base / "my videos", classes=TARGET, videos_per_class=10, seed=2, **RENDER)
    (root / "still_red" / "notes.txt").write_text("not a video")
    return finetune(
        root,
        source=pretrained,
        out_dir=base / "run",
        epochs=8,
        batch_size=4,
        lr=0.064,  # for 64 clips: 0.004 at a batch of 4 (a briefly trained source wants more than 0.001)
        val_fraction=0.25,
        device="cpu",
        workers=0,
        progress=False,
        log=lambda line: None,
    )


@pytest.mark.slow  # the fine-tuning fixture: 16-34 s on 2 shared cores
def test_finetune_beats_chance_and_writes_a_model_card(finetuned: FinetuneResult) -> None:
    r = finetuned
    chance = 100.0 / len(TARGET)
    assert r.data.classes == sorted(TARGET) and r.data.counts == {"train": [7, 7, 7], "val": [3, 3, 3]}
    assert r.test.top1 >= chance + 30, r.test.summary()  # chance 33.3%; 9 val videos
    # the recipe: the source's model with a new head, the reference's fine-tuning settings
    model = r.config.model_config()
    assert (model.arch, model.n_segment, model.shift, model.num_classes) == ("resnet18", 4, True, 3)
    assert model.partial_bn and model.dropout == 0.8 and r.config.optim.fc_lr5
    assert (r.config.optim.lr, r.config.optim.lr_batch, r.config.optim.lr_steps) == (0.064, 64, [3, 6])
    assert "0.064 x 4 / 64 = 0.004" in r.recipe and "scaled linearly with the batch" in r.recipe
    saved = read_checkpoint(r.checkpoint)
    assert saved["class_names"] == sorted(TARGET) and saved["state_dict"]["head.weight"].shape == (3, 512)
    card = r.card.read_text()
    for text in (
        "## Data",
        "## Recipe",
        "## Accuracy",
        "| still_blue | 7 | 3 |",
        "skipped: 1 not videos",
        r.recipe,
        f"top-1 **{r.test.top1:.2f}%** (chance 33.3%)",
        "| true \\ predicted | moving_down | still_blue | still_red |",
        f"tsm predict clip.mp4 --checkpoint {r.checkpoint}",
        "this figure is optimistic",  # best.pt was chosen on the same val videos
    ):
        assert text in card, text
    out = r.out_dir
    assert json.loads((out / "finetune.json").read_text())["test"]["top1"] == r.test.top1
    for name in ("test/metrics.json", "test/confusion.png", "data/classes.txt", "config.yaml", "log.csv"):
        assert (out / name).is_file(), name


@pytest.mark.slow  # the fine-tuning fixture: 16-34 s on 2 shared cores
def test_finetune_refuses_a_used_folder_and_the_wrong_modality(finetuned: FinetuneResult, run_cli) -> None:
    root, out = finetuned.data.source, finetuned.out_dir
    args = ["finetune", root, "--checkpoint", finetuned.checkpoint, "--device", "cpu", "--no-progress"]
    used = run_cli([*args, "--out", out])
    assert used.code == 2 and "already holds a run (last.pt): pass --resume" in used.err
    flow = run_cli([*args, "--out", out.parent / "flow", "--flow"])
    assert flow.code == 2 and "an RGB model; --flow fine-tunes a flow stream" in flow.err
    assert len(flow.err.strip().splitlines()) == 1


@pytest.mark.slow  # the fine-tuning fixture: 16-34 s on 2 shared cores
def test_long_video_segments_recover_the_boundaries_within_one_stride(
    finetuned: FinetuneResult, tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["still_red", "moving_down", "still_blue", "still_red"]
    lengths = [30, 26, 34, 28]  # frames at 12 fps: boundaries at 2.5, 4.67 and 7.5 s
    render = {k: v for k, v in RENDER.items() if k != "frames"}
    frames = render_sequence([CLASSES.index(n) for n in names], frames_each=lengths, seed=5, **render)
    video = write_video(tmp_path / "long.mp4", frames, fps=DEFAULT_FPS)
    # windows of 4 frames every 2: a window straddling a boundary holds both classes, and whichever the
    # model calls it, the boundary lands within half a window, here one stride (docs/evaluation.md)
    window, stride = 4 / DEFAULT_FPS, 2 / DEFAULT_FPS

    # decoded once, in order: no random access, one pass over the frames
    from temporal_shift.data import decode, sources

    passes = []
    monkeypatch.setattr(decode, "read_video", lambda *a, **k: pytest.fail("a window re-decoded the video"))
    frames_of = sources.VideoSource.frames
    monkeypatch.setattr(sources.VideoSource, "frames", lambda self: passes.append(1) or frames_of(self))
    model = ["--checkpoint", finetuned.checkpoint, "--device", "cpu"]
    windows = ["--window", window, "--stride", stride, "--min-length", 0.5, "--plot", "--out", tmp_path / "out"]
    result = run_cli(["predict", video, *model, *windows])
    assert result.code == 0, result.err
    assert passes == [1]
    timeline = json.loads((tmp_path / "out" / "long.timeline.json").read_text())
    segments = timeline["segments"]
    assert [s["name"] for s in segments] == names, result.out
    truth = np.cumsum(lengths)[:-1] / DEFAULT_FPS
    found = np.array([s["start"] for s in segments[1:]])
    errors = np.abs(found - truth)
    assert errors.max() <= stride + 1e-6, f"boundary errors {errors} s, stride {stride:.3f} s"
    assert segments[0]["start"] == 0 and segments[-1]["end"] == pytest.approx(sum(lengths) / DEFAULT_FPS)
    assert len(timeline["windows"]) == (sum(lengths) - 4) // 2 + 1  # every 2 frames, the last ending at the end
    assert timeline["windows"][0]["start"] == 0 and timeline["windows"][0]["end"] == pytest.approx(window)
    for name in ("long.windows.csv", "long.segments.csv", "long.timeline.png"):
        assert (tmp_path / "out" / name).is_file(), name
    header = (tmp_path / "out" / "long.segments.csv").read_text().splitlines()[0]
    assert header == "label,name,start,end,score"


@pytest.mark.slow  # the fine-tuning fixture: 16-34 s on 2 shared cores
def test_pipeline_classifies_paths_frame_arrays_and_lists(finetuned: FinetuneResult, tmp_path: Path) -> None:
    import temporal_shift
    from temporal_shift.data.sources import VideoSource

    classify = temporal_shift.pipeline(finetuned.checkpoint, device="cpu")
    video = next((finetuned.data.source / "still_blue").glob("*.mp4"))
    top = classify(video, top_k=2)
    assert [set(d) for d in top] == [{"label", "score"}] * 2 and top[0]["label"] == "still_blue"
    assert top[0]["score"] >= top[1]["score"]
    # the same frames as an array: the same clip is sampled, so the same scores
    frames = torch.stack([f.image for f in VideoSource(video).frames()]).permute(0, 2, 3, 1).numpy()
    as_array = classify(frames, top_k=3)
    assert [d["label"] for d in as_array] == [d["label"] for d in classify(video, top_k=3)]
    assert as_array[0]["score"] == pytest.approx(top[0]["score"], abs=1e-5)
    # a list is classified in batches, one result per video, as one by one
    red = next((finetuned.data.source / "still_red").glob("*.mp4"))
    batched = classify([video, frames, red], top_k=1)
    assert [b[0]["label"] for b in batched] == ["still_blue", "still_blue", classify(red, top_k=1)[0]["label"]]
    with pytest.raises(ValueError, match=r"video 0: expected uint8 frames \(T, H, W, 3\), got torch.float32"):
        classify(torch.zeros(4, 8, 8, 3))
    with pytest.raises(ValueError, match="a folder of 10 videos; pass them as a list"):
        classify(finetuned.data.source / "still_red")


def test_flow_stream_finetunes_from_a_flow_checkpoint(tmp_path: Path) -> None:
    """--flow: optical flow of every video (Farneback), then the flow stream from a flow model."""
    pytest.importorskip("cv2")
    from temporal_shift.models import build_model

    root = generate_class_folders(tmp_path / "videos", classes=TARGET[:2], videos_per_class=3, seed=3, **RENDER)
    source = build_model("resnet18", num_classes=5, n_segment=4, modality="flow", flow_length=2, dropout=0.0)
    checkpoint = save_checkpoint(source, tmp_path / "flow.pt", extra={"config": {"data": {"size": 32}}})
    result = finetune(
        root,
        source=checkpoint,
        out_dir=tmp_path / "run",
        flow=True,
        epochs=1,
        batch_size=2,
        val_fraction=0.34,
        device="cpu",
        workers=0,
        progress=False,
        log=lambda line: None,
    )
    model = result.config.model_config()
    assert (model.modality, model.flow_length, model.num_classes) == ("flow", 2, 2)
    assert result.config.data.train_list.endswith("train_flow.txt") and result.test.num_videos == 2
    assert (tmp_path / "run" / "data" / "flow" / "still_red" / "still_red_000" / "flow_x_00001.jpg").is_file()
    assert "optical flow stacks of L=2" in result.card.read_text()
    # the flow stream's first convolution started from the source's, not from scratch
    tuned = read_checkpoint(result.checkpoint)["state_dict"]["backbone.conv1.weight"]
    assert torch.allclose(tuned, source.state_dict()["backbone.conv1.weight"], atol=1e-2)


def test_recipe_steps_and_rule() -> None:
    recipe = FinetuneRecipe()
    assert recipe.lr_steps(25) == [10, 20]  # the reference's steps of its 25 epochs
    assert recipe.lr_steps(1) == [] and recipe.lr_steps(3) == [1, 2]
    assert "0.001 x 64 / 64 = 0.001" in recipe.describe(batch=64)
    assert "0.001 x 16 x 2 processes / 64 = 0.0005" in recipe.describe(batch=16, world=2)


def test_finetune_without_out_uses_runs_finetune_root_name(tmp_path: Path, run_cli, monkeypatch) -> None:
    """--out is optional: the run goes to runs/finetune-<ROOT's name> under the working directory (here
    already holding a run, so the command stops before training and names that folder)."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "my clips"
    (root / "a").mkdir(parents=True)
    used = tmp_path / "runs" / "finetune-my clips"
    used.mkdir(parents=True)
    (used / "last.pt").write_bytes(b"")
    checkpoint = tmp_path / "source.pt"
    checkpoint.write_bytes(b"not read: the used run folder is refused first")
    result = run_cli(["finetune", root, "--checkpoint", checkpoint, "--device", "cpu", "--no-progress"])
    assert result.code == 2, result.err
    assert result.err.strip() == (
        "tsm finetune: error: runs/finetune-my clips already holds a run (last.pt): pass --resume to continue it, "
        "or choose another --out"
    )
