"""Data-parallel scaling: rnnc's trainer in 1, 2, ... torchrun workers on this machine.

For each process count the same workload (bench/train_throughput.py's, same global
batch) is trained by `rnnc_torch.distributed.DistributedTrainer` in workers started by
torchrun (standalone rendezvous, gloo on CPU, NCCL on CUDA), even for one process, so
every row pays the same launcher. Each worker gets `cores // nproc` torch threads unless
`--threads` says otherwise. After a warm-up epoch, each repetition times one epoch
between two barriers (CUDA synchronised); rank 0 reports the global samples/s. Printed:
one row per process count, the median with the min-max spread, and the speed-up of the
medians against the first row. `--precision` times `training.precision` (on CUDA: bf16,
fp16 autocast). `--workload graph` times a graph (spec version 2), workload b's LSTM(128)
over [100, 16] beside 8 static features, with a class and a score output (loss weights
1 and 0.5), trained by `DistributedGraphTrainer`.

    python bench/distributed_scaling.py                         # workload a, 1 and 2 processes, CPU
    python bench/distributed_scaling.py --nproc 1 2 4 --workload b --reps 5
    python bench/distributed_scaling.py --device cuda --nproc 1 --precision fp32 bf16 fp16
    python bench/distributed_scaling.py --nproc 1 2 --threads 1 --workload graph --samples 512
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


GRAPH_SPEC = """
rnnc: 2
name: bench-graph
inputs: {events: {shape: [100, 16]}, profile: {shape: [8]}}
layers:
  - {name: enc, type: lstm, units: 128, input: events}
  - {name: both, type: concatenate, input: [enc, profile]}
  - {name: kind, type: dense, units: 10, activation: softmax}
  - {name: score, type: dense, units: 1, input: both}
outputs:
  kind: {loss: sparse_categorical_crossentropy}
  score: {loss: mse, loss_weight: 0.5}
optimizer: adam
training: {epochs: 1000000, batch_size: 64, seed: 0}
"""


def graph_workload(samples: int | None, device: object) -> tuple[object, object, int, int]:
    """The graph workload: (model, its data on `device`, batch, samples)."""
    import numpy as np

    from rnnc.graph_data import graph_dataset
    from rnnc.spec import model_from_text
    from rnnc_torch.graph_trainer import GraphDeviceData

    model = model_from_text(GRAPH_SPEC, "bench-graph")
    n = samples or 1024
    rng = np.random.default_rng(0)
    arrays = {"events": rng.normal(size=(n, 100, 16)).astype(np.float32), "profile": rng.normal(size=(n, 8)).astype(np.float32),
              "kind": rng.integers(0, 10, n), "score": rng.normal(size=(n, 1)).astype(np.float32)}
    return model, GraphDeviceData.of(graph_dataset(model, arrays, "bench-graph"), device), model.training.batch_size, n


def worker(args: argparse.Namespace) -> None:
    """One torchrun worker: train `reps` timed epochs; rank 0 appends a JSON line."""
    import dataclasses

    import torch
    import torch.distributed as dist
    from train_throughput import WORKLOADS

    from rnnc.data import from_arrays
    from rnnc_torch.distributed import session
    from rnnc_torch.trainers import make_trainer
    from rnnc_torch.trainer import DeviceData

    torch.set_num_threads(args.threads)
    with session(args.device) as (world, device):
        assert world is not None
        if args.workload == "graph":
            base, data, batch, samples = graph_workload(args.samples, device)
        else:
            work = WORKLOADS[args.workload]
            if args.samples:
                work = dataclasses.replace(work, samples=args.samples)
            base, batch, samples = work.model(()), work.batch, work.samples
        model = dataclasses.replace(base, training=dataclasses.replace(base.training, precision=args.precision[0]))
        trainer = make_trainer(model, device, world)
        if args.workload != "graph":
            data = DeviceData.of(model, from_arrays(model, *work.data()), device)
        rates = []
        for rep in range(args.warmup + args.reps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dist.barrier()
            started = time.perf_counter()
            trainer.train_epoch(rep + 1, data, model.optimizer.lr)  # reduces: ends together
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dist.barrier()
            if rep >= args.warmup:
                rates.append(samples / (time.perf_counter() - started))
        if world.is_main:
            row = {"nproc": world.size, "threads": args.threads, "device": str(device.type), "precision": args.precision[0],
                   "workload": args.workload, "batch": batch, "samples": samples,
                   "median": statistics.median(rates), "min": min(rates), "max": max(rates)}
            with open(args.result, "a") as handle:
                handle.write(json.dumps(row) + "\n")


def measure(nproc: int, args: argparse.Namespace, precision: str, result: Path) -> None:
    from torch.distributed.run import get_args_parser, run

    threads = args.threads or max(1, (os.cpu_count() or 1) // nproc)
    forwarded = ["--worker", "--result", str(result), "--workload", args.workload, "--device", args.device,
                 "--precision", precision, "--threads", str(threads), "--reps", str(args.reps), "--warmup", str(args.warmup)]
    if args.samples:
        forwarded += ["--samples", str(args.samples)]
    os.environ["OMP_NUM_THREADS"] = str(threads)
    run(get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", __file__, *forwarded]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="process counts (default 1 2)")
    parser.add_argument("--workload", choices=["a", "b", "graph"], default="a",
                        help="bench/train_throughput.py's a or b, or a graph (default a)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--precision", nargs="+", default=["fp32"], help="training.precision values (default fp32)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per worker (default cores // nproc)")
    parser.add_argument("--reps", type=int, default=5, help="timed epochs (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first (default 1)")
    parser.add_argument("--samples", type=int, help="samples per epoch (default: the workload's)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "rows.jsonl"
        for precision in args.precision:
            for nproc in args.nproc:
                measure(nproc, args, precision, result)
        rows = [json.loads(line) for line in result.read_text().splitlines()]
    if args.json:
        print("\n".join(json.dumps(row) for row in rows))
        return 0
    first = rows[0]["median"]
    print(f"workload {args.workload}, global batch {rows[0]['batch']}, {rows[0]['samples']} samples/epoch, {args.reps} timed epochs")
    print(f"{'nproc':>5} {'threads':>7} {'device':>6} {'precision':>9} {'samples/s':>10}  {'(min - max)':>17} {'speed-up':>8}")
    for row in rows:
        spread = f"({row['min']:.0f} - {row['max']:.0f})"
        print(f"{row['nproc']:>5} {row['threads']:>7} {row['device']:>6} {row['precision']:>9} {row['median']:>10.0f}  {spread:>17} {row['median'] / first:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
