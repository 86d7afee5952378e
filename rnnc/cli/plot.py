"""`rnnc plot RUN_DIR [-o OUT.png]`: the run's learning curves as a PNG.

Reads `metrics.jsonl` (one line per completed epoch, so a run still training can be
plotted too) and draws one panel per quantity: the loss and each metric, the training
value beside the validation one (`val_*`), and the learning rate when it changed. A
dotted line marks the best epoch by the spec's early-stopping monitor (else
`val_loss`): with `restore_best`, the epoch whose weights the run kept. Needs matplotlib, the
optional extra `plot` (`pip install "rnnc[plot]"`); without it, one line says so.
"""

from __future__ import annotations

import argparse
import io
import json
import math
from pathlib import Path
from typing import Any

from rnnc.errors import ArtifactError, UsageError

NOT_CURVES = ("epoch", "lr", "time")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plot", help="draw a run's loss and metrics per epoch as a PNG (needs matplotlib)")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of rnnc train")
    parser.add_argument("-o", "--output", metavar="OUT", help="the PNG to write (default: RUN_DIR/curves.png)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    history = read_history(run_dir)
    output = Path(args.output) if args.output else run_dir / "curves.png"
    if output.suffix.lower() != ".png":
        raise UsageError(f"-o {output}: rnnc plot writes PNG files (use a name ending in .png)")
    from rnnc.artifacts import atomic_write_bytes

    name, monitor = _spec_facts(run_dir)
    atomic_write_bytes(output, render(history, title=name, monitor=monitor))
    print(f"wrote {output}")
    return 0


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The epochs logged in `run_dir/metrics.jsonl`."""
    path = run_dir / "metrics.jsonl"
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file (no epoch has completed in this run yet?)")
    epochs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            logs = json.loads(line)
        except json.JSONDecodeError as err:
            raise ArtifactError(f"{path}:{number}: not a JSON line ({err.msg})") from None
        if not isinstance(logs, dict) or not isinstance(logs.get("epoch"), int):
            raise ArtifactError(f"{path}:{number}: expected an object with an integer 'epoch'")
        epochs.append(logs)
    if not epochs:
        raise ArtifactError(f"{path}: holds no epochs yet")
    return epochs


def curves(history: list[dict[str, Any]]) -> list[str]:
    """The panels to draw: the loss first, then each metric in the order logged, then
    the learning rate if it ever changed."""
    names: list[str] = []
    for logs in history:
        for key in logs:
            base = key.removeprefix("val_")
            if key not in NOT_CURVES and base not in names:
                names.append(base)
    names.sort(key=lambda name: name != "loss")
    if len({logs.get("lr") for logs in history}) > 1:
        names.append("lr")
    return names


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan  # null: NaN or inf


def render(history: list[dict[str, Any]], title: str = "", monitor: str = "val_loss") -> bytes:
    """The figure as PNG bytes; a dotted line marks the best epoch by `monitor`."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError('rnnc plot needs matplotlib: pip install "rnnc[plot]" (or pip install matplotlib)') from None
    matplotlib.use("Agg")  # files only: never open a window
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")  # 0.4, not 4 x 10^-1, on log axes
    names = curves(history)
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.4 * rows), squeeze=False)
    epochs = [logs["epoch"] for logs in history]
    best = _best_epoch(history, monitor)
    for ax, name in zip(axes.flat, names, strict=False):
        for key, label, style in ((name, "train", "-"), (f"val_{name}", "validation", "--")):
            values = [_number(logs.get(key)) for logs in history]
            if name == "lr":
                label = "learning rate"
            if any(not math.isnan(v) for v in values):
                ax.plot(epochs, values, style, marker="o", markersize=3, label=label)
        if best is not None:
            ax.axvline(best, color="grey", linestyle=":", linewidth=1)
        if name in ("loss", "lr") and all(_number(logs.get(name)) > 0 for logs in history):
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    if title:
        note = f" (dotted: best {monitor}, epoch {best})" if best is not None else ""
        figure.suptitle(title + note)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _best_epoch(history: list[dict[str, Any]], monitor: str) -> int | None:
    from rnnc.build import monitor_mode

    sign = -1.0 if monitor_mode(monitor) == "max" else 1.0
    scored = [(sign * _number(logs.get(monitor)), logs["epoch"]) for logs in history]
    scored = [pair for pair in scored if not math.isnan(pair[0])]
    return min(scored)[1] if scored else None


def _spec_facts(run_dir: Path) -> tuple[str, str]:
    """(the run's name, the monitor early stopping watched) from its spec.yaml, where
    there is one: the dotted line then marks the epoch whose weights were kept."""
    name, monitor = run_dir.name, "val_loss"
    spec = run_dir / "spec.yaml"
    if spec.is_file():
        import yaml

        try:
            data = yaml.safe_load(spec.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict):
            name = data["name"] if isinstance(data.get("name"), str) else name
            stop = data.get("training", {}).get("early_stopping") if isinstance(data.get("training"), dict) else None
            if isinstance(stop, dict) and isinstance(stop.get("monitor"), str):
                monitor = stop["monitor"]
    return name, monitor
