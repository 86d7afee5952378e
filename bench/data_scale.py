"""Training from disk in bounded memory: peak resident memory and samples/s, by data layout.

Generates an LSTM workload (sequences of 100 steps x 16 float32 features, lengths 50-100,
one binary label) in bounded memory (`open_memmap`, written in chunks) at 1 GB and,
with `--large`, 8 GB, in each layout: a directory of `.npy` files, an uncompressed
`.npz` (which `rnnc train` reads in place, by rows) and ragged Parquet (each row's real
steps only, row groups of 8,192 rows; `rnnc train` decodes it once into the data cache,
`rnnc.parquet_spill`, and reads rows from there); at 1 GB also the `.npz` loaded whole
into memory (`rnnc.data.ROWS_ABOVE` raised), the Parquet set decoded whole in memory
(the path a small set takes), and the `.npz` compressed (`np.savez_compressed`, inflated
once into the data cache, `rnnc.npz_spill`). Before the timed runs, a child process
builds each cache once and reports the one-off time, its peak memory and the cache's
size on disk; the timed runs then reuse it, as the next run or trial on the same files
does. Each case runs in a fresh child process that does what `rnnc train` does up to
its first epoch (`rnnc.data.load_training_data`: every row checked; the torch
`Trainer`), then trains `--batches` batches of the epoch's shuffled order (a fixed
number of batches, not whole epochs: the time budget is ~25 minutes on two shared
cores), and reports its own peak resident memory (VmHWM from /proc/self/status) and
samples/s over those batches. Beside them, a hand-written PyTorch loop over a
memory-mapped `x.npy` (`np.load(mmap_mode="r")`, the same model, batch and order). The
runs of the cases are interleaved (run 1 of every case, then run 2, ...), so load from
other work on the machine spreads over all of them alike. Medians and spreads of
`--runs` runs; JSON in bench/results/data_scale.json. Not a test.

    .venv/bin/python bench/data_scale.py [--runs 3] [--batches 60] [--large]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "data_scale.json"
STEPS, FEATURES, BATCH = 100, 16, 256
ROW_BYTES = STEPS * FEATURES * 4
SPEC = """rnnc: 1
name: data-scale
input: {{shape: [null, {features}]}}
layers:
  - {{type: lstm, units: 64}}
  - {{type: dense, units: 1, activation: sigmoid}}
loss: binary_crossentropy
optimizer: {{type: adam, lr: 0.001}}
training: {{epochs: 1, batch_size: {batch}, seed: 0}}
data: {{train: {train}}}
"""


def generate(folder: Path, rows: int, chunk: int = 20_000) -> Path:
    """x.npy, y.npy, lengths.npy of `rows` sequences, written a chunk at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    x = np.lib.format.open_memmap(folder / "x.npy", "w+", np.float32, (rows, STEPS, FEATURES))
    y = np.lib.format.open_memmap(folder / "y.npy", "w+", np.float32, (rows,))
    lengths = np.lib.format.open_memmap(folder / "lengths.npy", "w+", np.int64, (rows,))
    rng = np.random.default_rng(0)
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        part = rng.normal(size=(n, STEPS, FEATURES)).astype(np.float32)
        real = rng.integers(STEPS // 2, STEPS + 1, n)
        part[np.arange(STEPS)[None, :] >= real[:, None]] = 0.0
        x[start : start + n] = part
        y[start : start + n] = (part[:, :, 0].sum(1) > 0).astype(np.float32)
        lengths[start : start + n] = real
        x.flush()
    del x, y, lengths
    return folder


def to_npz(folder: Path, path: Path, compressed: bool = False) -> Path:
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ("x", "y", "lengths")}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)  # numpy writes a memmap member in buffered pieces
    return path


