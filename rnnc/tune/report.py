"""What a study leaves: the table of trials, `best.yaml`, `best/` and the plots.

`best.yaml` is the spec with the best trial's point applied and its data paths made
absolute, as `rnnc train` saves a run's spec, so `rnnc train DIR/best.yaml` trains it
again from anywhere. `DIR/best` links to that trial's run directory. The plots are
Optuna's matplotlib ones: optimisation history, parameter importances (from two
completed trials on) and a slice plot.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import yaml

from rnnc.artifacts import atomic_write_bytes, atomic_write_text

from .study import INTERRUPTED, _states


def _value(t: Any) -> str:
    return "" if t.value is None else f"{t.value:.4f}"


def shown(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else json.dumps(value) if not isinstance(value, (int, str)) else str(value)


def ordered(trials: list[Any], maximize: bool) -> list[Any]:
    """Completed trials best first, then pruned, then failed, each by number."""
    states = _states()
    done = sorted((t for t in trials if t.state == states.COMPLETE), key=lambda t: -t.value if maximize else t.value)
    rest = [t for t in trials if t.state in (states.PRUNED, states.FAIL) and not t.user_attrs.get(INTERRUPTED)]
    return done + sorted(rest, key=lambda t: (t.state != states.PRUNED, t.number))


def table(trials: list[Any], params: list[str], monitor: str, maximize: bool) -> str:
    """The trials as a text table: number, state, value, epochs, seconds, each parameter, reason."""
    head = ["trial", "state", monitor, "epochs", "s", *params, "reason"]
    rows = [[str(t.number), t.state.name.lower(), _value(t), str(t.user_attrs.get("epochs", "")),
             str(t.user_attrs.get("seconds", "")), *(shown(t.params.get(p, "")) for p in params),
             t.user_attrs.get("reason", "")] for t in ordered(trials, maximize)]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in [head, *rows]]
    return "\n".join(line.rstrip() for line in lines)


def write_best(best: Any, spec: str, overrides: list[str], out: Path, study: str, monitor: str) -> list[str]:
    """Write `out/best.yaml` and the `out/best` link; the lines that say what was written."""
    from rnnc.spec import load_model, resolved_spec

    point = [*overrides, *best.user_attrs["overrides"]]
    model = load_model(spec, point)
    data = resolved_spec(spec, point)
    if isinstance(data.get("data"), dict):  # absolute, as a run directory's spec.yaml
        for role in ("train", "validation", "test"):
            if getattr(model.data, role):
                data["data"][role] = getattr(model.data, role)
    head = (f"# rnnc tune: the best trial of study '{study}' (trial {best.number}, {monitor} {best.value:.4f})\n"
            f"# from {spec} with: {' '.join('--set ' + o for o in best.user_attrs['overrides'])}\n")
    atomic_write_text(out / "best.yaml", head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    said = [f"best spec: {out / 'best.yaml'} (rnnc train {out / 'best.yaml'} trains it again)"]
    run_dir = Path(best.user_attrs.get("run_dir", ""))
    if run_dir.is_dir():
        link, temporary = out / "best", out / ".best.tmp"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(os.path.relpath(run_dir, out))
        os.replace(temporary, link)
        said.append(f"best run: {link} -> {run_dir}")
    return said


def write_plots(study: Any, out: Path) -> list[str]:
    """history.png, importances.png and slice.png in `out`; a line for each, drawn or not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    states = _states()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == states.COMPLETE]
    said = []
    for name, draw, needs in (("history.png", plots.plot_optimization_history, 1),
                              ("importances.png", plots.plot_param_importances, 2),
                              ("slice.png", plots.plot_slice, 1)):
        if len(complete) < needs:
            said.append(f"{name} not drawn: it needs {needs} completed trial{'s' * (needs > 1)}, the study has {len(complete)}")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = draw(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            figure.set_size_inches(max(figure.get_size_inches()[0], 6.4), max(figure.get_size_inches()[1], 4.0))
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
            plt.close(figure)
        except Exception as err:  # noqa: BLE001 - a plot Optuna cannot draw for this study is a note, not a failure
            said.append(f"{name} not drawn: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
            continue
        atomic_write_bytes(out / name, buffer.getvalue())
        said.append(f"plot: {out / name}")
    return said
