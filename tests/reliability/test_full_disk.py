"""A full disk while writing artifacts: one clear line, exit 1, the previous files intact.

Two ways to run out of room, each for `rnnc train` (the checkpoint at the end of an
epoch), `rnnc compile` (`model.onnx`) and `rnnc predict -o` (the output file):

- a real full disk: a small tmpfs, mounted for the test (root in the sandbox; skipped
  where `mount` is not allowed), filled up to a few KiB before the command runs, so the
  write fails with ENOSPC;
- a file-size limit: the command runs in a child process under `RLIMIT_FSIZE`, so a
  write past the limit fails with EFBIG (Python ignores SIGXFSZ, so nothing is killed).

Either way the command prints `PATH: cannot write: REASON; the previous file is intact`
as its last line, exits 1 (a failure while running: the input was fine), leaves the
previous file byte for byte, and leaves no temporary file behind. Output sent to
stdout (`rnnc predict ... > out.csv`) on a full disk ends the same way: one line, exit 1.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_models import PYTHON, REPO, binary_data, write_spec

from rnnc.artifacts import atomic_write_bytes
from rnnc.cli import main
from rnnc.errors import ArtifactError, DiskFullError

pytest.importorskip("torch")

TMPFS_SIZE = 1 << 20
INTACT = "; the previous file is intact"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, or a skip where mounting is not allowed (the RLIMIT_FSIZE tests
    below cover the same paths there)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount)], capture_output=True)
    except FileNotFoundError:
        pytest.skip("no mount command")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int = 8192) -> Path:
    """Fill `disk` until `leave` bytes are free; returns the filler file."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return filler


def snapshot(folder: Path, *but: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name not in ("filler", *but)}


def assert_refused(status: int, err: str, path: Path, reason: str) -> None:
    assert status == 1, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == f"{path}: cannot write: {reason}{INTACT}"