def to_parquet(folder: Path, path: Path, group: int = 8192) -> Path:
    """The same rows as ragged Parquet: `x` a list of each row's real steps, `y`; a row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.load(folder / "x.npy", mmap_mode="r")
    y = np.load(folder / "y.npy", mmap_mode="r")
    lengths = np.load(folder / "lengths.npy", mmap_mode="r")
    kind = pa.list_(pa.list_(pa.float32(), FEATURES))
    with pq.ParquetWriter(path, pa.schema([("x", kind), ("y", pa.float32())])) as writer:
        for start in range(0, len(x), group):
            part, real = np.asarray(x[start : start + group]), np.asarray(lengths[start : start + group])
            steps = part[np.arange(STEPS)[None, :] < real[:, None]]  # [real steps of every row, F]
            inner = pa.FixedSizeListArray.from_arrays(pa.array(steps.reshape(-1)), FEATURES)
            offsets = pa.array(np.concatenate([[0], np.cumsum(real)]).astype(np.int32))
            table = pa.table({"x": pa.ListArray.from_arrays(offsets, inner), "y": pa.array(np.asarray(y[start : start + group]))})
            writer.write_table(table)
    return path


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# --- the child processes ------------------------------------------------------------


def peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_rnnc(spec: str, batches: int, in_memory: bool = False) -> dict:
    import torch

    import rnnc.data
    from rnnc.spec import load_model
    from rnnc_torch.trainer import Trainer, epoch_seed

    torch.set_num_threads(2)
    if in_memory:  # the whole archive loaded, as a compressed .npz is
        rnnc.data.ROWS_ABOVE = 1 << 62
    model = load_model(spec)
    started = time.perf_counter()
    data = rnnc.data.load_training_data(model).train  # every row checked, as rnnc train does
    loaded = time.perf_counter() - started
    trainer = Trainer(model)
    on_device = trainer.on_device(data)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(epoch_seed(0, 1)))[: batches * BATCH]
    part = on_device.take(order)  # the epoch's first `batches` batches, in its order
    trainer.settings = dataclasses.replace(trainer.settings, shuffle=False)  # `part` is already in the epoch's order
    started = time.perf_counter()
    trainer.train_epoch(1, part, 1e-3)
    seconds = time.perf_counter() - started
    return {"samples_per_s": batches * BATCH / seconds, "load_s": loaded, "peak_mib": peak_mib()}


def child_spill(target: str) -> dict:
    """Build the data cache of a Parquet set or a compressed `.npz` once, as the first run on it does."""
    from rnnc.npz_spill import spill_npz
    from rnnc.parquet_spill import spill

    started = time.perf_counter()
    spill(target, ("x", "y", "lengths")) if target.endswith(".parquet") else spill_npz(Path(target))
    return {"spill_s": time.perf_counter() - started, "spill_peak_mib": peak_mib()}


def child_torch(folder: str, batches: int) -> dict:
    """A hand-written PyTorch loop over a memory-mapped x.npy: same model, batch, order."""
    import torch
    from torch import nn

    torch.set_num_threads(2)
    torch.manual_seed(0)
    x = np.load(Path(folder) / "x.npy", mmap_mode="r")
    y = np.load(Path(folder) / "y.npy", mmap_mode="r")
    lengths = np.load(Path(folder) / "lengths.npy", mmap_mode="r")
    lstm, head = nn.LSTM(FEATURES, 64, batch_first=True), nn.Linear(64, 1)
    params = [*lstm.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    order = np.random.default_rng(0).permutation(len(x))[: batches * BATCH]
    started = time.perf_counter()
    for start in range(0, len(order), BATCH):
        index = np.sort(order[start : start + BATCH])
        xb, yb, lb = torch.from_numpy(x[index]), torch.from_numpy(y[index]), torch.from_numpy(lengths[index])
        out, _ = lstm(xb)
        last = out[torch.arange(len(index)), lb - 1]
        loss = loss_fn(head(last)[:, 0], yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - started
    return {"samples_per_s": batches * BATCH / seconds, "load_s": 0.0, "peak_mib": peak_mib()}


def run_child(kind: str, target: str, batches: int, cache: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{HERE.parent}:{HERE.parent / 'backends'}"}
    if cache is not None:
        env["RNNC_DATA_CACHE"] = cache
    out = subprocess.run([sys.executable, __file__, "--child", kind, target, str(batches)], capture_output=True,
                         text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} {target}: child failed\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(runs: list[dict]) -> dict:
    out = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        out[key] = {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--large", action="store_true", help="also 8 GB in the npy-directory layout")
    parser.add_argument("--gb", type=float, default=1.0, help="the small size (1 GB; less for a quick try)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, target, batches = args.child
        if kind == "spill":
            result = child_spill(target)
        else:
            result = child_torch(target, int(batches)) if kind == "torch" else child_rnnc(target, int(batches), kind == "memory")
        print(json.dumps(result))
        return
    sizes = {f"{args.gb:g}GB": int(args.gb * (1 << 30))} | ({"8GB": 8 << 30} if args.large else {})
    cases: dict[str, dict] = {}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="rnnc-data-scale-") as tmp:
        root = Path(tmp)
        for label, size in sizes.items():
            rows = size // ROW_BYTES
            started = time.perf_counter()
            folder = generate(root / label, rows)
            npz = to_npz(folder, root / f"train-{label}.npz")
            parquet = to_parquet(folder, root / f"train-{label}.parquet")
            made = [npz, parquet]
            print(f"generated {label}: {rows} rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            cache = root / f"cache-{label}"
            targets = {f"npy-dir {label}": ("rnnc", folder), f"npz read in place {label}": ("rnnc", npz),
                       f"parquet from the data cache {label}": ("rnnc", parquet)}
            if label != "8GB":
                compressed = to_npz(folder, root / f"train-{label}-compressed.npz", compressed=True)
                made.append(compressed)
                targets[f"npz in memory {label}"] = ("memory", npz)
                targets[f"parquet in memory {label}"] = ("memory", parquet)
                targets[f"compressed npz from the data cache {label}"] = ("rnnc", compressed)
                targets[f"hand-written torch, memmap {label}"] = ("torch", folder)
            spills = {}
            for name, (kind, path) in targets.items():
                if "data cache" in name:  # the one-off decode, timed apart; the runs below reuse its cache
                    before = disk_bytes(cache) if cache.exists() else 0
                    spills[name] = {**run_child("spill", str(path), 0, str(cache)), "spill_disk_bytes": disk_bytes(cache) - before,
                                    "file_bytes": path.stat().st_size}
                    print(f"{name}: cache built {spills[name]}", file=sys.stderr)
            runs: dict[str, list[dict]] = {name: [] for name in targets}
            for _ in range(args.runs):  # interleaved: other work's load falls on every case alike
                for name, (kind, path) in targets.items():
                    if kind != "torch":
                        spec = root / f"{name.replace(' ', '_').replace(',', '')}.yaml"
                        spec.write_text(SPEC.format(features=FEATURES, batch=BATCH, train=path))
                        path = spec
                    # the in-memory cases get an empty cache: a Parquet set's cache would win over decoding it
                    runs[name].append(run_child(kind, str(path), args.batches, str(cache if kind == "rnnc" else root / "none")))
                    loads.append(os.getloadavg()[0])
            for name, done in runs.items():
                cases[name] = {"data_bytes": rows * ROW_BYTES, "rows": rows, **summary(done), **spills.get(name, {})}
                print(f"{name}: {cases[name]}", file=sys.stderr)
            for path in made:
                path.unlink()
            shutil.rmtree(folder)  # the next size's data has the disk
            shutil.rmtree(cache, ignore_errors=True)
    result = {"workload": f"LSTM(64) on [{STEPS}, {FEATURES}] float32, lengths 50-100, batch {BATCH}",
              "batches_per_run": args.batches, "runs": args.runs, "cpu_threads": 2,
              "load_average": {"min": round(min(loads), 2), "max": round(max(loads), 2)}, "cases": cases}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
