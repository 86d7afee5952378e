"""`rnnc evaluate` of a direct multi-step forecaster: the metrics at each step of the horizon.

A model trained with `data.csv.all_steps` predicts every step from 1 to `horizon`, its
units step-major (`rnnc.data_csv.target_names`); the overall scores average over all
steps, and the error usually grows with the step, so each step is measured on its own
too: the spec's regression metrics (`mae`, `mse`, `rmse`; `mae` when it names none),
each averaged over the target columns of that step. Numpy only.
"""

from __future__ import annotations

import numpy as np

from rnnc import ir

REGRESSION_METRICS = ("mae", "mse", "rmse")


def per_step_scores(model: ir.Model, outputs: np.ndarray, targets: np.ndarray) -> dict[str, list[float]] | None:
    """`{metric: [step 1, ..., step horizon]}` for a direct multi-step forecaster, else None."""
    windows = model.data.csv
    if windows is None or not windows.all_steps or model.loss.is_classification or outputs.ndim != 2:
        return None
    names = [m for m in model.metrics if m in REGRESSION_METRICS] or ["mae"]
    errors = (outputs.astype(np.float64) - targets.astype(np.float64)).reshape(len(outputs), windows.horizon, -1)
    scores = {}
    for name in names:
        if name == "mae":
            value = np.abs(errors).mean(axis=(0, 2))
        else:
            value = (errors**2).mean(axis=(0, 2))
            value = np.sqrt(value) if name == "rmse" else value
        scores[name] = [float(v) for v in value]
    return scores


def per_step_lines(scores: dict[str, list[float]]) -> list[str]:
    """A table: one row per step (`+1`, `+2`, ...), one column per metric."""
    names = list(scores)
    steps = len(next(iter(scores.values())))
    lines = ["per step of the horizon (data.csv.all_steps)", "step" + "".join(f"  {n:>10}" for n in names)]
    lines += [f"{'+' + str(k + 1):>4}" + "".join(f"  {scores[n][k]:>10.4f}" for n in names) for k in range(steps)]
    return lines
