"""`tensorboard --logdir runs/` serves what `rnnc train --log tensorboard` wrote (its fast data server)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tracked_runs import saved, train
from tiny_models import write_spec

pytest.importorskip("torch")
pytest.importorskip("tensorboard")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ask(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return json.loads(answer.read())


def test_tensorboard_shows_the_scalars_and_the_spec(tmp_path: Path) -> None:
    tensorboard = shutil.which("tensorboard", path=str(Path(sys.executable).parent))
    if tensorboard is None:
        pytest.skip("no tensorboard command beside this Python")
    spec = write_spec(tmp_path, training={"epochs": 3, "batch_size": 16, "seed": 3})
    assert train(spec, "-o", tmp_path / "runs" / "tiny", "--log", "tensorboard") == 0
    port = free_port()
    server = subprocess.Popen([tensorboard, "--logdir", str(tmp_path / "runs"), "--port", str(port), "--host", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        tags: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(tags) < 2:
            time.sleep(0.5)
            try:
                tags = ask(port, "/data/plugin/scalars/tags")
            except OSError:  # not listening yet
                continue
        assert {run: set(names) for run, names in tags.items()} == {
            "tiny/tensorboard/train": {"loss", "accuracy", "lr", "time"},
            "tiny/tensorboard/validation": {"loss", "accuracy"},
        }
        points = ask(port, "/data/plugin/scalars/scalars?run=tiny/tensorboard/validation&tag=loss")
        history = saved(tmp_path / "runs" / "tiny")
        assert [step for _, step, _ in points] == [1, 2, 3]
        assert [value for _, _, value in points] == pytest.approx([logs["val_loss"] for logs in history], rel=1e-6)
        assert ask(port, "/data/plugin/text/tags") == {"tiny/tensorboard/train": ["spec"]}
    finally:
        server.terminate()
        server.wait(timeout=10)
