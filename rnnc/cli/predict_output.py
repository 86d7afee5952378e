"""What `rnnc predict` writes: the model's outputs as `.npy` or as CSV rows.

`NpyWriter` keeps the raw array; `CsvWriter` writes one row per sequence; `LabelWriter`
names each raw text's predicted class. `class_probabilities` turns whatever the model
outputs (probabilities, log-probabilities, logits) into per-class probabilities.
"""

from __future__ import annotations

import csv
from typing import IO

import numpy as np

from rnnc.runtime import Predictor


class NpyWriter:
    """Writes a `.npy` of `count` rows batch by batch; the header needs the row shape,
    which the first batch gives."""

    def __init__(self, handle: IO[bytes], count: int):
        self.handle, self.count, self.started = handle, count, False

    def write(self, y: np.ndarray) -> None:
        y = np.ascontiguousarray(y, dtype=np.float32)
        if not self.started:
            header = {"descr": np.lib.format.dtype_to_descr(y.dtype), "fortran_order": False, "shape": (self.count, *y.shape[1:])}
            np.lib.format.write_array_header_2_0(self.handle, header)
            self.started = True
        self.handle.write(y.tobytes())


class CsvWriter:
    """One row per sequence, the output flattened (sequence outputs step after step)."""

    def __init__(self, handle: IO[str]):
        self.handle = handle

    def write(self, y: np.ndarray) -> None:
        np.savetxt(self.handle, y.reshape(len(y), -1), fmt="%.9g", delimiter=",")


class LabelWriter:
    """Raw-text predictions as CSV rows `text,label,probability` (the predicted class and
    its probability), or `text,value...` for a model without classes."""

    def __init__(self, handle: IO[str], texts: list[str], predictor: Predictor):
        self.writer = csv.writer(handle, lineterminator="\n")
        self.texts, self.done = texts, 0
        self.classes = predictor.classes
        self.meaning = predictor.metadata.get("output", "")

    def write(self, y: np.ndarray) -> None:
        texts = self.texts[self.done : self.done + len(y)]
        values = y.reshape(len(y), -1)
        if self.done == 0:  # the header: one value column per output unit
            names = ["value"] if values.shape[1] == 1 else [f"value_{i}" for i in range(values.shape[1])]
            self.writer.writerow(["text", "label", "probability"] if self.classes else ["text", *names])
        self.done += len(y)
        if not self.classes:
            for text, row in zip(texts, values, strict=True):
                self.writer.writerow([text, *(f"{v:.6g}" for v in row)])
            return
        probs = class_probabilities(values, self.meaning)
        best = probs.argmax(-1)
        for text, k, row in zip(texts, best, probs, strict=True):
            self.writer.writerow([text, self.classes[k], f"{row[k]:.4f}"])


def class_probabilities(y: np.ndarray, meaning: str) -> np.ndarray:
    """`[N, C]` class probabilities from the model's output `[N, U]`, whatever the metadata's
    `output` says it is (probabilities, log-probabilities or logits); one sigmoid unit
    becomes two columns (class 0, class 1)."""
    from rnnc.metrics import probabilities_from_logits

    y = y.astype(np.float64)
    if "log-probabilities" in meaning:
        y = np.exp(y)
    elif "logits" in meaning:
        y = probabilities_from_logits(y, multiclass=y.shape[-1] > 1)
    return np.concatenate([1.0 - y, y], axis=-1) if y.shape[-1] == 1 else y
