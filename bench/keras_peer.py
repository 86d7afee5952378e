"""Keras 3 (TensorFlow backend) on the benchmark workloads, as a peer to rnnc and PyTorch.

Runs in its own environment (bench/requirements.txt; rnnc and torch are not needed
there): `bench/run_all.py` writes each workload's layers (workloads.KERAS) and data to
a folder and runs `python keras_peer.py FOLDER` with that environment's interpreter.
Per workload: training samples/s from `model.fit` (Adam, lr 0.001, shuffled, the
workload's batch size; each epoch timed by a callback, the first ones as warm-up, as
`fit` traces its graph then), then `predict_on_batch` at batch 1 (latency) and 256
(throughput). Keras builds its own initial weights: the function is the same network,
not the same numbers. Prints one JSON object per workload on stdout.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402


def build(plan: dict) -> keras.Model:
    layers: list = [keras.Input(shape=tuple(plan["input"]), dtype="int64" if plan["input"] == [None] else "float32")]
    for kind, size, options in plan["layers"]:
        match kind:
            case "Embedding":
                layers.append(keras.layers.Embedding(size, **options))
            case "SimpleRNN" | "LSTM" | "GRU":
                layers.append(getattr(keras.layers, kind)(size, **options))
            case "BiGRU":
                layers.append(keras.layers.Bidirectional(keras.layers.GRU(size, **options)))
            case "Dense":
                layers.append(keras.layers.Dense(size, **options))
            case _:
                raise ValueError(kind)
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss=plan["loss"])
    return model


class EpochTimes(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.times.append(time.perf_counter() - self.started)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def latency(model: keras.Model, x: np.ndarray, reps: int) -> dict[str, float]:
    for _ in range(max(3, reps // 10)):
        model.predict_on_batch(x)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    return summary(times)


def run(folder: Path, key: str, plan: dict) -> dict:
    data = np.load(folder / f"{key}.npz")
    started = time.perf_counter()
    model = build(plan)
    timer = EpochTimes()
    x, y = data["x"], data["y"]
    model.fit(x, y, batch_size=plan["batch"], epochs=plan["warmup"] + plan["reps"], shuffle=True, verbose=0, callbacks=[timer])
    rates = [len(x) / t for t in timer.times[plan["warmup"] :]]
    return {"workload": key, "train": summary(rates), "batch1": latency(model, data["x1"], plan["reps_1"]),
            "batch256": latency(model, data["x256"], plan["reps_256"]), "seconds": time.perf_counter() - started}


def main() -> int:
    folder = Path(sys.argv[1])
    plans = json.loads((folder / "plan.json").read_text())
    threads = next(iter(plans.values()), {}).get("threads")
    if threads:  # as many intra-op threads as the other systems get; TensorFlow's default is the cores
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    print(json.dumps({"versions": {"keras": keras.__version__, "backend": keras.backend.backend(),
                                   "tensorflow": __import__("tensorflow").__version__}}), flush=True)
    for key, plan in plans.items():
        print(json.dumps(run(folder, key, plan)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
