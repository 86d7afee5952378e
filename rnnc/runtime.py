"""Running an exported rnnc model with onnxruntime: no torch, and no onnx either.

`Predictor(path)` opens a `model.onnx` written by the ONNX backend, reads what it
needs from the graph's inputs and its metadata (timesteps, features, vocabulary,
lengths rule, states, class names, a raw-text model's tokenizer), refuses a model
whose metadata or interface does not fit (sizes out of range, class names that are
not one per output unit, inputs it would not know how to feed), checks every input
before onnxruntime sees it (one clear `DataError`, never a stack trace from C++),
runs it in batches and checks that each gives one output row per sequence;
`predict_texts` tokenises raw text first.
Lengths the caller leaves out are filled as the torch backend would: full length, or,
for an embedding with `mask_zero`, the position after each row's last non-zero id.
`Predictor.stream()` feeds a streaming model chunk by chunk, carrying the recurrent
state between calls. A v2 graph (named inputs and outputs) is run by
`rnnc.runtime_graph.GraphPredictor`, re-exported here; `load(path)` opens either kind,
as the model's metadata says. The session handling both share is
`rnnc.runtime_session`'s. See docs/deploy.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping

import numpy as np

from . import text
from .errors import ArtifactError, DataError, UsageError
from .runtime_graph import GraphPredictor, GraphStream
from .runtime_session import (  # noqa: F401  (re-exported: rnnc.runtime is where callers find them)
    DEFAULT_BATCH_SIZE, DEVICES, MAX_STATE_SIZE, MAX_TIMESTEPS, MAX_VOCAB_SIZE, OpenedModel, default_threads,
    int_or_none, is_graph, lengths_from_ids, max_threads, one_line_error, providers_for, session_options, threads_for,
)

__all__ = ["GraphPredictor", "GraphStream", "Predictor", "Stream", "load"]


def load(path: str | os.PathLike[str], device: str = "cpu", threads: int | None = None) -> Predictor | GraphPredictor:
    """The model at `path`, ready to run: a `GraphPredictor` for a v2 graph (named inputs
    and outputs), else a `Predictor` (`x` in, `y` out)."""
    opened = OpenedModel(path, device, threads)
    kind: type[Predictor | GraphPredictor] = GraphPredictor if is_graph(opened.metadata) else Predictor
    model = kind.__new__(kind)
    model.__dict__.update(opened.__dict__)  # the sessions opened already are reused, not opened again
    model._interface()
    return model


class Predictor(OpenedModel):
    """An exported rnnc model, ready to run. Attributes describe its interface:
    `token_ids` (int64 ids in, else float32 features), `features`, `timesteps` (None
    when variable), `takes_lengths`, `states` (name -> feature size, streaming models only),
    `classes` (or None), `metadata` (every metadata entry)."""

    def _read_interface(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        if is_graph(self.metadata):
            raise ArtifactError(
                f"{self.path}: a graph model (spec version 2) with named inputs ({', '.join(sorted(inputs))}); "
                "open it with rnnc.runtime.load or rnnc.runtime.GraphPredictor"
            )
        outputs = [o.name for o in self.session.get_outputs()]
        if "x" not in inputs or not outputs or outputs[0] != "y":
            raise ArtifactError(
                f"{self.path}: not an rnnc model (inputs {sorted(inputs)}, outputs {outputs}; rnnc models take 'x' and give 'y')"
            )
        x, y = inputs["x"], self.session.get_outputs()[0]
        self.token_ids = x.type == "tensor(int64)"
        if x.type not in ("tensor(float)", "tensor(int64)") or len(x.shape) != (2 if self.token_ids else 3):
            self._unusable(f"its input x is {x.type} {x.shape}; rnnc models take float32 [batch, time, features] or int64 ids [batch, time]")
        if not isinstance(y.shape, list) or len(y.shape) < 2:
            self._unusable(f"its output y has shape {y.shape}; rnnc models give [batch, ...]")
        self.output_shape: list[int | str] = y.shape
        self.sequence_output = len(y.shape) >= 3  # a time axis: its length is the input's
        self.features: int | None = None if self.token_ids else int_or_none(x.shape[-1])
        self.timesteps = self._size("timesteps", MAX_TIMESTEPS)
        if self.timesteps is not None and isinstance(x.shape[1], int) and x.shape[1] != self.timesteps:
            self._unusable(f"its metadata says timesteps {self.timesteps}, its input x has {x.shape[1]}")
        self.vocab_size = self._size("vocab_size", MAX_VOCAB_SIZE)
        self.takes_lengths = "lengths" in inputs
        self.lengths_from_ids = self.metadata.get("lengths") == "ids"
        self.states: dict[str, int] = {
            name: int(info.shape[-1]) for name, info in inputs.items() if name.startswith("state.")
        }
        self.state_outputs = [f"{name}.next" for name in self.states]
        fed = {"x", "lengths", *self.states}
        if extra := sorted(set(inputs) - fed):
            self._unusable(f"it takes inputs rnnc does not feed ({', '.join(extra)}); rnnc models take x, lengths and state.*")
        if bad := [n for n, size in self.states.items() if not 1 <= size <= MAX_STATE_SIZE or f"{n}.next" not in outputs]:
            self._unusable(f"its state input {bad[0]} has no {bad[0]}.next output or a size outside [1, {MAX_STATE_SIZE:,}]")
        self.classes: list[str] | None = self._classes()
        vocab = self.metadata.get(text.METADATA_KEY)
        self.vocab: text.Vocab | None = None if vocab is None else text.Vocab.from_json(vocab, self.path)

    def _classes(self) -> list[str] | None:
        if "classes" not in self.metadata:
            return None
        classes = json.loads(self.metadata["classes"])
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            self._unusable("its metadata's classes is not a list of names")
        units = self.output_shape[-1]
        expected = 2 if units == 1 else units  # one sigmoid unit: classes 0 and 1
        if isinstance(units, int) and len(classes) != expected:
            self._unusable(f"its metadata names {len(classes)} classes, its output y has {units} units")
        return classes

    # --- checking input -------------------------------------------------------------

    def checked(self, x: np.ndarray, lengths: np.ndarray | None = None, whole: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """`(x, lengths)` as the graph takes them, or a `DataError` saying what is wrong.
        `whole=False` (stream chunks) allows any number of steps and empty sequences."""
        if isinstance(x, Mapping):
            raise DataError(
                f"the model takes one input x (a spec version 1 chain), got named inputs ({', '.join(map(str, x))}); pass the array"
            )
        x = np.asarray(x)
        if self.token_ids:
            if x.dtype.kind not in "iu":
                raise DataError(f"the model takes integer token ids, got {x.dtype}")
            if x.ndim != 2:
                raise DataError(f"the model takes token ids [batch, time], got shape {list(x.shape)}")
            if self.vocab_size is not None and x.size and (x.min() < 0 or x.max() >= self.vocab_size):
                raise DataError(
                    f"token ids must lie in [0, {self.vocab_size - 1}] (vocab_size {self.vocab_size}), "
                    f"got ids from {x.min()} to {x.max()}"
                )
            x = np.ascontiguousarray(x, dtype=np.int64)
        else:
            if x.dtype.kind not in "fiu":
                raise DataError(f"the model takes numbers (float32), got {x.dtype}")
            if x.ndim != 3 or (self.features is not None and x.shape[2] != self.features):
                raise DataError(f"the model takes input [batch, time, {self.features or 'features'}], got shape {list(x.shape)}")
            with np.errstate(all="ignore"):  # a float64 past float32's range becomes inf, refused below
                x = np.ascontiguousarray(x, dtype=np.float32)
            if not np.isfinite(x).all():
                where = [int(i) for i in np.argwhere(~np.isfinite(x))[0]]
                raise DataError(f"x holds NaN, inf or values beyond float32's range (first at x{where}); NaN and inf are not data")
        steps = x.shape[1]
        if whole and self.timesteps is not None and steps != self.timesteps:
            raise DataError(f"the model takes {self.timesteps} timesteps per sequence, got {steps}")
        if steps == 0 and whole:
            raise DataError("the input has no timesteps")
        return x, self._checked_lengths(x, lengths, lowest=1 if whole else 0)

    def _checked_lengths(self, x: np.ndarray, lengths: np.ndarray | None, lowest: int) -> np.ndarray | None:
        batch, steps = x.shape[0], x.shape[1]
        if not self.takes_lengths:
            if lengths is not None:
                raise DataError("lengths given, but the model's input is fixed-length (it takes no lengths)")
            return None
        if lengths is None:
            if self.lengths_from_ids:
                return lengths_from_ids(x)
            return np.full(batch, steps, dtype=np.int64)
        lengths = np.asarray(lengths)
        if lengths.dtype.kind not in "iu" or lengths.shape != (batch,):
            raise DataError(f"lengths must be integers of shape [{batch}], got {lengths.dtype} {list(lengths.shape)}")
        if batch and (lengths.min() < lowest or lengths.max() > steps):
            raise DataError(
                f"lengths must lie in [{lowest}, {steps}] (the input's timesteps), got {lengths.min()} to {lengths.max()}"
            )
        return lengths.astype(np.int64)

    # --- running --------------------------------------------------------------------

    def run(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """The output for one batch (zero initial state for streaming models)."""
        x, lengths = self.checked(x, lengths)
        feed = self._feed(x, lengths, {name: np.zeros((x.shape[0], size), np.float32) for name, size in self.states.items()})
        return self._checked_output(self._run(["y"], feed)[0], x.shape[0])

    def _checked_output(self, y: object, batch: int) -> np.ndarray:
        """`y` if it is one row per sequence in the declared shape: a graph that is not
        rnnc's (6 rows out for 3 in) must not pass for predictions."""
        declared = self.output_shape
        if (not isinstance(y, np.ndarray) or y.ndim != len(declared) or y.shape[0] != batch
                or any(isinstance(d, int) and d != n for d, n in zip(declared[1:], y.shape[1:], strict=True))):
            shape = list(y.shape) if isinstance(y, np.ndarray) else type(y).__name__
            self._unusable(f"for a batch of {batch} sequences it gave y of shape {shape}, declared {declared}")
        return y  # type: ignore[return-value]

    def predict(self, x: np.ndarray, lengths: np.ndarray | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """The output for every sequence in `x`, run `batch_size` at a time (a memory-
        mapped `x` is read one batch at a time)."""
        parts = list(self.batches(x, lengths, batch_size))
        return np.concatenate(parts) if parts else np.zeros((0, *self.output_dims(x)), np.float32)

    def batches(self, x: np.ndarray, lengths: np.ndarray | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[np.ndarray]:
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        for start in range(0, len(x), batch_size):
            stop = start + batch_size
            yield self.run(x[start:stop], None if lengths is None else lengths[start:stop])

    def output_dims(self, x: np.ndarray) -> tuple[int, ...]:
        """The per-sequence output shape for input like `x` (for empty inputs)."""
        shape = self.session.get_outputs()[0].shape
        return tuple(d if isinstance(d, int) else np.shape(x)[1] for d in shape[1:])

    def encode_texts(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(ids, lengths) for raw `texts`, tokenised as the model's training data was."""
        if self.vocab is None:
            raise UsageError(f"{self.path}: the model was not trained on raw text (its metadata has no vocabulary)")
        ids, lengths = self.vocab.encode(texts, self.timesteps)
        return ids, lengths if self.takes_lengths else None

    def predict_texts(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """The output for each raw text (a blank text has no tokens: it is refused)."""
        if blank := [i for i, t in enumerate(texts) if not t.strip()]:
            raise DataError(f"text {blank[0]} is blank; every text needs at least one character")
        parts = [self.run(*self.encode_texts(texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.output_dims(np.zeros((0, 1)))), np.float32)

    def stream(self) -> Stream:
        """A stream over a streaming model: feed it chunks, it carries the state."""
        if not self.states:
            raise UsageError(
                f"{self.path}: the model was exported without streaming state; "
                "export it with export.streaming: true (e.g. --set export.streaming=true)"
            )
        return Stream(self)

    def _feed(self, x: np.ndarray, lengths: np.ndarray | None, states: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {"x": x, **states}
        if lengths is not None:
            feed["lengths"] = lengths
        return feed

    def _run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self.session_for(len(feed["x"])).run(names, feed)
        except Exception as err:  # e.g. fewer steps than a valid convolution's kernel
            raise DataError(f"onnxruntime could not run the model on this input: {one_line_error(err)}") from None


class Stream:
    """Feeds one batch of long sequences chunk by chunk: `step(chunk)` returns the
    chunk's outputs (per step for sequence models, else the output after the chunk's
    last step) and keeps every recurrent layer's state for the next call; `reset()`
    starts over. With lengths, a chunk's lengths count its real steps; a sequence with
    none (length 0) keeps its state."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.state: dict[str, np.ndarray] | None = None

    def reset(self) -> None:
        self.state = None

    def step(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        p = self.predictor
        x, lengths = p.checked(x, lengths, whole=False)
        batch = x.shape[0]
        if self.state is None:
            self.state = {name: np.zeros((batch, size), np.float32) for name, size in p.states.items()}
        elif next(iter(self.state.values())).shape[0] != batch:
            raise DataError(
                f"a stream keeps one batch: this chunk has {batch} sequences, the stream {next(iter(self.state.values())).shape[0]}"
            )
        y, *after = p._run(["y", *p.state_outputs], p._feed(x, lengths, self.state))
        self.state = dict(zip(p.states, after, strict=True))
        return p._checked_output(y, batch)
