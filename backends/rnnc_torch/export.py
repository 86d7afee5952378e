"""The torch backend's deployment artifact: the spec's model as a `torch.export` program (`.pt2`).

`export(model, weights, path)` builds the eval-mode `SpecModule` with the weights (or,
without them, the same freshly initialised weights that `rnnc compile --backend onnx`
draws: numpy, seeded by `training.seed`), traces it with `torch.export` and writes it
with `torch.export.save`, atomically. Loading needs torch alone:
`torch.export.load(path).module()(x, lengths)`. The inputs are the ONNX graph's: `x`,
and `lengths` exactly when the model is variable-length (a null time axis or
`mask_zero`), then required, since an exported program's signature is fixed. The batch
axis is dynamic; so is the time axis where the spec's is null (recurrent layers trace
as a `scan` over time, export_loop.py), from `min_steps` up; a spec's fixed timesteps
stay fixed. The output is the spec's (after a final sigmoid or softmax, never logits).
The program itself checks that lengths lie in `[0, time]` and token ids in the
vocabulary. `rnnc.json` in the archive (`extra_files`) describes the inputs and output
and carries the class names and raw-text vocabulary, under the ONNX metadata's keys
(the core's `rnnc.metadata`). The export section's `streaming` and `quantize` are ONNX
features and are refused (`export_problems`, the backend's `check`). See docs/deploy.md.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnc import ir
from rnnc.artifacts import atomic_write_bytes
from rnnc.errors import Problem, SpecError, UsageError
from rnnc.metadata import model_metadata
from rnnc.text import Vocab

from .model import SpecModule, build_module

METADATA_FILE = "rnnc.json"
OPTIONS = ("classes", "vocab")
MAX_STEPS = 1 << 16  # how far `min_steps` looks for a length the convolutions accept


class Program(nn.Module):
    """What is traced: `forward(x, lengths)` -> the model's output, with the input checks
    that `SpecModule` makes in Python made in the graph instead (`_assert_async`)."""

    def __init__(self, module: SpecModule):
        super().__init__()
        self.module = module
        first = module.model.nodes[0].layer if module.model.nodes else None
        self.vocab_size = first.vocab_size if isinstance(first, ir.Embedding) else None

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if self.vocab_size is not None:
            ids_ok = ((x >= 0) & (x < self.vocab_size)).all()
            torch._assert_async(ids_ok, f"token ids must lie in [0, {self.vocab_size - 1}] (vocab_size {self.vocab_size})")
        if lengths is not None:
            lengths_ok = ((lengths >= 0) & (lengths <= x.shape[1])).all()
            torch._assert_async(lengths_ok, "lengths must lie in [0, time] (the batch's timesteps)")
        return self.module(x, lengths, trusted=True)


def export(
    model: ir.Model,
    weights: Mapping[str, np.ndarray] | None,
    path: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    vocab: Vocab | None = None,
) -> torch.export.ExportedProgram:
    """Export `model` with `weights` (None: initial weights seeded by `training.seed`)
    and write it to `path` atomically, `classes` and `vocab` in its `rnnc.json`;
    returns the program. Nothing is written when the model or an option is refused."""
    metadata = program_metadata(model, classes, vocab)
    program = export_program(model, weights)
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={METADATA_FILE: json.dumps(metadata, indent=1)})
    atomic_write_bytes(path, buffer.getvalue())
    return program


def export_program(model: ir.Model, weights: Mapping[str, np.ndarray] | None = None) -> torch.export.ExportedProgram:
    """The traced program (see the module docstring), not written anywhere."""
    problems = export_problems(model)
    if problems:
        raise SpecError(problems)
    try:
        from torch._higher_order_ops.scan import scan_op  # noqa: F401  (export_loop's time loop)
    except ImportError:
        raise UsageError(
            f"torch {torch.__version__} has no scan operator, which the .pt2 export needs for a dynamic time axis "
            "(torch 2.13 has it); use --backend onnx"
        ) from None
    if weights is None:
        from rnnc.initial import initial_weights  # numpy, the same draws as the ONNX artifact's

        weights = initial_weights(model)
    module = build_module(model)
    module.load_ir_state(weights)
    for param in module.parameters():
        param.requires_grad_(False)  # a deployment runs without autograd bookkeeping
    program = Program(module.eval())
    batch = torch.export.Dim("batch", min=1)
    steps = model.input.shape[0]
    sample_steps = steps if steps is not None else min_steps(model) + 16  # >= 2 and != batch: a generic sample
    x = _sample_input(model, 3, sample_steps)
    dims: dict[str, Any] = {"x": {0: batch}}
    if steps is None:
        dims["x"][1] = torch.export.Dim("time", min=min_steps(model))
    if not model.variable_length:
        return torch.export.export(program, (x,), dynamic_shapes=dims)
    lengths = torch.tensor([sample_steps, max(1, sample_steps // 2), 1])
    dims["lengths"] = {0: batch}
    return torch.export.export(program, (x, lengths), dynamic_shapes=dims)


def export_problems(model: ir.Model) -> list[Problem]:
    """Settings of the spec's `export` section that a `.pt2` cannot honour: refused, so
    no artifact silently lacks what the spec asked for."""
    origin = model.name or "<spec>"
    problems = []
    if model.graph is not None:
        # torch.export of a graph with several named inputs and outputs needs its own
        # calling convention and a loader for it; the ONNX graph is the deployment form
        problems.append(Problem(
            origin, None, None, "rnnc",
            "a graph (spec version 2) exports to ONNX only, for now: use --backend onnx "
            "(rnnc train writes model.onnx as well)", ("rnnc",),
        ))
        return problems
    if model.export.streaming:
        problems.append(Problem(
            origin, None, None, "export.streaming",
            "true is for the ONNX graph (state carried between chunks); the torch backend's .pt2 takes whole "
            "sequences: use --backend onnx, or --set export.streaming=false", ("export", "streaming"),
        ))
    problems += [
        Problem(origin, None, None, f"layers[{node.index}] ({node.layer.kind})",
                "its cell (recurrent_activation, reset_after false or recurrent_dropout) runs as a Python time loop, "
                "which a .pt2 cannot trace over a dynamic time axis: use --backend onnx", ("layers", node.index))
        for node in model.nodes if isinstance(node.layer, ir.Recurrent) and node.layer.keras_cell
    ]
    if model.export.quantize != "none":
        problems.append(Problem(
            origin, None, None, "export.quantize",
            f"{model.export.quantize} is onnxruntime's quantisation; the torch backend's .pt2 is float32: "
            "use --backend onnx, or --set export.quantize=none", ("export", "quantize"),
        ))
    return problems


def min_steps(model: ir.Model) -> int:
    """The fewest input steps the program takes: 1, unless a convolution shortens the
    time axis (a stride, or `valid` with a kernel wider than 1), whose output must keep
    at least 2 steps. A time size that is a function of the input's (`ceil(T / 2)`)
    could be 1 only where torch's tracer assumed it is not (its contiguity and
    broadcasting checks specialise sizes of 1), so shorter batches are refused by the
    program; padding them to this length with `lengths` gives the same outputs."""
    convs = [node.layer for node in model.nodes if isinstance(node.layer, ir.Conv1D)]
    for steps in range(1, MAX_STEPS):
        length = steps
        for conv in convs:
            shortens = conv.stride > 1 or (conv.padding == "valid" and conv.kernel_size > 1)
            if conv.padding == "valid" and length < conv.kernel_size:
                break
            length = conv.out_length(length)
            if shortens and length < 2:
                break
        else:
            return steps
    return MAX_STEPS


def _sample_input(model: ir.Model, batch: int, steps: int) -> Tensor:
    generator = torch.Generator().manual_seed(0)
    if model.input.dtype == "int64":
        first = model.nodes[0].layer
        assert isinstance(first, ir.Embedding)
        return torch.randint(1, max(2, first.vocab_size), (batch, steps), generator=generator)
    features = model.input.shape[-1]
    assert isinstance(features, int)
    return torch.randn(batch, steps, features, generator=generator)


def program_metadata(model: ir.Model, classes: Sequence[str] | None, vocab: Vocab | None) -> dict[str, Any]:
    """`rnnc.json`: the ONNX metadata's keys (`rnnc.metadata`, which also checks the
    class names against the output), with JSON values, and the inputs and output."""
    onnx_props = model_metadata(model, classes, vocab)
    steps = model.input.shape[0]
    x_shape: list[int | str] = ["batch", "time" if steps is None else steps]
    if model.input.dtype == "float32":
        x_shape.append(model.input.shape[-1])  # type: ignore[arg-type]
    inputs: list[dict[str, Any]] = [{"name": "x", "dtype": model.input.dtype, "shape": x_shape}]
    if model.variable_length:
        inputs.append({"name": "lengths", "dtype": "int64", "shape": ["batch"]})
    meta: dict[str, Any] = {
        "format": "rnnc-pt2",
        "rnnc_version": onnx_props["rnnc_version"],
        "spec_name": model.name,
        "spec_hash": model.spec_hash,
        "inputs": inputs,
        "output": {"name": "y", "dtype": "float32", "shape": list(model.output_shape),
                   "meaning": onnx_props["output"].split(": ", 1)[1]},
        "timesteps": steps,
        "min_timesteps": min_steps(model) if steps is None else steps,
        "lengths": onnx_props["lengths"],
    }
    if model.description:
        meta["description"] = model.description
    for key in ("features", "vocab_size"):
        if key in onnx_props:
            meta[key] = int(onnx_props[key])
    if "classes" in onnx_props:
        meta["classes"] = json.loads(onnx_props["classes"])
    if vocab is not None:
        meta["vocab"] = json.loads(vocab.to_json())
    return meta


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The `rnnc.json` of a `.pt2` written by `export` (what a deployment reads, with
    `torch.export.load(path, extra_files={"rnnc.json": ""})`)."""
    files = {METADATA_FILE: ""}
    torch.export.load(path, extra_files=files)
    return json.loads(files[METADATA_FILE])  # type: ignore[no-any-return]
