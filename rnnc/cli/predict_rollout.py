"""`rnnc predict MODEL SERIES.csv --steps N`: a one-step forecaster rolled forward over its own forecasts.

A recursive multi-step forecast. The model predicts its `data.csv.targets` one step
after each window (`horizon: 1`, not `all_steps`), and those targets are among its
`features`, so a forecast can be fed back as input. The `.csv` holds the history and
then `N` future rows whose target cells are empty; their other feature cells (known
covariates, such as the calendar) are read from the file. The first window is the
last `window` rows of history; each forecast fills its row's target cells and the
window moves on one row, so it includes the forecast. Output: one row per future row,
its other columns (a date) first, then the forecast targets, as `rnnc predict` writes
any forecast (`predict_output`). Unlike a direct model (`data.csv.all_steps`), any `N`
works, but errors compound: each step reads the earlier steps' forecasts, not the
truth. Numpy and onnxruntime only, through `rnnc.runtime`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnc import ir
from rnnc.errors import DataError, UsageError
from rnnc.runtime import GraphPredictor, Predictor


def roll_forward(predictor: Predictor, history: np.ndarray, ahead: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """Forecasts `[B, N, len(targets)]` of `B` series at once: `history` `[B, window,
    features]` is each one's first window, `ahead` `[B, N, features]` the rows to
    forecast (their target cells are overwritten by the forecasts, others are fed as
    they are), `targets` the target columns' places among the features."""
    window = np.array(history, dtype=np.float32)
    ahead = np.array(ahead, dtype=np.float32)
    forecasts = np.zeros((len(window), ahead.shape[1], len(targets)), np.float32)
    for k in range(ahead.shape[1]):
        y = predictor.run(window)
        forecasts[:, k] = y
        ahead[:, k, list(targets)] = y
        window = np.concatenate([window[:, 1:], ahead[:, k : k + 1]], axis=1)
    return forecasts


def one_step_windows(model: ir.Model, spec_path: Path) -> ir.CsvWindows:
    """The spec's `data.csv`, if a model trained on it can be rolled forward, else a
    `UsageError` saying why not."""
    windows = model.data.csv
    if windows is None:
        raise UsageError(f"{spec_path}: has no data.csv; --steps rolls forward a forecaster trained on a series .csv")
    if windows.all_steps:
        raise UsageError(f"{spec_path}: the model forecasts every step 1..{windows.horizon} directly (data.csv.all_steps); "
                         "run rnnc predict without --steps")
    if windows.horizon != 1:
        raise UsageError(f"{spec_path}: the model forecasts {windows.horizon} steps ahead (data.csv.horizon); "
                         "--steps rolls forward a one-step model (horizon 1)")
    features = windows.features
    if features is not None and (missing := [t for t in windows.targets if t not in features]):
        raise UsageError(f"{spec_path}: --steps feeds each forecast back as input, but target "
                         f"{', '.join(repr(t) for t in missing)} is not among data.csv.features ({', '.join(features)})")
    return windows


def run(args: argparse.Namespace, predictor: Predictor | GraphPredictor, model_path: Path, spec_path: Path, suffix: str) -> int:
    """`rnnc predict ... --steps N`: read, roll forward, write (nothing written on bad input)."""
    from rnnc.artifacts import atomic_open
    from rnnc.cli.predict_output import ArrayWriter, CsvWriter, columns_for
    from rnnc.cli.predict_sources import SPEC_HINT, read_spec, suffix_of
    from rnnc.data_csv import read_future

    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.format == "long":
        raise UsageError("--format long is for per-step outputs; --steps writes one row per step forecast already")
    if isinstance(predictor, GraphPredictor):
        raise UsageError(f"--steps rolls forward a chain's one-step forecaster (spec version 1); {model_path} is a graph")
    if suffix_of(args.input) != ".csv":
        raise UsageError(f"--steps reads a series .csv (the history, then {args.steps} rows with empty targets), got {args.input}")
    if not spec_path.is_file():
        raise UsageError(f"--steps reads the series as the spec's data.csv says: {SPEC_HINT}")
    model, _ = read_spec(spec_path, args.input)
    windows = one_step_windows(model, spec_path)
    future = read_future(Path(args.input), windows, args.steps)
    try:
        forecasts = roll_forward(predictor, future.history[None, -windows.window :], future.ahead[None], future.targets)[0]
    except DataError as err:
        raise DataError(f"{args.input}: {err} (is {model_path} the model of {spec_path}?)") from None
    with contextlib.nullcontext(sys.stdout) if args.output is None else atomic_open(args.output, "w" if suffix == ".csv" else "wb") as handle:
        writer: CsvWriter | ArrayWriter
        if suffix == ".csv":
            writer = CsvWriter(handle, columns_for(predictor, windows.targets), args.steps, str(model_path),
                               keys=(future.key_names, future.keys) if future.key_names else None)
        else:
            writer = ArrayWriter(handle, args.steps, str(model_path), npz=suffix == ".npz", lengths=False)
        writer.write(forecasts)
        writer.finish()
    return 0
