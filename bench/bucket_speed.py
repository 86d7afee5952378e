"""Padding to each batch's longest sequence, and bucketing by length: samples/s on ragged text.

A text workload with the ragged lengths of real text: token ids padded to 400 steps,
lengths log-normal (median ~60 tokens, 5-400), embedding(32, mask_zero) + LSTM(48) +
a sigmoid, batch 32, one epoch of `--rows` rows in memory. Three ways, interleaved
within one process (one epoch each per round, `--rounds` rounds): every batch at the
full padded width (the trainer's cut turned off), each batch cut to its longest
sequence (the default), and `training.bucket_by_length: true`. Reports samples/s
(median, min-max), the steps trained per row, and the final loss of each. Not a test.
`--workload tagger` labels every token instead (LSTM(48) with return_sequences, a
softmax over 8 tags per step, its targets and mask cut with the batch), into
results/bucket_speed_tagger.json.

    .venv/bin/python bench/bucket_speed.py [--rows 3000] [--rounds 3] [--workload text|tagger]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "backends")]
RESULTS = HERE / "results" / "bucket_speed.json"
STEPS, VOCAB, BATCH = 400, 1000, 32
SPEC = {
    "rnnc": 1, "name": "bucket-speed", "input": {"shape": [None], "dtype": "int64"},
    "layers": [{"type": "embedding", "vocab_size": VOCAB, "dim": 32, "mask_zero": True},
               {"type": "lstm", "units": 48}, {"type": "dense", "units": 1, "activation": "sigmoid"}],
    "loss": "binary_crossentropy", "optimizer": {"type": "adam", "lr": 0.003},
    "training": {"epochs": 1, "batch_size": BATCH, "seed": 0},
}


TAGS = 8
TAGGER = {**SPEC, "name": "bucket-speed-tagger",
          "layers": [SPEC["layers"][0], {"type": "lstm", "units": 48, "return_sequences": True},
                     {"type": "dense", "units": TAGS, "activation": "softmax"}],
          "loss": "sparse_categorical_crossentropy"}


def ragged_text(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(60), 0.8, rows)), 5, STEPS).astype(np.int64)
    ids = rng.integers(1, VOCAB, (rows, STEPS))
    ids[np.arange(STEPS)[None, :] >= lengths[:, None]] = 0
    y = (ids[:, :5] % 2).sum(1) > 2
    return ids, y.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workload", choices=("text", "tagger"), default="text")
    args = parser.parse_args()
    tagger = args.workload == "tagger"
    import torch

    import rnnc_torch.trainer as trainer_module
    from rnnc.data import from_arrays
    from rnnc.spec import model_from_mapping
    from rnnc_torch.batching import batch_longest, bucketed
    from rnnc_torch.trainer import Trainer, epoch_seed

    torch.set_num_threads(2)
    ids, y = ragged_text(args.rows)
    if tagger:  # each token's tag: its id's residue, a per-step label the LSTM can learn
        y = np.where(ids > 0, ids % TAGS, 0)
    model = model_from_mapping(TAGGER if tagger else SPEC, "bucket-speed", HERE)
    data = from_arrays(model, ids, y, origin="ragged text")
    lengths = torch.from_numpy(data.lengths)
    ways = {"full width": {}, "cut to the batch's longest": {}, "bucket_by_length": {"bucket_by_length": True}}
    cut = trainer_module.cuts_to_longest
    speeds: dict[str, list[float]] = {way: [] for way in ways}
    losses: dict[str, float] = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for way, settings in ways.items():
            trainer = Trainer(model)
            trainer.settings = dataclasses.replace(trainer.settings, **settings)
            trainer_module.cuts_to_longest = (lambda m: False) if way == "full width" else cut
            on_device = trainer.on_device(data)
            started = time.perf_counter()
            logs = trainer.train_epoch(1, on_device, 0.003)
            speeds[way].append(args.rows / (time.perf_counter() - started))
            losses[way] = round(logs["loss"], 5)
            loads.append(os.getloadavg()[0])
    trainer_module.cuts_to_longest = cut
    order = torch.randperm(args.rows, generator=torch.Generator().manual_seed(epoch_seed(0, 1)))
    steps = {"full width": STEPS * args.rows,
             "cut to the batch's longest": BATCH * sum(batch_longest(lengths[order], BATCH) or ()),
             "bucket_by_length": BATCH * sum(batch_longest(lengths[bucketed(order, lengths, BATCH, torch.Generator().manual_seed(epoch_seed(0, 1)))], BATCH) or ())}
    result = {
        "workload": f"embedding(32, mask_zero) + LSTM(48){' + a softmax over 8 tags per token' if tagger else ''} on token ids padded to {STEPS}, lengths log-normal "
                    f"(median {int(np.median(data.lengths))}, {int(data.lengths.min())}-{int(data.lengths.max())}), batch {BATCH}",
        "rows": args.rows, "rounds": args.rounds, "cpu_threads": 2,
        "load_average": {"min": round(min(loads), 2), "max": round(max(loads), 2)},
        "mean_length": round(float(data.lengths.mean()), 1),
        "ways": {way: {"samples_per_s": {"median": round(statistics.median(v), 1), "min": round(min(v), 1), "max": round(max(v), 1)},
                       "steps_per_row": round(steps[way] / args.rows, 1), "loss": losses[way]} for way, v in speeds.items()},
    }
    out = RESULTS.with_name("bucket_speed_tagger.json") if tagger else RESULTS
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
