"""Running an exported v2 graph with onnxruntime: named inputs in, named outputs out.

`GraphPredictor(path)` opens a graph model (metadata `spec_version: "2"`) and reads
its interface from the `graph` metadata entry (`rnnc.metadata.graph_interface`): each
input's dtype, shape, lengths rule and vocabulary size, each output's shape, loss,
meaning and class names. A model whose ONNX inputs and outputs are not what that entry
describes (plus `<input>.lengths` and streaming state) is refused at load.
`predict(inputs, lengths)` takes a dict of arrays keyed by input name, and lengths
keyed the same; it checks every input before onnxruntime sees it (missing and unknown
names, dtype, rank, feature sizes, timesteps, finite values, ids inside the
vocabulary, lengths inside the time axis, one number of samples), one line per
problem, fills the lengths the caller leaves out by the input's rule (`full`: every
step; `ids`: up to the last non-zero id) and runs `batch_size` rows at a time.
`stream()` feeds a streaming graph chunk by chunk, as `rnnc.runtime.Stream` does a chain.
A sequence of 0 real steps is allowed: the graph's contract defines it (a recurrent
layer's zero initial state, attention's zeros).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .errors import ArtifactError, DataError, UsageError, did_you_mean
from .runtime_inputs import (  # noqa: F401  (InputErrors re-exported: callers catch it here)
    GraphInput, GraphOutput, InputErrors, Unusable, checked_input, checked_lengths, read_input, read_output,
)
from .runtime_session import DEFAULT_BATCH_SIZE, MAX_STATE_SIZE, OpenedModel, is_graph, one_line_error

Arrays = dict[str, np.ndarray]


class GraphPredictor(OpenedModel):
    """An exported v2 graph, ready to run. `inputs` and `outputs` (name -> `GraphInput`,
    `GraphOutput`, in the spec's order) describe its interface; `states` (name -> size)
    the streaming state, if any; `metadata` every metadata entry."""

    def _read_interface(self) -> None:
        if not is_graph(self.metadata):
            raise ArtifactError(
                f"{self.path}: a spec version 1 model (one input x, one output y), not a graph; "
                "open it with rnnc.runtime.load or rnnc.runtime.Predictor"
            )
        if "graph" not in self.metadata:
            self._unusable("its metadata says spec_version 2 but has no 'graph' entry describing its inputs and outputs")
        graph = json.loads(self.metadata["graph"])
        if not isinstance(graph, dict) or not isinstance(graph.get("inputs"), list) or not isinstance(graph.get("outputs"), list):
            self._unusable("its metadata's graph entry is not {inputs: [...], outputs: [...]}")
        self.inputs: dict[str, GraphInput] = {}
        self.outputs: dict[str, GraphOutput] = {}
        try:
            for entry in graph["inputs"]:
                inp = read_input(entry)
                self.inputs[inp.name] = inp
            for entry in graph["outputs"]:
                out = read_output(entry, self.inputs)
                self.outputs[out.name] = out
        except Unusable as why:
            self._unusable(str(why))
        if not self.inputs or not self.outputs:
            self._unusable("its metadata's graph names no inputs or no outputs")
        self._match_the_graph()

    def _match_the_graph(self) -> None:
        """The ONNX graph's inputs and outputs must be the ones the metadata describes."""
        given = {i.name: i for i in self.session.get_inputs()}
        self.states: dict[str, int] = {n: i.shape[-1] for n, i in given.items() if n.startswith("state.")}
        expected = [*self.inputs, *(f"{n}.lengths" for n, i in self.inputs.items() if i.takes_lengths), *self.states]
        if sorted(given) != sorted(expected):
            self._unusable(f"its graph takes inputs {sorted(given)}, its metadata describes {sorted(expected)}")
        for name, inp in self.inputs.items():
            tensor = given[name]
            wanted = "tensor(int64)" if inp.token_ids else "tensor(float)"
            if tensor.type != wanted or len(tensor.shape) != inp.rank or (
                    inp.features is not None and isinstance(tensor.shape[-1], int) and tensor.shape[-1] != inp.features):
                self._unusable(f"its input {name} is {tensor.type} {tensor.shape}, its metadata says {inp.layout()}")
        produced = [o.name for o in self.session.get_outputs()]
        self.state_outputs = [f"{n}.next" for n in self.states]
        if produced[: len(self.outputs)] != list(self.outputs) or sorted(produced[len(self.outputs):]) != sorted(self.state_outputs):
            self._unusable(f"its graph gives outputs {produced}, its metadata describes {[*self.outputs, *self.state_outputs]}")
        if bad := [n for n, size in self.states.items() if not (isinstance(size, int) and 1 <= size <= MAX_STATE_SIZE)]:
            self._unusable(f"its state input {bad[0]} has a size outside [1, {MAX_STATE_SIZE:,}]")

    # --- checking input -------------------------------------------------------------

    def checked(self, inputs: Mapping[str, Any], lengths: Mapping[str, Any] | None = None, *,
                whole: bool = True, start: int = 0) -> tuple[Arrays, Arrays]:
        """`(inputs, lengths)` as the graph takes them, lengths filled in by rule for every
        input that takes them; else an `InputErrors` with one line per problem. `whole=False`
        (stream chunks) allows any number of steps; `start` is the first row's number in
        messages (a batch of a larger set)."""
        lengths = self._named(inputs, lengths)
        problems: list[str] = []
        arrays: Arrays = {}
        for name, inp in self.inputs.items():
            try:
                arrays[name] = checked_input(inp, inputs[name], whole, start)
            except DataError as err:
                problems.append(str(err))
        if problems:
            raise InputErrors(problems)
        rows = {name: len(a) for name, a in arrays.items()}
        if len(set(rows.values())) > 1:
            raise DataError("the inputs hold different numbers of samples: " + ", ".join(f"{n} {r}" for n, r in rows.items()))
        fed: Arrays = {}
        for name, inp in self.inputs.items():
            if inp.takes_lengths:
                try:
                    fed[name] = checked_lengths(inp, arrays[name], lengths.get(name), lowest=0, whole=whole, start=start)
                except DataError as err:
                    problems.append(str(err))
        if problems:
            raise InputErrors(problems)
        return arrays, fed

    def _named(self, inputs: Mapping[str, Any], lengths: Mapping[str, Any] | None) -> Mapping[str, Any]:
        """`lengths` (or {}), once the names of both are the model's; one line per stranger."""
        names = ", ".join(self.inputs)
        if not isinstance(inputs, Mapping):
            raise DataError(f"the model takes named inputs, a dict of arrays keyed {names}; got {type(inputs).__name__}")
        if lengths is None:
            lengths = {}
        if not isinstance(lengths, Mapping):
            raise DataError(f"lengths are a dict of arrays keyed by input name; got {type(lengths).__name__}")
        problems = [f"unknown input '{n}'{did_you_mean(str(n), self.inputs)}; the model takes: {names}"
                    for n in inputs if n not in self.inputs]
        problems += [f"missing input '{n}' ({inp.layout()})" for n, inp in self.inputs.items() if n not in inputs]
        with_lengths = [n for n, inp in self.inputs.items() if inp.takes_lengths]
        for n in lengths:
            if n not in self.inputs:
                problems.append(f"lengths of an unknown input '{n}'{did_you_mean(str(n), with_lengths)}; "
                                f"inputs with lengths: {', '.join(with_lengths) or 'none'}")
            elif not self.inputs[n].takes_lengths:
                problems.append(f"lengths given for input '{n}', which takes none "
                                f"(it is {'not a sequence' if not self.inputs[n].sequence else 'fixed-length'}; "
                                f"inputs with lengths: {', '.join(with_lengths) or 'none'})")
        if problems:
            raise InputErrors(problems)
        return lengths

    # --- running --------------------------------------------------------------------

    def run(self, inputs: Mapping[str, Any], lengths: Mapping[str, Any] | None = None, *, start: int = 0) -> Arrays:
        """The outputs for one batch (zero initial state for streaming graphs)."""
        return self.run_with_lengths(inputs, lengths, start=start)[0]

    def run_with_lengths(self, inputs: Mapping[str, Any], lengths: Mapping[str, Any] | None = None, *,
                         start: int = 0) -> tuple[Arrays, Arrays]:
        """(outputs, the lengths the graph was fed, filled in where none were given)."""
        arrays, fed = self.checked(inputs, lengths, start=start)
        batch = self._batch(arrays)
        if batch == 0:
            return self._empty(arrays), fed
        states = {name: np.zeros((batch, size), np.float32) for name, size in self.states.items()}
        values = self._run(list(self.outputs), {**arrays, **_onnx_lengths(fed), **states}, batch)
        return self._checked_outputs(values, batch), fed

    def predict(self, inputs: Mapping[str, Any], lengths: Mapping[str, Any] | None = None,
                batch_size: int = DEFAULT_BATCH_SIZE) -> Arrays:
        """The outputs for every row of `inputs`, `batch_size` rows at a time (memory-
        mapped arrays are read one batch at a time)."""
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.outputs}
        for outputs, _ in self.batches(inputs, lengths, batch_size):
            for name, value in outputs.items():
                parts[name].append(value)
        return {name: np.concatenate(values) for name, values in parts.items()}

    def batches(self, inputs: Mapping[str, Any], lengths: Mapping[str, Any] | None = None,
                batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[tuple[Arrays, Arrays]]:
        """(outputs, lengths fed) of each batch of `batch_size` rows, in order; at least one
        (empty) batch for inputs of no rows."""
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        lengths = self._named(inputs, lengths)
        count = self._count(inputs)
        given = {n: np.asarray(v) for n, v in lengths.items()}
        for begin in range(0, max(count, 1), batch_size):
            rows = slice(begin, begin + batch_size)
            cut = {n: v[rows] if v.ndim else v for n, v in given.items()}  # a scalar is refused whole, by its shape
            yield self.run_with_lengths({n: v[rows] for n, v in inputs.items()}, cut,
                                        start=begin)

    def _count(self, inputs: Mapping[str, Any]) -> int:
        """The rows every input holds, with each one's dtype and shape checked from its
        header alone (a memory-mapped array stays on disk)."""
        rows, problems = {}, []
        for name, inp in self.inputs.items():
            value = inputs[name]
            x = value if isinstance(value, np.ndarray) else np.asarray(value)
            if problem := inp.problem(x.shape, x.dtype):
                problems.append(problem)
            else:
                rows[name] = len(x)
        if problems:
            raise InputErrors(problems)
        if len(set(rows.values())) > 1:
            raise DataError("the inputs hold different numbers of samples: " + ", ".join(f"{n} {r}" for n, r in rows.items()))
        return next(iter(rows.values()))

    def _batch(self, arrays: Arrays) -> int:
        return len(next(iter(arrays.values())))

    def _empty(self, arrays: Arrays) -> Arrays:
        """No rows in, none out: each output's row shape, `time` as the inputs' longest
        (an axis a convolution changes: 0 steps)."""
        steps = max((a.shape[1] for n, a in arrays.items() if self.inputs[n].sequence), default=0)
        return {name: np.zeros((0, *(d if isinstance(d, int) else steps if d == "time" else 0 for d in out.shape[1:])), np.float32)
                for name, out in self.outputs.items()}

    def _run(self, names: list[str], feed: Arrays, batch: int) -> list[np.ndarray]:
        try:
            return self.session_for(batch).run(names, feed)
        except Exception as err:  # e.g. fewer steps than a valid convolution's kernel
            raise DataError(f"onnxruntime could not run the model on this input: {one_line_error(err)}") from None

    def _checked_outputs(self, values: list[Any], batch: int) -> Arrays:
        """Each output as declared, one row per sample: a graph that is not rnnc's must
        not pass for predictions."""
        outputs = {}
        for (name, out), value in zip(self.outputs.items(), values, strict=True):
            declared = out.shape
            if (not isinstance(value, np.ndarray) or value.ndim != len(declared) or value.shape[0] != batch
                    or any(isinstance(d, int) and d != n for d, n in zip(declared[1:], value.shape[1:], strict=True))):
                shape = list(value.shape) if isinstance(value, np.ndarray) else type(value).__name__
                self._unusable(f"for a batch of {batch} samples it gave {name} of shape {shape}, declared {list(declared)}")
            outputs[name] = value
        return outputs

    def stream(self) -> GraphStream:
        """A stream over a streaming graph: feed it chunks, it carries the state."""
        if not self.states:
            raise UsageError(
                f"{self.path}: the model was exported without streaming state; "
                "export it with export.streaming: true (e.g. --set export.streaming=true)"
            )
        return GraphStream(self)


class GraphStream:
    """Feeds one batch of long sequences chunk by chunk: `step(inputs)` takes every
    input (a chunk of each sequence input, the static ones again) and returns the
    chunk's outputs, keeping every recurrent layer's state for the next call; `reset()`
    starts over. A chunk's lengths count its real steps; a sequence with none in a
    chunk (length 0) keeps its state."""

    def __init__(self, predictor: GraphPredictor):
        self.predictor = predictor
        self.state: Arrays | None = None

    def reset(self) -> None:
        self.state = None

    def step(self, inputs: Mapping[str, Any], lengths: Mapping[str, Any] | None = None) -> Arrays:
        p = self.predictor
        arrays, fed = p.checked(inputs, lengths, whole=False)
        batch = p._batch(arrays)
        if self.state is None:
            self.state = {name: np.zeros((batch, size), np.float32) for name, size in p.states.items()}
        elif (kept := len(next(iter(self.state.values())))) != batch:
            raise DataError(f"a stream keeps one batch: this chunk has {batch} sequences, the stream {kept}")
        values = p._run([*p.outputs, *p.state_outputs], {**arrays, **_onnx_lengths(fed), **self.state}, batch)
        self.state = dict(zip(p.states, values[len(p.outputs):], strict=True))
        return p._checked_outputs(values[: len(p.outputs)], batch)


def _onnx_lengths(fed: Arrays) -> Arrays:
    return {f"{name}.lengths": value for name, value in fed.items()}
