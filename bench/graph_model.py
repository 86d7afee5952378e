"""A spec-v2 graph: rnnc's training and exported graph against the same graph by hand.

The graph is examples/co2_static's (a sequence and static features: normalization of
52 weekly changes, LSTM(32), its final state concatenated with 5 calendar features,
dense(16, tanh), dense(1); Huber loss, Adam at the spec's lr 0.003, batch 32) on that
example's training windows (1,685 samples). Hand-written PyTorch is what an engineer
would write for it: the normalization as two buffers, `nn.LSTM`, `torch.cat`,
`nn.Linear`, `nn.HuberLoss`, `torch.optim.Adam(model.parameters())`, zero_grad/
backward/step over a fresh permutation each epoch. rnnc runs `GraphTrainer.train_epoch`,
the loop behind `rnnc train` for graphs (the spec's metric is dropped, so neither side
computes one). Epochs alternate (and which goes first alternates); after one warm-up
epoch each, `--reps` timed epochs each; samples/s as median and min-max, and the
median of each repetition's own rnnc / PyTorch ratio (paired: robust to drift).

Then inference at batch 1, with the weights rnnc trained in both graphs (the
hand-written module loads them): `rnnc` is `rnnc.runtime.load(...).run` on rnnc's
model.onnx (its input checks included, as `rnnc predict` pays them), `rnnc bare` a
plain onnxruntime session on the same file (the graph alone), `torch.onnx` an
onnxruntime session on `torch.onnx.export(dynamo=False)` of the hand-written module,
`torch` the module itself in eager mode; every contender on one thread (rnnc.runtime's
choice at batch 1), taking turns in rounds of an untimed call and 10 timed ones. All
four must agree on the whole test set before anything is timed.

    python bench/graph_model.py --json bench/results/graph_model.json && python bench/render.py
    python bench/graph_model.py --quick          # a smoke test: few repetitions
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

import rnnc_onnx
from infer_latency import quiet_stderr, timed
from rnnc.graph_data import graph_dataset
from rnnc.runtime import load, session_options
from rnnc.spec import load_model
from rnnc_torch.graph_trainer import GraphTrainer
from run_all import machine
from train_throughput import summary

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "co2_static"
SPEC = EXAMPLE / "spec.yaml"
SETTINGS = ["outputs.change.metrics=[]"]  # no metric on either side: the loop alone is timed
Epoch = Callable[[int], float]


class HandGraph(nn.Module):
    """examples/co2_static/spec.yaml as one would write it in PyTorch."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1))
        self.register_buffer("std", torch.ones(1))
        self.lstm = nn.LSTM(1, 32, batch_first=True)
        self.hidden = nn.Linear(32 + 5, 16)
        self.head = nn.Linear(16, 1)

    def forward(self, history: Tensor, calendar: Tensor) -> Tensor:
        _, (h_n, _) = self.lstm((history - self.mean) / self.std)
        return self.head(torch.tanh(self.hidden(torch.cat([h_n[-1], calendar], dim=1))))

    # (torch name, rnnc weight name): the spec's layers are normalization, lstm,
    # concatenate, dense, dense
    NAMES = [*((f"lstm.{n}_l0", f"layers.1.{n}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
             ("hidden.weight", "layers.3.weight"), ("hidden.bias", "layers.3.bias"),
             ("head.weight", "layers.4.weight"), ("head.bias", "layers.4.bias")]

    def load_rnnc_weights(self, weights: dict[str, np.ndarray]) -> HandGraph:
        params = dict(self.named_parameters())
        assert sorted(params) == sorted(name for name, _ in self.NAMES), "the name map misses parameters"
        with torch.no_grad():
            for name, ir_name in self.NAMES:
                params[name].copy_(torch.from_numpy(weights[ir_name]))
            self.set_statistics(weights["layers.0.mean"], weights["layers.0.variance"])
        return self

    def set_statistics(self, mean: np.ndarray, variance: np.ndarray) -> None:
        """What Keras's Normalization does: std floored at 1e-7."""
        self.mean.copy_(torch.from_numpy(mean))
        self.std.copy_(torch.from_numpy(np.maximum(np.sqrt(variance), 1e-7)))


def hand_epoch_runner(arrays: dict[str, np.ndarray], lr: float, batch: int) -> tuple[HandGraph, Epoch]:
    torch.manual_seed(0)
    net = HandGraph()
    history, calendar = torch.from_numpy(arrays["history"]), torch.from_numpy(arrays["calendar"])
    target = torch.from_numpy(arrays["change"])
    net.set_statistics(arrays["history"].mean((0, 1)), arrays["history"].var((0, 1)))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.HuberLoss(delta=1.0)
    n = len(target)

    def epoch(seed: int) -> float:
        net.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        total = torch.zeros(())
        for start in range(0, n, batch):
            rows = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(history[rows], calendar[rows]), target[rows])
            loss.backward()
            optimizer.step()
            total += loss.detach()
        return float(total) / -(-n // batch)

    return net, epoch


def rnnc_epoch_runner(arrays: dict[str, np.ndarray]) -> tuple[GraphTrainer, Epoch]:
    model = load_model(SPEC, SETTINGS)
    trainer = GraphTrainer(model, "cpu")
    dataset = graph_dataset(model, arrays, "train.npz")
    trainer.adapt(dataset)
    data = trainer.on_device(dataset)

    def epoch(seed: int) -> float:
        return trainer.train_epoch(seed, data, model.optimizer.lr)["loss"]

    return trainer, epoch


def measure_training(arrays: dict[str, np.ndarray], reps: int, warmup: int = 1) -> tuple[dict, GraphTrainer]:
    model = load_model(SPEC, SETTINGS)
    trainer, rnnc_epoch = rnnc_epoch_runner(arrays)
    _, hand_epoch = hand_epoch_runner(arrays, model.optimizer.lr, model.training.batch_size)
    runners = {"rnnc": rnnc_epoch, "pytorch": hand_epoch}
    rates: dict[str, list[float]] = {name: [] for name in runners}
    losses: dict[str, float] = {}
    n = len(arrays["change"])
    for rep in range(warmup + reps):
        order = list(runners.items())
        for name, run in order if rep % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            losses[name] = run(rep + 1)
            if rep >= warmup:
                rates[name].append(n / (time.perf_counter() - start))
    result = {"samples": n, "batch": model.training.batch_size, "lr": model.optimizer.lr, "reps": reps,
              "rnnc": summary(rates["rnnc"]), "pytorch": summary(rates["pytorch"]),
              "paired_ratio": summary([a / b for a, b in zip(rates["rnnc"], rates["pytorch"], strict=True)]),
              "final_loss": losses}
    return result, trainer


def measure_inference(trainer: GraphTrainer, test: dict[str, np.ndarray], folder: Path, reps: int) -> dict:
    model = trainer.model
    weights = {k: np.ascontiguousarray(v) for k, v in trainer.module.ir_state().items()}
    rnnc_path, torch_path = folder / "rnnc.onnx", folder / "torch.onnx"
    rnnc_onnx.export(model, weights, rnnc_path)
    net = HandGraph().load_rnnc_weights(weights).eval()
    history, calendar = torch.from_numpy(test["history"][:1]), torch.from_numpy(test["calendar"][:1])
    torch_export = "torch.onnx.export(dynamo=False, opset_version=17)"
    with quiet_stderr():
        torch.onnx.export(net, (history, calendar), str(torch_path), dynamo=False, opset_version=17,
                          input_names=["history", "calendar"], output_names=["change"],
                          dynamic_axes={"history": {0: "batch"}, "calendar": {0: "batch"}, "change": {0: "batch"}})
    predictor = load(rnnc_path, threads=1)
    bare = ort.InferenceSession(str(rnnc_path), session_options(1), providers=["CPUExecutionProvider"])
    traced = ort.InferenceSession(str(torch_path), session_options(1), providers=["CPUExecutionProvider"])

    def eager(x: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(x["history"]), torch.from_numpy(x["calendar"])).numpy()

    def everyone(x: dict[str, np.ndarray]) -> dict[str, Callable[[], object]]:
        return {"rnnc": lambda: predictor.run(x)["change"], "rnnc bare": lambda: bare.run(["change"], x)[0],
                "torch.onnx": lambda: traced.run(["change"], x)[0], "torch": lambda: eager(x)}

    whole = {"history": test["history"], "calendar": test["calendar"]}
    outputs = {name: np.asarray(call()) for name, call in everyone(whole).items()}
    gap = max(float(np.abs(out - outputs["torch"]).max()) for out in outputs.values())
    assert gap < 1e-4, f"the contenders disagree on the test set by {gap}"
    one = {"history": test["history"][:1], "calendar": test["calendar"][:1]}
    with torch.inference_mode(), torch.no_grad():
        torch.set_num_threads(1)
        times = timed(everyone(one), reps, warmup=20)
    return {"batch": 1, "threads": 1, "calls": reps, "agreement": gap, "torch_export": torch_export,
            **{name: summary(values) for name, values in times.items()}}


def report(result: dict) -> str:
    train, infer = result["train"], result["infer"]
    lines = [f"training, {train['samples']} samples, batch {train['batch']}, {train['reps']} epochs each:"]
    for name in ("rnnc", "pytorch"):
        r = train[name]
        lines.append(f"    {name:10s} {r['median']:8.0f} samples/s  (min {r['min']:.0f}, max {r['max']:.0f})")
    p = train["paired_ratio"]
    lines.append(f"    paired     {p['median']:8.3f}  rnnc / pytorch (min {p['min']:.3f}, max {p['max']:.3f})")
    lines.append(f"inference at batch 1, {infer['calls']} calls each, ms per call (outputs agree to {infer['agreement']:.1e}):")
    for name in ("rnnc", "rnnc bare", "torch.onnx", "torch"):
        r = infer[name]
        lines.append(f"    {name:10s} {r['median'] * 1e3:8.3f}  (min {r['min'] * 1e3:.3f}, max {r['max'] * 1e3:.3f})")
    lines.append(f"    torch.onnx / rnnc {infer['torch.onnx']['median'] / infer['rnnc']['median']:.2f}, "
                 f"torch.onnx / rnnc bare {infer['torch.onnx']['median'] / infer['rnnc bare']['median']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=15, help="timed training epochs of each (default 15)")
    parser.add_argument("--calls", type=int, default=500, help="timed calls at batch 1 of each (default 500)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training (default 1, as the examples)")
    parser.add_argument("--quick", action="store_true", help="3 epochs and 60 calls: a smoke test")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    reps, calls = (3, 60) if args.quick else (args.reps, args.calls)
    torch.set_num_threads(args.threads)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    train_arrays = dict(np.load(EXAMPLE / "data" / "train.npz"))
    test_arrays = dict(np.load(EXAMPLE / "data" / "test.npz"))
    result: dict = {"machine": machine(), "spec": str(SPEC.relative_to(ROOT)), "load_before": load_before,
                    "settings": {"arguments": " ".join(argv if argv is not None else sys.argv[1:]), "quick": args.quick,
                                 "threads": args.threads}}
    result["train"], trainer = measure_training(train_arrays, reps)
    with tempfile.TemporaryDirectory() as folder:
        result["infer"] = measure_inference(trainer, test_arrays, Path(folder), calls)
    result["load_after"], result["seconds"] = os.getloadavg()[0], time.perf_counter() - started
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
