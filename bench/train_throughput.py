"""Training throughput: rnnc's trainer against a hand-written PyTorch loop, in one process.

Both train the same network (bench/workloads.py) on the same pre-tensorised data with
the same batch size, optimizer (Adam, lr 0.001) and loss, shuffling each epoch by a
permutation. The hand-written loop is what an engineer would write: torch's recurrent
modules and `nn.Linear`, the loss on logits, `torch.optim.Adam(model.parameters())`,
`zero_grad`/`backward`/`step`, the loss summed on the device and read once per epoch.
rnnc runs `Trainer.train_epoch`, the loop behind `rnnc train` and `fit`. Epochs of the
two alternate (and which goes first alternates too), so drift in the machine's speed
falls on both; after the warm-up, each repetition times one epoch of each. Reported:
samples/s as the median with the min-max of the repetitions, the ratio of the medians,
and the median of each repetition's own ratio (robust to a machine whose speed drifts).

    python bench/train_throughput.py                       # every workload, torch's default threads
    python bench/train_throughput.py --workload b --reps 9 --threads 1
    python bench/train_throughput.py --device cuda

`WORKLOADS` is re-exported for bench/distributed_scaling.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from rnnc.data import from_arrays
from rnnc_torch.fit import resolve_device
from rnnc_torch.trainer import DeviceData, Trainer
from workloads import WORKLOADS, HandWritten, Workload, forward_flops, hand_loss

__all__ = ["WORKLOADS", "measure", "pytorch_epoch_runner", "rnnc_epoch_runner"]

Epoch = Callable[[int], float]


def pytorch_epoch_runner(work: Workload, xs: np.ndarray, ys: np.ndarray, device: torch.device) -> Epoch:
    torch.manual_seed(0)
    net = HandWritten(work).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.001)
    loss_fn = hand_loss(work)
    x = torch.from_numpy(xs).to(device)
    y = torch.from_numpy(ys).to(device)
    y = y.view(-1, 1) if work.key == "a" else y
    found = work.lengths(xs)
    lengths = None if found is None else torch.from_numpy(found)  # packing wants them on the CPU
    n, batch = x.shape[0], work.batch

    def epoch(seed: int) -> float:
        net.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        total = torch.zeros((), device=device)
        for start in range(0, n, batch):
            rows = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            if lengths is None:
                output = net(x[rows.to(device)])
            else:
                output = net(x[rows.to(device)], lengths[rows])
            loss = loss_fn(output, y[rows.to(device)])
            loss.backward()
            optimizer.step()
            total += loss.detach()
        return float(total) / -(-n // batch)

    return epoch


def rnnc_epoch_runner(work: Workload, xs: np.ndarray, ys: np.ndarray, device: torch.device,
                      metrics: tuple[str, ...] = (), progress: bool = False, precision: str = "fp32") -> Epoch:
    model = work.model(metrics)
    model = dataclasses.replace(model, training=dataclasses.replace(model.training, precision=precision))
    trainer = Trainer(model, device)
    data = DeviceData.of(model, from_arrays(model, xs, ys), device)

    def epoch(seed: int) -> float:
        return trainer.train_epoch(seed, data, model.optimizer.lr, progress)["loss"]

    return epoch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(work: Workload, device: torch.device, reps: int = 5, warmup: int = 1, metrics: bool = False,
            progress: bool = False, precision: str = "fp32") -> dict:
    """samples/s of rnnc (at `training.precision: precision`) and of the hand-written loop
    (always fp32) on `work`, epochs interleaved."""
    xs, ys = work.data()
    started = time.perf_counter()
    runners = {
        "rnnc": rnnc_epoch_runner(work, xs, ys, device, ("accuracy",) if metrics else (), progress, precision),
        "pytorch": pytorch_epoch_runner(work, xs, ys, device),
    }
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for rep in range(warmup + reps):
        order = list(runners.items())
        for name, run in order if rep % 2 == 0 else order[::-1]:  # alternate who goes first
            sync(device)
            start = time.perf_counter()
            run(rep + 1)
            sync(device)
            if rep >= warmup:
                rates[name].append(work.samples / (time.perf_counter() - start))
    result: dict = {"workload": work.key, "name": work.name, "title": work.title, "batch": work.batch,
                    "samples": work.samples, "device": str(device), "threads": torch.get_num_threads(), "precision": precision,
                    "train_flops": 3 * forward_flops(work), "seconds": time.perf_counter() - started}
    for name, values in rates.items():
        result[name] = summary(values)
    result["ratio"] = result["rnnc"]["median"] / result["pytorch"]["median"]
    # Each repetition's two epochs ran back to back: their ratio cancels slow drifts.
    result["paired_ratio"] = summary([a / b for a, b in zip(rates["rnnc"], rates["pytorch"], strict=True)])
    return result


def report(result: dict) -> str:
    lines = [f"({result['workload']}) {result['title']}, {result['samples']} samples, {result['device']}, "
             f"{result['threads']} threads, rnnc {result.get('precision', 'fp32')}"]
    for name in ("rnnc", "pytorch"):
        r = result[name]
        lines.append(f"    {name:8s} {r['median']:10.0f} samples/s   (min {r['min']:.0f}, max {r['max']:.0f})")
    paired = result["paired_ratio"]
    lines.append(f"    ratio    {result['ratio']:10.3f}   (rnnc / pytorch, of the medians)")
    lines.append(f"    paired   {paired['median']:10.3f}   (median of each repetition's ratio; min {paired['min']:.3f}, "
                 f"max {paired['max']:.3f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--reps", type=int, default=5, help="timed epochs of each (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs of each first (default 1)")
    parser.add_argument("--samples", type=int, help="samples per epoch (default: the workload's)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, the cores)")
    parser.add_argument("--metrics", action="store_true", help="rnnc also computes accuracy each epoch")
    parser.add_argument("--progress", action="store_true", help="rnnc also shows its progress bar (on stderr)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="rnnc's training.precision (default fp32)")
    parser.add_argument("--json", action="store_true", help="one JSON object per workload instead of text")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    for key in list(WORKLOADS) if args.workload == "all" else [args.workload]:
        work = WORKLOADS[key] if not args.samples else WORKLOADS[key].replace(samples=args.samples)
        result = measure(work, device, args.reps, args.warmup, args.metrics, args.progress, args.precision)
        print(json.dumps(result) if args.json else report(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
