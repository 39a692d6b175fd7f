"""Online TSM: streaming step == offline causal model, buffers, export, online-demo import."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from conftest import calibrated_model, random_state
from reference_forward import mobilenet_v2_forward
from temporal_shift.checkpoint.format import save_checkpoint
from temporal_shift.checkpoint.loading import load_model, load_online
from temporal_shift.cli import main
from temporal_shift.data.synthetic import generate_synthetic
from temporal_shift.engine.config import load_config
from temporal_shift.engine.export import OnnxStream, export_online, onnx_graph_summary
from temporal_shift.engine.train import train
from temporal_shift.models import build_model
from temporal_shift.models.online import OnlineRecognizer, OnlineStream

T = 6


def causal_model(arch: str, *, num_classes: int = 5, seed: int = 0, **kwargs):
    return calibrated_model(
        arch,
        num_classes=num_classes,
        n_segment=T,
        size=64,
        seed=seed,
        calibration_seed=seed + 100,
        mode="causal",
        **kwargs,
    )


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("arch", ["mobilenet_v2", "resnet50"])
def test_stream_equals_offline_causal_model_frame_by_frame(arch):
    # float64, so that what is compared is the computation, not float32 summation order
    # (batched and single-frame convolutions round differently, ~2e-5 for ResNet-50)
    model = causal_model(arch).double()
    clip = torch.randn(1, T, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        offline = model.frame_logits(clip)[0]  # (T, K)
    online = OnlineRecognizer(model)
    assert online.num_buffers == (10 if arch == "mobilenet_v2" else 16)
    stream = OnlineStream(online)
    steps = torch.stack([stream.update(clip[0, t]) for t in range(T)])
    assert rel_error(steps, offline) < 1e-5
    # the buffers matter: restarting the stream at every frame gives something else
    fresh = []
    for t in range(T):
        stream.reset()
        fresh.append(stream.update(clip[0, t]))
    assert rel_error(fresh[0], offline[0]) < 1e-5
    assert rel_error(torch.stack(fresh)[1:], offline[1:]) > 1e-3


def test_pure_step_batches_independent_streams():
    model = causal_model("resnet18")
    online = OnlineRecognizer(model)
    clips = torch.randn(2, T, 3, 32, 32)
    with torch.no_grad():
        offline = model.frame_logits(clips)
        buffers = online.initial_buffers(batch_size=2, size=(32, 32))
        for t in range(T):
            logits, *buffers = online(clips[:, t], *buffers)
            assert rel_error(logits, offline[:, t]) < 1e-5
    with pytest.raises(ValueError, match="expected 8 shift buffers, got 0"):
        online(clips[:, 0])


def test_tsn_streams_without_buffers():
    model = causal_model("resnet18", shift=False)
    online = OnlineRecognizer(model)
    assert online.num_buffers == 0
    clip = torch.randn(1, T, 3, 32, 32)
    stream = OnlineStream(online)
    with torch.no_grad():
        offline = model.frame_logits(clip)[0]
    assert rel_error(torch.stack([stream.update(f) for f in clip[0]]), offline) < 1e-5


def test_models_that_cannot_stream_say_why():
    with pytest.raises(ValueError, match="bidirectional TSM model cannot stream: its shift reads frame t\\+1"):
        OnlineRecognizer(build_model("resnet18", num_classes=3, n_segment=4))
    with pytest.raises(ValueError, match=r"temporal_pool .* cannot stream"):
        OnlineRecognizer(build_model("resnet18", num_classes=3, n_segment=4, mode="causal", temporal_pool=True))
    online = OnlineRecognizer(causal_model("resnet18"))
    with pytest.raises(ValueError, match="for inference"):
        online.train()


def test_stream_rejects_bad_frames():
    stream = OnlineStream(OnlineRecognizer(causal_model("resnet18")))
    with pytest.raises(ValueError, match=r"expected one RGB frame \(3, H, W\), got shape \(1, 32, 32\)"):
        stream.update(torch.randn(1, 32, 32))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 32, 32\)"):
        stream.update(torch.randn(2, 3, 32, 32))
    stream.update(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="frame size 64x64 differs from this stream's 32x32; call reset"):
        stream.update(torch.randn(3, 64, 64))
    stream.reset()
    assert stream.update(torch.randn(3, 64, 64)).shape == (5,)


def test_load_online_and_cli_convert(tmp_path, capsys):
    model = causal_model("mobilenet_v2")
    path = save_checkpoint(model, tmp_path / "causal.pt")
    clip = torch.randn(1, T, 3, 32, 32)
    with torch.no_grad():
        offline = model.frame_logits(clip)[0]
    stream = OnlineStream(load_online(path))
    assert rel_error(torch.stack([stream.update(f) for f in clip[0]]), offline) < 1e-5

    bidirectional = save_checkpoint(build_model("resnet18", num_classes=3, n_segment=4), tmp_path / "bi.pt")
    with pytest.raises(ValueError, match=f"{bidirectional}: a bidirectional TSM model cannot stream"):
        load_online(bidirectional)
    assert main(["online", "convert", str(bidirectional), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot stream" in err[0]
    assert not (tmp_path / "x.pt").exists()


def test_onnx_streaming_step_matches_pytorch_over_30_frames(tmp_path):
    model = causal_model("mobilenet_v2")
    online = OnlineRecognizer(model)
    path = export_online(online, tmp_path / "step.onnx", size=64)
    summary = onnx_graph_summary(path)  # the one export form of the shift: rank 4, no scatter, all static
    assert "ScatterND" not in summary["ops"] and summary["rank5_tensors"] == 0 and summary["ops"]["Concat"] >= 10
    graph = onnx.load(str(path)).graph
    assert all(d.dim_value > 0 for i in graph.input for d in i.type.tensor_type.shape.dim)
    frames = torch.randn(30, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    torch_stream, onnx_stream = OnlineStream(online), OnnxStream(path)
    expected = torch.stack([torch_stream.update(f) for f in frames])
    got = torch.stack([onnx_stream.update(f) for f in frames])
    assert rel_error(got, expected) < 1e-4
    onnx_stream.reset()
    assert rel_error(onnx_stream.update(frames[0]), expected[0]) < 1e-4
    with pytest.raises(ValueError, match=r"expected a frame of shape \(1, 3, 64, 64\)"):
        onnx_stream.update(torch.randn(3, 32, 32))


def test_reference_online_demo_layout_imports(tmp_path, release_layouts):
    """The release's online demo: bare features.N.conv.I / classifier keys, no shift key, 27 classes."""
    layout = dict(release_layouts["mobilenetv2"])
    layout["new_fc.weight"] = [27, layout["new_fc.weight"][1]]
    layout["new_fc.bias"] = [27]
    release = random_state(layout, seed=3)
    g = torch.Generator().manual_seed(3)
    demo = {}
    for key, value in release.items():
        key = key.replace("base_model.", "").replace(".net.", ".").replace("new_fc.", "classifier.")
        demo[key] = value
    path = tmp_path / "mobilenetv2_jester_online.pth.tar"
    torch.save(demo, path)

    online = load_online(path, n_segment=T)
    assert online.config.num_classes == 27 and online.config.mode == "causal"
    assert online.num_buffers == 10
    clip = torch.randn(1, T, 3, 64, 64, generator=g)
    stream = OnlineStream(online)
    mean_of_steps = torch.stack([stream.update(f) for f in clip[0]]).mean(0, keepdim=True)
    expected = mobilenet_v2_forward(release, clip, n_segment=T, mode="causal")
    assert rel_error(mean_of_steps.double(), expected) < 1e-5

    broken = dict(demo)
    del broken["features.3.conv.0.weight"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"missing keys: backbone.features.3.conv.0.0.net.weight"):
        load_online(tmp_path / "broken.pth", n_segment=T)


