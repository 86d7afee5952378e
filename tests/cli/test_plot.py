"""`rnnc plot RUN_DIR`: learning curves from metrics.jsonl as a PNG."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from rnnc.cli import main
from rnnc.cli.plot import curves

pytest.importorskip("matplotlib")


def write_run(folder: Path, epochs: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    (folder / "spec.yaml").write_text("rnnc: 1\nname: my-run\n")
    return folder


EPOCHS = [
    {"epoch": e, "loss": 1 / e, "accuracy": 0.5 + e / 20, "val_loss": 1.2 / e + (0.1 if e == 4 else 0),
     "val_accuracy": 0.5 + e / 25, "lr": 0.01 if e < 3 else 0.001, "time": 0.1}
    for e in range(1, 6)
]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_png_of_every_curve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run", EPOCHS)
    assert main(["plot", str(run)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {run / 'curves.png'}"
    width, height = png_size((run / "curves.png").read_bytes())
    assert (width, height) == (1380, 340)  # three panels: loss, accuracy, lr; one row


def test_panels_are_the_loss_the_metrics_and_a_changing_lr() -> None:
    assert curves(EPOCHS) == ["loss", "accuracy", "lr"]
    steady = [{**e, "lr": 0.01} for e in EPOCHS]
    assert curves(steady) == ["loss", "accuracy"]
    with_nan = [{"epoch": 1, "loss": None, "mae": 0.3}]  # NaN is logged as null: still a panel
    assert curves(with_nan) == ["loss", "mae"]


def test_plot_to_another_file(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", EPOCHS[:1])
    assert main(["plot", str(run), "-o", str(tmp_path / "c.png")]) == 0
    png_size((tmp_path / "c.png").read_bytes())


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such run directory"),
        (lambda p: p.mkdir(), "metrics.jsonl: no such file (no epoch has completed in this run yet?)"),
        (lambda p: write_run(p, []), "metrics.jsonl: holds no epochs yet"),
        (lambda p: (p.mkdir(), (p / "metrics.jsonl").write_text('{"epoch": 1}\n{oops\n')), "metrics.jsonl:2: not a JSON line"),
    ],
)
def test_bad_runs_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], setup, message: str) -> None:
    run = tmp_path / "run"
    setup(run)
    assert main(["plot", str(run)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_without_matplotlib_it_says_how_to_get_it(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    run = write_run(tmp_path / "run", EPOCHS)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert main(["plot", str(run)]) == 2
    assert capsys.readouterr().err == 'rnnc plot needs matplotlib: pip install "rnnc[plot]" (or pip install matplotlib)\n'
    assert not (run / "curves.png").exists()
