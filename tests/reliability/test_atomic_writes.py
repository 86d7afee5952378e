"""`rnnc.artifacts.atomic_open`: what a write leaves behind, whatever happens to it.

The file appears whole or not at all; a failed or stopped write (an exception, SIGTERM,
SIGHUP) leaves no temporary file and none of the folders it made; a symbolic link keeps
pointing at the file it names, which gets the new content; the file gets the mode any
new file gets (0666 less the umask) without the process's umask ever being changed; a
name too long for the file system is one line, and a long name that fits gets a
temporary sibling that fits too; the folder is flushed after the rename.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import REPO

from rnnc.artifacts import atomic_open, atomic_write_bytes
from rnnc.errors import ArtifactError


def test_a_failed_write_leaves_no_file_and_none_of_the_folders_it_made(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.csv"
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write(b"half")
        raise RuntimeError("the caller failed")
    assert list(tmp_path.iterdir()) == []
    atomic_write_bytes(target, b"whole")  # and a write that succeeds keeps them
    assert target.read_bytes() == b"whole"


def test_a_symbolic_link_is_written_through(tmp_path: Path) -> None:
    real, link = tmp_path / "real.csv", tmp_path / "link.csv"
    real.write_bytes(b"old")
    link.symlink_to(real.name)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and os.readlink(link) == real.name
    assert real.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]


def test_the_mode_follows_the_umask_which_is_never_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("atomic_open changed the process umask"))
        atomic_write_bytes(tmp_path / "out", b"x")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o640


def test_the_folder_is_flushed_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[bool] = []
    fsync = os.fsync

    def record(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    atomic_write_bytes(tmp_path / "out", b"x")
    assert synced == [False, True]  # the file, then its folder


def test_long_names(tmp_path: Path) -> None:
    fits = tmp_path / ("n" * 250 + ".csv")  # 254 bytes: the temporary sibling must be cut to fit
    with atomic_open(fits) as handle:
        handle.write(b"x")
        (temporary,) = [p.name for p in tmp_path.iterdir()]
        assert len(temporary) <= 255 and temporary.endswith(".tmp")
    assert fits.read_bytes() == b"x"
    too_long = tmp_path / ("n" * 300 + ".csv")
    with pytest.raises(ArtifactError) as refused:
        atomic_write_bytes(tmp_path / "new" / too_long.name, b"x")
    assert str(refused.value) == (f"{tmp_path / 'new' / too_long.name}: cannot write: the file name is 304 bytes long, "
                                  "the file system takes at most 255; nothing was written")
    assert [p.name for p in tmp_path.iterdir()] == [fits.name]


WRITER = """
import sys, time
from rnnc.artifacts import atomic_open
from rnnc.cli import exit_on_signals
with exit_on_signals(), atomic_open(sys.argv[1]) as handle:
    handle.write(b"x" * 1_400_000)
    print("writing", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_mid_write_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    target = tmp_path / "out" / "y.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert writer.stdout is not None and writer.stdout.readline() == b"writing\n"
    assert [p.name.endswith(".tmp") for p in target.parent.iterdir()] == [True]
    writer.send_signal(sig)
    _, err = writer.communicate(timeout=30)
    assert (writer.returncode, err) == (128 + sig, b"")
    assert list(tmp_path.iterdir()) == []  # no temporary file, and not the folder made for it


def test_a_name_too_long_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tiny_models import write_spec

    from rnnc.cli import main

    out = tmp_path / ("m" * 300 + ".onnx")
    assert main(["compile", str(write_spec(tmp_path)), "-o", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{out}: cannot write: the file name is 305 bytes long, the file system takes at most 255; nothing was written"
    ]
