"""Peak resident memory and time of `rnnc data convert`, `rnnc predict` and `rnnc evaluate`
on data on disk (Parquet, a `.npy` directory) beside the same data as an in-memory `.npz`.

The data: N sequences x 100 steps x 16 float32 features, lengths uniform in [20, 100]
(zeros past them), a binary label; a run of LSTM(32) -> dense(1, sigmoid) trained one
epoch on its first 512 rows. Each command runs as its own process under
`/usr/bin/time -f %M` (peak resident set, KB), on one onnxruntime thread; the 4x row
is the Parquet file four times over in a directory (symlinks), to show that the peak
does not grow with the input. The CSV outputs and the evaluations' JSON are compared
byte for byte. One run each unless --runs says; medians with min-max.

    python bench/predict_from_disk.py [--rows 40000] [--runs 1] [--json OUT.json]

Not in bench/results/ (whose files each render a bench/README.md table): the figures
are quoted in docs/deploy.md, "Predicting large files".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RNNC = [sys.executable, "-m", "rnnc"]
SPEC = """rnnc: 1
name: bench
input: {shape: [null, 16]}
layers:
  - {type: lstm, units: 32}
  - {type: dense, units: 1, activation: sigmoid}
loss: binary_crossentropy
optimizer: adam
training: {epochs: 1, batch_size: 64, seed: 0}
data: {train: small.npz}
"""


def make_data(folder: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 101, size=rows)
    x = rng.normal(size=(rows, 100, 16)).astype(np.float32)
    x[np.arange(100)[None, :] >= lengths[:, None]] = 0
    y = (x[:, :, 0].sum(1) > 0).astype(np.float32)
    np.savez(folder / "data.npz", x=x, y=y, lengths=lengths)
    np.savez(folder / "small.npz", x=x[:512], y=y[:512], lengths=lengths[:512])


def timed(folder: Path, *argv: str) -> tuple[float, float]:
    """(seconds, peak MB) of one `rnnc` process."""
    out = folder / ".time"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(["/usr/bin/time", "-o", str(out), "-f", "%e %M", *RNNC, *argv], cwd=folder, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    seconds, kb = out.read_text().split()[-2:]
    return float(seconds), int(kb) / 1024


CASES = [  # (name, argv); outputs are removed before each run
    ("convert .npz -> .parquet", ["data", "convert", "data.npz", "-o", "data.parquet", "--no-progress"]),
    ("convert .npz -> .npy dir", ["data", "convert", "data.npz", "-o", "data_npy", "--no-progress"]),
    ("predict .npz -> csv", ["predict", "run", "data.npz", "-o", "npz.csv", "--no-progress", "--threads", "1"]),
    ("predict .parquet -> csv", ["predict", "run", "data.parquet", "-o", "parquet.csv", "--no-progress", "--threads", "1"]),
    ("predict .npy dir -> csv", ["predict", "run", "data_npy", "-o", "npy.csv", "--no-progress", "--threads", "1"]),
    ("predict 4x .parquet -> .parquet", ["predict", "run", "four", "-o", "four.parquet", "--no-progress", "--threads", "1"]),
    ("evaluate .npz", ["evaluate", "run", "data.npz", "--json"]),
    ("evaluate .parquet", ["evaluate", "run", "data.parquet", "--json"]),
    ("evaluate 4x .parquet", ["evaluate", "run", "four", "--json"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_data(folder, args.rows)
        (folder / "spec.yaml").write_text(SPEC)
        subprocess.run([*RNNC, "train", "spec.yaml", "-o", "run", "--no-progress", "--device", "cpu"], cwd=folder, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
        results = {}
        for name, argv in CASES:
            if name.startswith("predict 4x"):
                (folder / "four").mkdir(exist_ok=True)
                for i in range(4):
                    link = folder / "four" / f"part-{i}.parquet"
                    if not link.exists():
                        link.symlink_to(folder / "data.parquet")
            runs = []
            for _ in range(args.runs):
                target = argv[argv.index("-o") + 1] if "-o" in argv else None
                if target:
                    subprocess.run(["rm", "-rf", str(folder / target)], check=True)
                runs.append(timed(folder, *argv))
            results[name] = {"seconds": [r[0] for r in runs], "peak_mb": [round(r[1], 1) for r in runs]}
        same_csv = (folder / "npz.csv").read_bytes() == (folder / "parquet.csv").read_bytes() == (folder / "npy.csv").read_bytes()
        sizes = {"npz_mb": round((folder / "data.npz").stat().st_size / 2**20, 1),
                 "parquet_mb": round((folder / "data.parquet").stat().st_size / 2**20, 1)}
    report = {"rows": args.rows, "steps": 100, "features": 16, "runs": args.runs, **sizes, "csv_outputs_equal": same_csv,
              "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.rows} x 100 x 16 ({sizes['npz_mb']} MB .npz, {sizes['parquet_mb']} MB Parquet); CSV outputs equal: {same_csv}")
    print("| command | seconds | peak MB |\n|---|---|---|")
    for name, r in results.items():
        s, m = r["seconds"], r["peak_mb"]
        spread = lambda v: f"{statistics.median(v):.2f}" + (f" ({min(v):.2f}-{max(v):.2f})" if len(v) > 1 else "")  # noqa: E731
        print(f"| {name} | {spread(s)} | {spread(m)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