def rnnc_limited(limit: int, *args: str | Path, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess:
    """`python -m rnnc ARGS` with files capped at `limit` bytes."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.run([PYTHON, "-m", "rnnc", *map(str, args)], stdout=stdout, stderr=subprocess.PIPE, text=True,
                          env=env, cwd=REPO, preexec_fn=cap, timeout=300)


# --- the writer itself -----------------------------------------------------------------


def test_atomic_write_on_a_full_tmpfs_keeps_the_old_file(tmpfs: Path) -> None:
    target = tmpfs / "artifact.bin"
    atomic_write_bytes(target, b"old" * 1000)
    fill(tmpfs)
    with pytest.raises(DiskFullError) as caught:
        atomic_write_bytes(target, b"new" * 100_000)
    assert str(caught.value) == f"{target}: cannot write: No space left on device{INTACT}"
    assert target.read_bytes() == b"old" * 1000
    assert sorted(p.name for p in tmpfs.iterdir()) == ["artifact.bin", "filler"]


def test_a_write_that_finds_no_room_for_a_first_file_says_nothing_was_written(tmpfs: Path) -> None:
    fill(tmpfs)
    with pytest.raises(DiskFullError, match=r"cannot write: No space left on device; nothing was written$"):
        atomic_write_bytes(tmpfs / "new.bin", b"x" * 100_000)
    assert not (tmpfs / "new.bin").exists()


def test_a_path_through_a_file_is_bad_input_not_a_full_disk(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ArtifactError, match=r"file/out.onnx: cannot write: (File exists|Not a directory); nothing was written$"):
        atomic_write_bytes(tmp_path / "file" / "out.onnx", b"x")


# --- the commands, on a full tmpfs -------------------------------------------------------


def tiny_onnx(folder: Path) -> tuple[Path, Path]:
    spec = write_spec(folder)
    model = folder / "model.onnx"
    assert main(["compile", str(spec), "-o", str(model)]) == 0
    return spec, model


def test_train_on_a_full_disk(tmpfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmpfs, training={"epochs": 2, "batch_size": 16, "seed": 3})
    run = tmpfs / "run"
    args = ["train", str(spec), "-o", str(run), "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    before = snapshot(run, "spec.yaml")  # rewritten on resume: it now says epochs 4
    filler = fill(tmpfs)
    capsys.readouterr()
    status = main([*args, "--resume", "--set", "training.epochs=4"])
    out, err = capsys.readouterr()
    assert_refused(status, err, run / "checkpoint.pt", "No space left on device")
    assert snapshot(run, "spec.yaml") == before  # nothing lost, nothing half-written, no temporary file
    filler.unlink()  # room again: the run goes on from where it was
    assert main([*args, "--resume", "--set", "training.epochs=4"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4


def test_compile_on_a_full_disk(tmpfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, model = tiny_onnx(tmpfs)
    before = snapshot(tmpfs)
    fill(tmpfs, leave=0)
    capsys.readouterr()
    status = main(["compile", str(spec), "-o", str(model)])
    assert_refused(status, capsys.readouterr().err, model, "No space left on device")
    assert snapshot(tmpfs) == before


def test_predict_on_a_full_disk(tmpfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, model = tiny_onnx(tmpfs)
    np.save(tmpfs / "x.npy", binary_data(n=2000)[0])
    out = tmpfs / "out.npy"
    assert main(["predict", str(model), str(tmpfs / "x.npy"), "-o", str(out), "--no-progress"]) == 0
    before = snapshot(tmpfs)
    fill(tmpfs, leave=0)
    capsys.readouterr()
    status = main(["predict", str(model), str(tmpfs / "x.npy"), "-o", str(out), "--no-progress"])
    assert_refused(status, capsys.readouterr().err, out, "No space left on device")
    assert snapshot(tmpfs) == before


# --- the commands, under a file-size limit (EFBIG), in child processes -------------------


def test_train_under_a_file_size_limit(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, training={"epochs": 2, "batch_size": 16, "seed": 3})
    run = tmp_path / "run"
    args = ["train", str(spec), "-o", str(run), "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    before = snapshot(run, "spec.yaml")
    limit = min(len(before["checkpoint.pt"]), len(before["model.onnx"])) // 2  # spec.yaml still fits
    done = rnnc_limited(limit, *args, "--resume", "--set", "training.epochs=4")
    assert_refused(done.returncode, done.stderr, run / "checkpoint.pt", "File too large")
    assert snapshot(run, "spec.yaml") == before


def test_compile_and_predict_under_a_file_size_limit(tmp_path: Path) -> None:
    spec, model = tiny_onnx(tmp_path)
    np.save(tmp_path / "x.npy", binary_data(n=2000)[0])
    out = tmp_path / "out.npy"
    assert main(["predict", str(model), str(tmp_path / "x.npy"), "-o", str(out), "--no-progress"]) == 0
    before = snapshot(tmp_path)
    done = rnnc_limited(len(before["model.onnx"]) // 2, "compile", spec, "-o", model)
    assert_refused(done.returncode, done.stderr, model, "File too large")
    done = rnnc_limited(len(before["out.npy"]) // 2, "predict", model, tmp_path / "x.npy", "-o", out, "--no-progress")
    assert_refused(done.returncode, done.stderr, out, "File too large")
    assert snapshot(tmp_path) == before



def test_output_paths_through_a_file_are_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a full disk but a bad `-o`: one line and exit 2, for every command."""
    spec, model = tiny_onnx(tmp_path)
    np.save(tmp_path / "x.npy", binary_data(n=20)[0])
    blocker = tmp_path / "file"
    blocker.write_text("")
    cases = [
        (["train", spec, "-o", blocker / "run", "--device", "cpu", "--no-progress"],
         rf"-o {blocker / 'run'}: cannot create the run directory: (File exists|Not a directory)"),
        (["compile", spec, "-o", blocker / "m.onnx"], rf"{blocker / 'm.onnx'}: cannot write: (File exists|Not a directory); nothing was written"),
        (["predict", model, tmp_path / "x.npy", "-o", blocker / "y.npy"],
         rf"{blocker / 'y.npy'}: cannot write: (File exists|Not a directory); nothing was written"),
    ]
    for argv, expected in cases:
        capsys.readouterr()
        status = main([str(a) for a in argv])
        err = [line for line in capsys.readouterr().err.splitlines() if "warning" not in line]
        assert status == 2 and len(err) == 1 and re.fullmatch(expected, err[0]), (argv[0], err)


@pytest.mark.parametrize("room", ["tmpfs", "fsize"])
def test_predict_to_stdout_on_a_full_disk(room: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """`rnnc predict MODEL X > out.csv` with no room behind stdout: one line, exit 1."""
    _, model = tiny_onnx(tmp_path)
    np.save(tmp_path / "x.npy", binary_data(n=5000)[0])
    folder = request.getfixturevalue("tmpfs") if room == "tmpfs" else tmp_path
    limit = 1 << 30
    if room == "tmpfs":
        fill(folder, leave=16384)
    else:
        limit = 16384
    with open(folder / "out.csv", "w") as stdout:
        done = rnnc_limited(limit, "predict", model, tmp_path / "x.npy", "--no-progress", stdout=stdout)
    reason = "No space left on device" if room == "tmpfs" else "File too large"
    assert (done.returncode, done.stderr) == (1, f"rnnc predict: cannot write the output: {reason}\n")
