"""Will the sunspot number rise next year? The seed model on a real series.

One command: `python examples/sunspots/run.py` trains `spec.yaml` with `rnnc train`
(the seed model: SimpleRNN(32), dense sigmoid, Adam, binary cross-entropy; 10-year
windows of data/train.csv, data/val.csv for early stopping), runs the exported
model.onnx on every window of data/test.csv (forecasting 1951-2008) with onnxruntime,
and prints its accuracy against two baselines:

- persistence: next year moves the way this year did (rises if this year rose);
- majority: the most common answer in the training years.

Extra arguments go to `rnnc train` (e.g. `--set training.epochs=1`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

import rnnc.cli

# `rnnc train` below runs in this process, on one torch thread unless OMP_NUM_THREADS
# says otherwise: these small recurrent steps gain nothing from more, and lose a lot on
# a busy machine. torch reads the variable once, when it is first imported (by `rnnc
# train`, not by anything above), so the default is set here, before that.
os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/sunspots"), help="where rnnc train writes (default: runs/sunspots)")
    args, extra = parser.parse_known_args()
    status = rnnc.cli.main(["train", str(HERE / "spec.yaml"), "-o", str(args.run_dir), "--no-progress", *extra])
    if status:
        return status

    from rnnc.data import load_file
    from rnnc.data_csv import read_table
    from rnnc.runtime import Predictor
    from rnnc.spec import load_model

    model = load_model(HERE / "spec.yaml")
    windows = model.data.csv
    assert windows is not None and model.data.test is not None and model.data.train is not None
    test = load_file(model, model.data.test)  # the spec's own windowing of the test file
    truth = test.y[:, 0] > 0.5
    rises = Predictor(args.run_dir / "model.onnx").predict(test.x)[:, 0] > 0.5

    header, table = read_table(Path(model.data.test), ["year", "rises"])
    target = np.arange(len(test)) + windows.window - 1 + windows.horizon  # the row each window forecasts
    years = table[target, header.index("year")].astype(int)
    persistence = table[target - 1, header.index("rises")] > 0.5  # this year's direction, known at forecast time
    trained = load_file(model, model.data.train)
    majority = np.full(len(test), trained.y.mean() > 0.5)
    print(f"\ntest: {len(test)} years forecast, {years[0]}-{years[-1]}; next year rises in {truth.mean():.0%} of them")
    results = {
        "SimpleRNN (rnnc, model.onnx on onnxruntime)": rises,
        "persistence (next year moves as this year did)": persistence,
        f"majority (always '{'rises' if majority[0] else 'falls'}')": majority,
    }
    accuracy = {}
    for name, guess in results.items():
        accuracy[name] = float((guess == truth).mean())
        print(f"  accuracy {accuracy[name]:.4f} ({int((guess == truth).sum())}/{len(truth)})  {name}")
    rnn, persist = list(accuracy.values())[:2]
    print(f"\nSimpleRNN {rnn:.4f} vs persistence {persist:.4f}: {100 * (rnn - persist):+.1f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
