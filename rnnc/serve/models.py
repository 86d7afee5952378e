"""One model that `rnnc serve` serves: its name, its predictor, its interface as the
Open Inference Protocol describes tensors, and a synchronous `run` on one batch.

`ServedModel.open(path)` takes a `model.onnx` or a run directory (its `model.onnx`),
loads it with `rnnc.runtime.load` (a `Predictor` for a v1 chain, `x` and `lengths` in,
`y` out; a `GraphPredictor` for a v2 graph, named inputs and `<input>.lengths`) and
names it after the spec (`spec_name` in the metadata), else the file's stem. `inputs`
and `outputs` are `Tensor`s (name, datatype `FP32`/`INT64`, shape with -1 for a
dynamic axis); lengths are listed as optional inputs. `run(feeds)` takes arrays keyed
by ONNX input names and returns arrays keyed by output names; bad feeds raise
`DataError` (one line per problem), as `rnnc.runtime` checks them.

`steps_of` says, from the ONNX graph's own axis names, which input's steps each
per-step output has (`time` or `<input>.time`), so that a batcher can cut a padded
output back to a request's steps; `pads` is false when an output's steps follow no
input one for one (a convolution that changes them: `steps`, `<layer>.steps`), and
requests of different lengths then never share a run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnc import runtime
from rnnc.errors import DataError, UsageError
from rnnc.run_dir import MODEL

from .tensors import BadRequest


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One input or output as the Open Inference Protocol's metadata gives it."""

    name: str
    datatype: str  # FP32 | INT64
    shape: list[int]
    optional: bool = False

    def plain(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


def _dims(shape: Any) -> list[int]:
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def _time_axes(outputs: Any, sequence_inputs: list[str]) -> tuple[dict[str, str], bool]:
    """(per-step output -> the input whose steps it has, whether padding along time
    leaves each request's own steps as they were), read from the outputs' axis names."""
    follows = {"time": sequence_inputs[0]} if len(sequence_inputs) == 1 else {}
    follows.update({f"{name}.time": name for name in sequence_inputs})
    steps_of, pads = {}, True
    for out in outputs:
        axis = out.shape[1] if len(out.shape) >= 3 else None
        if isinstance(axis, str):
            if axis in follows:
                steps_of[out.name] = follows[axis]
            else:
                pads = False
    return steps_of, pads


class ServedModel:
    """A loaded model: `name`, `predictor`, `inputs` and `outputs` (`Tensor`s),
    `sequence_inputs` (inputs with a time axis: padded along it when batched),
    `lengths_of` (sequence input -> its lengths input, where the model takes them)."""

    def __init__(self, predictor: runtime.Predictor | runtime.GraphPredictor, name: str):
        self.predictor, self.name = predictor, name
        self.graph = isinstance(predictor, runtime.GraphPredictor)
        self.inputs: list[Tensor] = []
        self.lengths_of: dict[str, str] = {}
        self.sequence_inputs: list[str] = []
        if self.graph:
            for inp in predictor.inputs.values():
                self.inputs.append(Tensor(inp.name, "INT64" if inp.token_ids else "FP32", [-1, *_dims(inp.shape)]))
                if inp.sequence:
                    self.sequence_inputs.append(inp.name)
                if inp.takes_lengths:
                    self.lengths_of[inp.name] = f"{inp.name}.lengths"
            self.outputs = [Tensor(o.name, "FP32", _dims(o.shape)) for o in predictor.outputs.values()]
        else:
            steps = predictor.timesteps or -1
            shape = [-1, steps] if predictor.token_ids else [-1, steps, predictor.features or -1]
            self.inputs.append(Tensor("x", "INT64" if predictor.token_ids else "FP32", shape))
            self.sequence_inputs.append("x")
            if predictor.takes_lengths:
                self.lengths_of["x"] = "lengths"
            self.outputs = [Tensor("y", "FP32", _dims(predictor.output_shape))]
        self.inputs += [Tensor(name, "INT64", [-1], optional=True) for name in self.lengths_of.values()]
        self.steps_of, self.pads = _time_axes(predictor.session.get_outputs(), self.sequence_inputs)

    @classmethod
    def open(cls, path: str | os.PathLike[str], threads: int | None = None) -> ServedModel:
        """The model at `path` (a `model.onnx` or a run directory holding one)."""
        path = Path(path)
        if path.is_dir():
            if not (path / MODEL).is_file():
                raise UsageError(f"{path}: a directory without {MODEL}; give a run directory or a .onnx file")
            path = path / MODEL
        predictor = runtime.load(path, threads=threads)
        return cls(predictor, predictor.metadata.get("spec_name") or path.stem)

    def input(self, name: str) -> Tensor | None:
        return next((t for t in self.inputs if t.name == name), None)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs for one batch of `feeds` (keyed by ONNX input names)."""
        known = {t.name for t in self.inputs}
        if unknown := [n for n in feeds if n not in known]:
            raise DataError(f"unknown input '{unknown[0]}'; the model takes: {', '.join(sorted(known))}")
        if self.graph:
            inputs = {n: v for n, v in feeds.items() if n in self.predictor.inputs}
            lengths = {n: feeds[ln] for n, ln in self.lengths_of.items() if ln in feeds}
            return dict(self.predictor.run(inputs, lengths))
        if "x" not in feeds:
            raise DataError(f"missing input 'x' ({self.inputs[0].datatype} {self.inputs[0].shape})")
        return {"y": self.predictor.run(feeds["x"], feeds.get("lengths"))}


def model_named(models: Sequence[ServedModel], name: str | None, action: str) -> ServedModel:
    """The served model `name` (None: the only one), else a 404 that names the served
    ones; `action` is the route's last part (`predict`, `sessions`, ...) for the hint."""
    if name is None:
        if len(models) != 1:
            served = ", ".join(m.name for m in models)
            raise BadRequest(f"several models are served ({served}); POST to /v1/models/NAME/{action}", 404)
        return models[0]
    found = next((m for m in models if m.name == name), None)
    if found is None:
        raise BadRequest(f"unknown model '{name}'; served: {', '.join(m.name for m in models)}", 404)
    return found
