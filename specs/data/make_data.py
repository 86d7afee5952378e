"""Generate the small synthetic data files the specs in `specs/` train on.

Run `python specs/data/make_data.py` to rewrite them; every file comes out the same
(fixed seeds), and each stays well under 1 MB. One function per spec; each task is
simple enough to learn in about a minute on two CPU cores, and hard enough that the
model must use the sequence (not one step of it) to do well.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def seed_binary(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """10 steps of one noisy feature; label 1 when the sequence's sum is above zero."""
    x = rng.normal(0.0, 1.0, size=(n, 10, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.float32)
    return {"x": x, "y": y, "classes": np.array(["not above zero", "above zero"])}


def lstm_classifier(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """40 steps x 3 channels of one waveform kind (sine, square, sawtooth, noise burst)
    with random frequency, phase, amplitude and noise; the channels are shifted copies."""
    t = np.arange(40, dtype=np.float64)
    y = rng.integers(0, 4, size=n)
    x = np.empty((n, 40, 3), np.float32)
    for i, kind in enumerate(y):
        freq = rng.uniform(1.5, 4.0) / 40
        amp = rng.uniform(0.5, 1.5)
        for c in range(3):
            phase = rng.uniform(0, 1) + 0.15 * c
            cycle = (freq * t + phase) % 1.0
            if kind == 0:
                wave = np.sin(2 * np.pi * cycle)
            elif kind == 1:
                wave = np.where(cycle < 0.5, 1.0, -1.0)
            elif kind == 2:
                wave = 2 * cycle - 1
            else:
                wave = np.zeros(40)
                start = rng.integers(0, 30)
                wave[start : start + 10] = rng.normal(0, 1.2, size=len(wave[start : start + 10]))
            x[i, :, c] = amp * wave + rng.normal(0, 0.15, size=40)
    return {"x": x, "y": y.astype(np.int64), "classes": np.array(["sine", "square", "sawtooth", "noise burst"])}


def gru_stacked_bidir(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Token ids 1..19, 6 to 30 of them, padded with 0: a mirror (palindrome), a sorted
    run, or random ids (class 0, 1, 2)."""
    steps = 30
    x = np.zeros((n, steps), np.int64)
    lengths = rng.integers(6, steps + 1, size=n)
    y = rng.integers(0, 3, size=n)
    for i, (length, kind) in enumerate(zip(lengths, y)):
        if kind == 0:
            half = rng.integers(1, 20, size=(length + 1) // 2)
            ids = np.concatenate([half, half[: length // 2][::-1]])
        elif kind == 1:
            ids = np.sort(rng.integers(1, 20, size=length))
        else:
            ids = rng.integers(1, 20, size=length)
        x[i, :length] = ids
    return {"x": x, "y": y.astype(np.int64), "lengths": lengths.astype(np.int64),
            "classes": np.array(["mirror", "sorted", "random"])}


def text_lstm(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Review-like token ids (vocabulary 200, 0 = padding) of 10 to 40 words: ids 1-15
    are positive words, 16-30 negative ones, the rest neutral. Label 1 when positive
    words outnumber negative ones (ties are not drawn)."""
    steps = 40
    x = np.zeros((n, steps), np.int64)
    y = np.zeros(n, np.float32)
    for i in range(n):
        while True:
            length = rng.integers(10, steps + 1)
            ids = rng.integers(31, 200, size=length)
            n_pos, n_neg = rng.integers(0, 6, size=2)
            if n_pos != n_neg:
                break
        slots = rng.choice(length, size=n_pos + n_neg, replace=False)
        ids[slots[:n_pos]] = rng.integers(1, 16, size=n_pos)
        ids[slots[n_pos:]] = rng.integers(16, 31, size=n_neg)
        x[i, :length] = ids
        y[i] = float(n_pos > n_neg)
    return {"x": x, "y": y, "classes": np.array(["negative", "positive"])}


def series(rng: np.random.Generator, rows: int, start: int) -> np.ndarray:
    """A noisy seasonal series: a 24-step and a 7-step cycle, a slow wave, noise."""
    t = np.arange(start, start + rows, dtype=np.float64)
    value = np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 7) + 0.3 * np.sin(2 * np.pi * t / 500)
    return value + rng.normal(0, 0.1, size=rows)


def write_csv(path: Path, values: np.ndarray) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "value"])
        for i, v in enumerate(values):
            writer.writerow([i, f"{v:.5f}"])


def main() -> None:
    rng = np.random.default_rng(20240601)
    for name, make, n_train, n_val in (
        ("seed_binary", seed_binary, 2000, 500),
        ("lstm_classifier", lstm_classifier, 1200, 300),
        ("gru_stacked_bidir", gru_stacked_bidir, 3000, 0),
        ("text_lstm", text_lstm, 3000, 0),
    ):
        np.savez_compressed(HERE / f"{name}_train.npz", **make(rng, n_train))
        if n_val:
            np.savez_compressed(HERE / f"{name}_val.npz", **make(rng, n_val))
    write_csv(HERE / "series_train.csv", series(rng, 1600, 0))
    write_csv(HERE / "series_val.csv", series(rng, 400, 1600))
    for path in sorted(HERE.iterdir()):
        if path.suffix in (".npz", ".csv"):
            print(f"{path.name}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
