"""Compiled inference (`compile_for_inference`), `tsm bench overhead --compile` and `tsm predict --compile`.

The graph-capture tests use dynamo's "eager"/"aot_eager" backends (seconds); the ones that
run inductor's code generation take minutes on 2 cores with a cold cache and are slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from temporal_shift.apps.bench.overhead import tsn_tsm_pair
from temporal_shift.cli import main
from temporal_shift.engine.compiled import compile_for_inference, resolve_mode
from temporal_shift.engine.split_form import SplitShiftResNet
from temporal_shift.models.factory import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Compiled code is cached per code object (VideoRecognizer.forward); no state between tests."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _clips(batch: int = 2, t: int = 4, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, t, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_tsm_inference_is_one_graph_equal_to_eager_for_one_shape() -> None:
    _, tsm = tsn_tsm_pair(arch="resnet18", n_segment=4)
    clips = _clips()
    compiled = compile_for_inference(tsm, backend="eager", example=clips)  # fullgraph=True by default
    with torch.inference_mode():
        expected = tsm(clips)
    assert isinstance(compiled.graph, SplitShiftResNet) and compiled.model is tsm  # the shift copies C/4
    torch.testing.assert_close(compiled(clips), expected, rtol=1e-5, atol=1e-5)  # batch norms folded
    assert compiled.input_spec == ((2, 4, 3, 32, 32), torch.float32, torch.device("cpu"))
    assert not compiled.cudagraphs and compiled.mode == "default"
    with pytest.raises(ValueError, match=r"compiled for input \(2, 4, 3, 32, 32\).*got \(1, 4, 3, 32, 32\)"):
        compiled(_clips(batch=1))
    with pytest.raises(ValueError, match=r"torch.float64"):
        compiled(clips.double())


def test_tsm_training_forward_and_backward_are_one_graph() -> None:
    """fullgraph=True in training (autograd through the shift): same loss and gradients as eager."""
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=5, n_segment=4, dropout=0.0).train()
    clips, labels = _clips(), torch.tensor([1, 3])
    grads = {}
    for name, forward in (("eager", model), ("compiled", torch.compile(model, fullgraph=True, backend="aot_eager"))):
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(clips), labels)
        loss.backward()
        grads[name] = (loss.detach(), [p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(grads["compiled"][0], grads["eager"][0])
    for got, want in zip(grads["compiled"][1], grads["eager"][1], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_modes_and_bad_options() -> None:
    assert resolve_mode("auto", torch.device("cpu")) == "default"
    assert resolve_mode("auto", torch.device("cuda", 0)) == "reduce-overhead"
    assert resolve_mode("max-autotune", torch.device("cpu")) == "max-autotune"
    _, tsm = tsn_tsm_pair(arch="resnet18", n_segment=4)
    with pytest.raises(ValueError, match="unknown compile mode 'fast'"):
        compile_for_inference(tsm, mode="fast")
    with pytest.raises(ValueError, match="warmup must be >= 0"):
        compile_for_inference(tsm, warmup=-1)
    with pytest.raises(ValueError, match="example is on meta but the model is on cpu"):
        compile_for_inference(tsm, backend="eager", example=_clips().to("meta"))


# The slow tests compile what the bench and the gpu_overhead smoke run compile (ResNet-18,
# T=4, 32x32, batch 2, channels_last, 1 thread): inductor's cache serves the later ones.


@pytest.mark.slow
def test_inductor_compiled_models_equal_eager() -> None:
    """Inductor's CPU code (the default mode) gives the eager logits of TSN and TSM."""
    clips = _clips().flatten(0, 1).contiguous(memory_format=torch.channels_last).view(2, 4, 3, 32, 32)
    for model in tsn_tsm_pair(arch="resnet18", n_segment=4):
        model = model.to(memory_format=torch.channels_last)
        compiled = compile_for_inference(model, example=clips)  # TSM: its split form
        with torch.inference_mode():
            torch.testing.assert_close(compiled(clips), model(clips), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_cli_bench_compile(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = [
        "bench",
        "overhead",
        "--compile",
        "--arch",
        "resnet18",
        "--segments",
        "4",
        "--size",
        "32",
        "--batch-size",
        "2",
        "--repeats",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["compile"] == "default" and data["repeats"] == 2


@pytest.mark.slow
def test_cli_predict_compile_matches_eager(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from temporal_shift.checkpoint.format import save_checkpoint
    from temporal_shift.data.encode import write_frame_folder

    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=3, n_segment=4)
    torch.nn.init.normal_(model.head.weight, 0.0, 0.3)
    save_checkpoint(model, tmp_path / "m.pt", extra={"config": {"data": {"size": 32, "scale_size": 36}}})
    frames = np.random.default_rng(0).integers(0, 255, size=(6, 40, 48, 3)).astype(np.uint8)
    write_frame_folder(tmp_path / "clip", frames, quality=95)
    outputs = []
    for extra in ([], ["--compile"]):
        assert (
            main(
                [
                    "predict",
                    str(tmp_path / "clip"),
                    "--checkpoint",
                    str(tmp_path / "m.pt"),
                    "--json",
                    "--device",
                    "cpu",
                    *extra,
                ]
            )
            == 0
        )
        outputs.append(json.loads(capsys.readouterr().out)["predictions"][0]["topk"])
    eager, compiled = outputs
    assert [p["label"] for p in compiled] == [p["label"] for p in eager]
    for c, e in zip(compiled, eager, strict=True):
        assert c["prob"] == pytest.approx(e["prob"], abs=1e-5)


def test_cli_predict_compile_mode_needs_compile(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", str(tmp_path), "--checkpoint", str(tmp_path / "m.pt"), "--compile-mode", "default"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tsm predict: error: --compile-mode goes with --compile"


@pytest.mark.gpu
def test_cuda_graph_outputs_are_not_overwritten_by_the_next_call() -> None:
    _, tsm = tsn_tsm_pair(arch="resnet18", n_segment=4)
    tsm = tsm.cuda()
    first, second = _clips().cuda(), _clips().cuda().flip(0)
    compiled = compile_for_inference(tsm, example=first)
    assert compiled.cudagraphs and compiled.mode == "reduce-overhead"
    a = compiled(first)
    compiled(second)
    with torch.inference_mode():
        torch.testing.assert_close(a, tsm(first), rtol=1e-3, atol=1e-3)
