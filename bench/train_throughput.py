"""Training throughput: rnnc's trainer against a hand-written PyTorch loop, in one run.

Both train the same network on the same pre-tensorised data with the same batch size,
optimizer (Adam) and loss, and shuffle each epoch by a permutation. The hand-written
loop is what an engineer would write: `nn.RNN`/`nn.LSTM` + `nn.Linear`, a fused logit
loss, `zero_grad`/`backward`/`step`, the loss accumulated on the device and read once
per epoch. rnnc runs `Trainer.train_epoch`, the loop behind `rnnc train` and `fit`.
Epochs of the two alternate (and which goes first alternates too), so a machine's load
drifts onto both alike; after a warm-up, each repetition times one epoch of each.
Printed: samples/s, the median with the min-max spread of the repetitions, the ratio
of the medians (rnnc / pytorch), and the median of each repetition's own ratio (robust
to a machine whose speed drifts).

    python bench/train_throughput.py                 # both workloads, torch's default threads
    python bench/train_throughput.py --device cuda --reps 9
    python bench/train_throughput.py --workload a --metrics   # rnnc also computes accuracy
    python bench/train_throughput.py --diagnose      # also rnnc's loop around the hand-written module

Workloads: (a) the seed model, SimpleRNN(32) over 10 steps x 1 feature, dense(1,
sigmoid), binary cross-entropy, batch 32; (b) LSTM(128) over 100 steps x 16 features,
dense(10, softmax), sparse categorical cross-entropy, batch 64.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rnnc import ir
from rnnc.data import from_arrays
from rnnc.shapes import infer_nodes
from rnnc_torch.fit import resolve_device
from rnnc_torch.optim import make_optimizer
from rnnc_torch.trainer import DeviceData, Trainer


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    steps: int
    features: int
    layer: ir.Recurrent
    classes: int  # 1: binary with a sigmoid unit
    batch: int
    samples: int

    def model(self, metrics: tuple[str, ...]) -> ir.Model:
        head = ir.Dense(units=self.classes, activation="sigmoid" if self.classes == 1 else "softmax")
        input_ = ir.Input(shape=(self.steps, self.features))
        nodes, problems = infer_nodes(input_, [self.layer, head])
        assert not problems
        loss = "binary_crossentropy" if self.classes == 1 else "sparse_categorical_crossentropy"
        return ir.Model(
            name=f"bench-{self.key}", input=input_, nodes=tuple(nodes), loss=ir.Loss(loss),  # type: ignore[arg-type]
            optimizer=ir.Optimizer("adam"), metrics=metrics,
            training=ir.Training(epochs=1_000_000, batch_size=self.batch, seed=0),
        )

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(self.samples, self.steps, self.features)).astype(np.float32)
        if self.classes == 1:
            return x, (x.sum(axis=(1, 2)) > 0).astype(np.float32)
        return x, rng.integers(0, self.classes, size=self.samples)


WORKLOADS = {
    "a": Workload("a", "seed model: SimpleRNN(32) over [10, 1] -> dense(1, sigmoid), BCE", 10, 1, ir.SimpleRNN(units=32), 1, 32, 8192),
    "b": Workload("b", "LSTM(128) over [100, 16] -> dense(10, softmax), sparse CE", 100, 16, ir.LSTM(units=128), 10, 64, 1024),
}


class HandWritten(nn.Module):
    """What one would write by hand: the recurrent module, then a linear head on h_n."""

    def __init__(self, work: Workload):
        super().__init__()
        kind = nn.LSTM if isinstance(work.layer, ir.LSTM) else nn.RNN
        self.rnn = kind(work.features, work.layer.units, batch_first=True)
        self.head = nn.Linear(work.layer.units, work.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(x)
        h = state[0] if isinstance(state, tuple) else state
        return self.head(h[-1])


def pytorch_epoch_runner(work: Workload, x: torch.Tensor, y: torch.Tensor, device: torch.device):
    torch.manual_seed(0)
    net = HandWritten(work).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.001)
    loss_fn = nn.BCEWithLogitsLoss() if work.classes == 1 else nn.CrossEntropyLoss()
    target = y.view(-1, 1) if work.classes == 1 else y
    n, batch = x.shape[0], work.batch

    def epoch(seed: int) -> float:
        net.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, n, batch):
            rows = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[rows]), target[rows])
            loss.backward()
            optimizer.step()
            total += loss.detach()
        return float(total) / -(-n // batch)

    return epoch


class HandModule(nn.Module):
    """The hand-written network behind the SpecModule interface (for `--diagnose`)."""

    def __init__(self, work: Workload):
        super().__init__()
        self.net = HandWritten(work)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, *, logits: bool = False) -> torch.Tensor:
        return self.net(x)


def rnnc_epoch_runner(work: Workload, xs: np.ndarray, ys: np.ndarray, device: torch.device, metrics: tuple[str, ...],
                      progress: bool, hand_module: bool = False):
    model = work.model(metrics)
    trainer = Trainer(model, device)
    if hand_module:  # rnnc's loop around the hand-written module: tells loop from module
        trainer.module = HandModule(work).to(device)  # type: ignore[assignment]
        trainer.optimizer = make_optimizer(model.optimizer, trainer.module.parameters())
    data = DeviceData.of(model, from_arrays(model, xs, ys), device)

    def epoch(seed: int) -> float:
        return trainer.train_epoch(seed, data, model.optimizer.lr, progress)["loss"]

    return epoch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(work: Workload, device: torch.device, reps: int, warmup: int, metrics: bool, progress: bool, diagnose: bool = False) -> dict:
    xs, ys = work.data()
    x = torch.from_numpy(xs).to(device)
    y = torch.from_numpy(ys).to(device)
    runners = {
        "rnnc": rnnc_epoch_runner(work, xs, ys, device, ("accuracy",) if metrics else (), progress),
        "pytorch": pytorch_epoch_runner(work, x, y.float() if work.classes == 1 else y.long(), device),
    }
    if diagnose:
        runners["rnnc-loop/hand-module"] = rnnc_epoch_runner(work, xs, ys, device, (), False, hand_module=True)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for rep in range(warmup + reps):
        order = list(runners.items())
        for name, run in order if rep % 2 == 0 else order[::-1]:  # alternate who goes first
            sync(device)
            started = time.perf_counter()
            run(rep + 1)
            sync(device)
            if rep >= warmup:
                rates[name].append(work.samples / (time.perf_counter() - started))
    result = {"workload": work.key, "title": work.title, "batch": work.batch, "samples": work.samples,
              "device": str(device), "threads": torch.get_num_threads()}
    for name, values in rates.items():
        result[name] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    result["ratio"] = result["rnnc"]["median"] / result["pytorch"]["median"]
    # Each repetition's two epochs ran back to back: their ratio cancels slow drifts.
    paired = [a / b for a, b in zip(rates["rnnc"], rates["pytorch"])]
    result["paired_ratio"] = {"median": statistics.median(paired), "min": min(paired), "max": max(paired)}
    return result


def report(result: dict) -> str:
    lines = [f"({result['workload']}) {result['title']}, batch {result['batch']}, {result['samples']} samples, "
             f"{result['device']}, {result['threads']} threads"]
    for name in [k for k in result if isinstance(result[k], dict) and "median" in result[k] and k != "paired_ratio"]:
        r = result[name]
        lines.append(f"    {name:8s} {r['median']:10.0f} samples/s   (min {r['min']:.0f}, max {r['max']:.0f})")
    paired = result["paired_ratio"]
    lines.append(f"    ratio    {result['ratio']:10.3f}   (rnnc / pytorch, of the medians)")
    lines.append(f"    paired   {paired['median']:10.3f}   (median of each repetition's ratio; min {paired['min']:.3f}, max {paired['max']:.3f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["a", "b", "all"], default="all")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--reps", type=int, default=7, help="timed epochs of each (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs of each first (default 1)")
    parser.add_argument("--samples", type=int, help="samples per epoch (default: the workload's)")
    parser.add_argument("--metrics", action="store_true", help="rnnc also computes accuracy each epoch")
    parser.add_argument("--progress", action="store_true", help="rnnc also shows its progress bar (on stderr)")
    parser.add_argument("--json", action="store_true", help="one JSON object per workload instead of text")
    parser.add_argument("--diagnose", action="store_true", help="also time rnnc's loop around the hand-written module")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    keys = ["a", "b"] if args.workload == "all" else [args.workload]
    for key in keys:
        work = WORKLOADS[key]
        if args.samples:
            work = Workload(**{**work.__dict__, "samples": args.samples})
        result = measure(work, device, args.reps, args.warmup, args.metrics, args.progress, args.diagnose)
        print(json.dumps(result) if args.json else report(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
