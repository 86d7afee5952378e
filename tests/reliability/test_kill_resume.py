"""SIGKILL at random moments: finished work is never lost, and resuming ends exactly.

A tiny model trains for many short epochs, so a kill after a random delay lands
anywhere: in a training step, in the evaluation, or while the checkpoint, metrics or
weights are being written. After every kill the run directory must hold a checkpoint
and weights that load and fit the spec; then `--resume` carries on, is killed again,
and so on; the last resumption finishes, and its weights must equal, bit for bit, those
of a run never interrupted. CI kills 3 times; `-m slow` kills 20 times (the figures
are in docs/reliability.md).

A kill during an artifact write leaves the temporary sibling `.NAME.XXXX.tmp` behind
(nothing can remove it from a SIGKILL), never a partial `NAME`: the test counts those
leftovers, which is how it knows that some kills did land mid-write, and the resumed
run removes them. The atomic-write
invariant itself is also shown directly: a child process rewrites one large file in a
loop with `rnnc.artifacts.atomic_write_bytes` and is killed at random; the file is
always one whole payload, the old one or the new one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
from test_resume import lines, rnnc  # noqa: E402
from tiny_models import write_spec  # noqa: E402

from rnnc.artifacts import load_weights  # noqa: E402
from rnnc.spec import load_model  # noqa: E402
from rnnc_torch.checkpoint import load_checkpoint  # noqa: E402

TRAINING = {"batch_size": 16, "seed": 7, "lr_schedule": {"type": "cosine", "min_lr": 0.001}}


def wait_for_progress(process: subprocess.Popen, metrics: Path, done: int, timeout: float = 120) -> None:
    """Until one more epoch than `done` is logged: the kill then lands in a running loop."""
    deadline = time.monotonic() + timeout
    while lines(metrics) <= done and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if process.poll() is not None:
        pytest.fail(f"rnnc train ended before the kill (status {process.returncode}): {process.stderr.read().decode()}")  # type: ignore[union-attr]


def check_run_directory(run: Path, spec: Path) -> int:
    """What a killed run leaves must load: the checkpoint's epoch."""
    state = load_checkpoint(run / "checkpoint.pt")
    load_weights(run / "weights.safetensors", load_model(spec))
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in logged] == list(range(1, len(logged) + 1))
    assert abs(len(logged) - state["epoch"]) <= 1  # the kill may fall between the two writes
    return int(state["epoch"])


def kill_and_resume(tmp_path: Path, kills: int, epochs: int, seed: int) -> dict[str, int]:
    spec = write_spec(tmp_path, n=128, training={"epochs": epochs, **TRAINING})
    run, metrics = tmp_path / "run", tmp_path / "run" / "metrics.jsonl"
    chance = random.Random(seed)
    leftovers = 0
    epoch = 0
    temporary: set[str] = set()
    for kill in range(kills):
        process = rnnc(spec, "-o", run, *(["--resume"] if kill else []))
        wait_for_progress(process, metrics, lines(metrics))
        time.sleep(chance.uniform(0, 0.15))  # epochs take 15-40 ms: a few epochs at most
        process.send_signal(signal.SIGKILL)
        process.wait()
        now = {p.name for p in run.iterdir() if p.name.endswith(".tmp")}
        leftovers += bool(now - temporary)  # a new one: this kill landed inside a write
        temporary = now
        reached = check_run_directory(run, spec)
        assert reached >= epoch, "a kill lost a finished epoch"
        assert reached < epochs, "the run finished before the kill; give it more epochs"
        epoch = reached
    resumed = rnnc(spec, "-o", run, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    assert check_run_directory(run, spec) == epochs
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")], "a resumed run clears what kills left"
    whole = rnnc(spec, "-o", tmp_path / "whole")
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err.decode()
    a, b = load_weights(run / "weights.safetensors"), load_weights(tmp_path / "whole" / "weights.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    return {"kills": kills, "epochs": epochs, "kills_mid_write": leftovers}


def test_three_kills_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    kill_and_resume(tmp_path, kills=3, epochs=80, seed=1)


@pytest.mark.slow
def test_twenty_kills_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    seed = int(os.environ.get("RNNC_KILL_SEED", "2"))
    stats = kill_and_resume(tmp_path, kills=20, epochs=400, seed=seed)
    print(f"\nkill-resume: {stats}")


# --- the atomic-write invariant, killed directly ---------------------------------------

WRITER = """
import sys
from rnnc.artifacts import atomic_write_bytes
target, size = sys.argv[1], int(sys.argv[2])
i = 1
print("ready", flush=True)
while True:
    atomic_write_bytes(target, bytes([i % 256]) * size)
    i += 1
"""
PAYLOAD = 4 << 20


def kill_writers(tmp_path: Path, kills: int, seed: int) -> dict[str, int]:
    target = tmp_path / "artifact.bin"
    target.write_bytes(bytes([0]) * PAYLOAD)
    chance = random.Random(seed)
    seen, mid_write = set(), 0
    for _ in range(kills):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(PAYLOAD)], stdout=subprocess.PIPE)
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        time.sleep(chance.uniform(0, 0.2))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        data = target.read_bytes()
        assert len(data) == PAYLOAD and data.count(data[:1]) == PAYLOAD, "a partial or mixed file"
        seen.add(data[0])
        temporary = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        mid_write += bool(temporary)
        for p in temporary:
            p.unlink()
    return {"kills": kills, "distinct_contents": len(seen), "kills_mid_write": mid_write}


def test_a_killed_atomic_write_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    stats = kill_writers(tmp_path, kills=8, seed=3)
    assert stats["kills_mid_write"] >= 1, stats  # some kills must land inside a write to mean anything


@pytest.mark.slow
def test_a_hundred_killed_atomic_writes(tmp_path: Path) -> None:
    stats = kill_writers(tmp_path, kills=100, seed=int(os.environ.get("RNNC_KILL_SEED", "4")))
    print(f"\natomic-write kills: {stats}")
    assert stats["kills_mid_write"] >= 10, stats