def test_causal_preset_trains_with_the_normal_trainer_and_streams(tmp_path):
    """configs/online_tsm_mobilenetv2_synthetic.yaml, shrunk: train, then stream the checkpoint."""
    data = generate_synthetic(tmp_path / "synth", num_videos=24, size=32, frames=4, seed=0, workers=1, progress=False)
    preset = Path(__file__).resolve().parents[1] / "configs" / "online_tsm_mobilenetv2_synthetic.yaml"
    config = load_config(
        preset,
        [
            f"data.root={data.root}",
            "data.size=32",
            "data.scale_size=32",
            "data.workers=0",
            "data.batch_size=6",
            "model.n_segment=4",
            "optim.epochs=1",
            "optim.warmup_epochs=0",
            f"run.out_dir={tmp_path / 'run'}",
            "run.progress=false",
            "run.device=cpu",
        ],
    )
    assert config.model.mode == "causal"
    result = train(config)
    assert result.epochs_completed == 1
    checkpoint = result.out_dir / "last.pt"
    online = load_online(checkpoint)
    offline = online.config
    assert (offline.arch, offline.mode, offline.n_segment) == ("mobilenet_v2", "causal", 4)
    model = load_model(checkpoint)
    clip = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        expected = model.frame_logits(clip)[0]
    stream = OnlineStream(online)
    got = torch.stack([stream.update(f) for f in clip[0]])
    assert rel_error(got, expected) < 1e-4
