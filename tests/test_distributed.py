"""Multi-node training on one machine: `tsm train` under two torchrun agents (``--nnodes 2
--rdzv-backend c10d``) on loopback, one process each, as two machines would run it.

- Two nodes of one process train exactly as one node of two processes (the same total batch,
  ranks and data: the same weights, bit for bit).
- An agent stopped mid-epoch (SIGTERM, as a scheduler stops a job) stops both nodes at the same
  step with a resumable last.pt; a node that dies (SIGKILL of the agent and its worker) leaves
  the last epoch's last.pt. Resuming from either ends exactly where the uninterrupted run did.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from temporal_shift.checkpoint.format import read_checkpoint
from temporal_shift.data.encode import write_frame_folder
from temporal_shift.data.lists import write_frame_list

pytestmark = pytest.mark.slow  # 4 training runs of 15-30 s on 2 shared cores
EPOCHS = 4
TIMEOUT = 300


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 training clips (reddish vs bluish noise), 2 processes x batch 2: 6 steps an epoch."""
    root = tmp_path_factory.mktemp("colour")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(32):
        clip = rng.integers(0, 120, size=(6, 32, 32, 3)).astype(np.uint8)
        clip[..., 0 if i % 2 == 0 else 2] += 120
        write_frame_folder(root / f"v{i:03d}", clip, quality=90)
        rows.append((f"v{i:03d}", 6, i % 2))
    write_frame_list(root / "train.txt", rows[:24])
    write_frame_list(root / "val.txt", rows[24:])
    data = {
        "model": {"arch": "resnet18", "n_segment": 4, "dropout": 0.3},
        "data": {
            "root": str(root),
            "train_list": "train.txt",
            "val_list": "val.txt",
            "num_classes": 2,
            "size": 32,
            "scale_size": 32,
            "scales": [1.0, 0.875],
            "batch_size": 2,
            "workers": 0,
        },
        "optim": {"lr": 0.02, "lr_batch": 4, "schedule": "cosine", "warmup_epochs": 1, "epochs": EPOCHS},
        "run": {"out_dir": str(root / "unused"), "seed": 1, "progress": False},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(launch: list[str], config: Path, out: Path, *extra: str) -> subprocess.Popen:
    """One torchrun agent running `tsm train` (in its own session, so a test can stop it alone)."""
    command = [sys.executable, "-m", "torch.distributed.run", *launch, "-m", "temporal_shift.cli", "train"]
    command += ["--config", str(config), f"run.out_dir={out}", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def two_nodes(config: Path, out: Path, *extra: str) -> list[subprocess.Popen]:
    """Two agents that meet at a c10d rendezvous on loopback: one process each."""
    launch = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d"]
    launch += ["--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", f"test{time.time_ns()}"]
    return [torchrun(launch, config, out, *extra) for _ in range(2)]


def finish(agents: list[subprocess.Popen]) -> list[tuple[int, str]]:
    """(exit status, stderr) of each agent, once it has exited."""
    errors = [a.communicate(timeout=TIMEOUT)[1] for a in agents]
    return [(a.returncode, err) for a, err in zip(agents, errors, strict=True)]


def wait_for_epoch(last: Path, epoch: int, agents: list[subprocess.Popen]) -> None:
    """Until rank 0 has written the last.pt of ``epoch`` epochs (the next one is under way)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        assert all(a.poll() is None for a in agents), finish(agents)
        try:
            if read_checkpoint(last)["train_state"]["epoch"] >= epoch:
                return
        except Exception:  # not written yet
            pass
        time.sleep(0.05)
    pytest.fail(f"{last}: epoch {epoch} not reached")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the agent's workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("two_nodes")
    results = finish(two_nodes(config, out))
    assert [code for code, _ in results] == [0, 0], results
    return out


def test_two_nodes_train_as_one_node_with_the_same_total_batch(
    config: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    one = torchrun(["--standalone", "--nproc-per-node", "2"], config, tmp_path / "one_node")
    ((code, err),) = finish([one])
    assert code == 0, err
    a, b = weights(uninterrupted / "last.pt"), weights(tmp_path / "one_node" / "last.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    state = read_checkpoint(uninterrupted / "last.pt")["train_state"]
    assert state["world_size"] == 2 and len(state["rank_states"]) == 2
    assert [row["train_clips"] for row in state["history"]] == [24] * EPOCHS
    assert state["history"][-1]["val_top1"] == 100.0
    one_node = read_checkpoint(tmp_path / "one_node" / "last.pt")["train_state"]["history"]
    for x, y in zip(state["history"], one_node, strict=True):
        assert (x["train_loss"], x["val_loss"], x["lr"]) == (y["train_loss"], y["val_loss"], y["lr"])


def test_two_nodes_resume_exactly_after_an_agent_is_stopped_or_a_node_dies(
    config: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    last = out / "last.pt"
    # 1. the scheduler stops one agent during epoch 2: both nodes stop at the same step, rank 0 saves
    agents = two_nodes(config, out)
    wait_for_epoch(last, 1, agents)
    agents[1].send_signal(signal.SIGTERM)
    results = finish(agents)
    assert all(code != 0 for code, _ in results), results
    state = read_checkpoint(last)["train_state"]
    assert state["epoch"] == 1 and 0 < state["step_in_epoch"] < 6, (state["epoch"], state["step_in_epoch"])
    said = [line for _, err in results for line in err.splitlines() if "resumable checkpoint" in line]
    assert len(said) == 1 and said[0].startswith("stopped ("), results  # rank 0 says why, where and what
    # 2. resumed; then a node dies in epoch 3 (its agent and worker killed): the others fail, last.pt stays
    agents = two_nodes(config, out, "--resume")
    wait_for_epoch(last, 3, agents)
    for pid in [*children(agents[0].pid), agents[0].pid]:
        os.kill(pid, signal.SIGKILL)
    finish(agents)
    state = read_checkpoint(last)["train_state"]
    assert (state["epoch"], state["step_in_epoch"]) == (3, 0)
    # 3. resumed again: the end of the uninterrupted run, bit for bit
    results = finish(two_nodes(config, out, "--resume"))
    assert [code for code, _ in results] == [0, 0], results
    a, b = weights(uninterrupted / "last.pt"), weights(last)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    history = read_checkpoint(last)["train_state"]["history"]
    reference = read_checkpoint(uninterrupted / "last.pt")["train_state"]["history"]
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in reference]
