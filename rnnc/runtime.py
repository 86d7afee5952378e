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
state between calls. See docs/deploy.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import text
from .artifacts import check_model_checksum
from .errors import ArtifactError, DataError, UsageError

DEVICES = ("cpu", "cuda")
DEFAULT_BATCH_SIZE = 256
# Sizes a model's metadata may claim: each is allocated per batch (a text batch is padded
# to `timesteps`), so a damaged or hostile 1e10 must stop at load, not in numpy.
MAX_TIMESTEPS = 1 << 20
MAX_VOCAB_SIZE = 1 << 31
MAX_STATE_SIZE = 1 << 20

# onnxruntime logs warnings (and a banner on some builds) to stderr before any session
# exists; rnnc's own one-line errors are all a user of `rnnc predict` should see.
ort.set_default_logger_severity(3)


def max_threads() -> int:
    """More intra-op threads than this only slow a run down (3,000 took 52 s to start)
    or crash onnxruntime (100,000 segfaulted)."""
    return max(64, 4 * (os.cpu_count() or 1))


def default_threads() -> int:
    """Intra-op threads for batches of more than one sequence: the cores, at most 8
    (an RNN's steps are sequential; past that, threads only add synchronisation)."""
    return min(os.cpu_count() or 1, 8)


def threads_for(batch: int) -> int:
    """One sequence runs fastest on one thread: each step's work is too small to
    split (measured: bench/infer_latency.py --sweep); more sequences use the cores."""
    return 1 if batch <= 1 else default_threads()


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Every graph optimisation on, `threads` intra-op threads (default `default_threads()`)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads if threads is not None else default_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: shape-hint warnings are not the user's concern
    return options


def providers_for(device: str) -> list[str]:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            raise UsageError(
                "--device cuda needs onnxruntime-gpu, whose CUDAExecutionProvider this onnxruntime lacks "
                f"(it has: {', '.join(available)}); install onnxruntime-gpu or use --device cpu"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise UsageError(f"unknown device '{device}' (choose from: {', '.join(DEVICES)})")


def _one_line(err: BaseException) -> str:
    """onnxruntime's message on one line, without its `[ONNXRuntimeError] : 7 : ...` prefix."""
    text = " ".join(str(err).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"^Load model from .* failed: ?", "", text)
    return text if len(text) <= 300 else text[:297] + "..."


class Predictor:
    """An exported rnnc model, ready to run. Attributes describe its interface:
    `token_ids` (int64 ids in, else float32 features), `features`, `timesteps` (None
    when variable), `takes_lengths`, `states` (name -> feature size, streaming models only),
    `classes` (or None), `metadata` (every metadata entry)."""

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu", threads: int | None = None):
        self.path = str(path)
        if threads is not None and not 1 <= threads <= max_threads():
            raise UsageError(f"--threads must be between 1 and {max_threads()} (4 per core, at least 64), got {threads}")
        self.threads = threads  # None: one thread for one sequence, the cores for more
        self._providers = providers_for(device)
        if not Path(path).is_file():
            raise ArtifactError(f"{path}: no such model file")
        self._sessions: dict[int, ort.InferenceSession] = {}
        self.session = self.session_for(1)  # onnxruntime's reason first for files that are no model at all
        try:
            check_model_checksum(Path(path).read_bytes(), self.path)  # a flipped bit is refused, not run
        except OSError as err:
            raise ArtifactError(f"{path}: cannot read the model: {err.strerror or err}") from None
        if device == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise UsageError("--device cuda: onnxruntime could not start CUDA here (see its log); use --device cpu")
        try:
            self._read_interface()
        except (ValueError, LookupError, TypeError) as err:  # a damaged file that still parses
            raise ArtifactError(f"{path}: not a usable rnnc model: damaged interface or metadata ({type(err).__name__}: {err})") from None

    def session_for(self, batch: int) -> ort.InferenceSession:
        """The session that runs `batch` sequences fastest; each thread count's session
        is opened the first time it is needed."""
        threads = self.threads if self.threads is not None else threads_for(batch)
        if threads not in self._sessions:
            try:
                self._sessions[threads] = ort.InferenceSession(self.path, session_options(threads), providers=self._providers)
            except Exception as err:  # onnxruntime raises its own types for every bad file
                if self.path.endswith(".pt2"):
                    raise ArtifactError(
                        f"{self.path}: a torch.export program (rnnc compile --backend torch), not an ONNX model; "
                        "load it with torch.export.load, or predict with the run's model.onnx"
                    ) from None
                raise ArtifactError(f"{self.path}: not a usable ONNX model ({_one_line(err)})") from None
        return self._sessions[threads]

    def _read_interface(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if "x" not in inputs or not outputs or outputs[0] != "y":
            raise ArtifactError(
                f"{self.path}: not an rnnc model (inputs {sorted(inputs)}, outputs {outputs}; rnnc models take 'x' and give 'y')"
            )
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        x, y = inputs["x"], self.session.get_outputs()[0]
        self.token_ids = x.type == "tensor(int64)"
        if x.type not in ("tensor(float)", "tensor(int64)") or len(x.shape) != (2 if self.token_ids else 3):
            self._unusable(f"its input x is {x.type} {x.shape}; rnnc models take float32 [batch, time, features] or int64 ids [batch, time]")
        if not isinstance(y.shape, list) or len(y.shape) < 2:
            self._unusable(f"its output y has shape {y.shape}; rnnc models give [batch, ...]")
        self.output_shape: list[int | str] = y.shape
        self.sequence_output = len(y.shape) >= 3  # a time axis: its length is the input's
        self.features: int | None = None if self.token_ids else _int_or_none(x.shape[-1])
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

    def _unusable(self, why: str) -> None:
        raise ArtifactError(f"{self.path}: not a usable rnnc model: {why}")

    def _size(self, key: str, limit: int) -> int | None:
        """A size from the metadata: absent or 'variable' is None; anything but a whole
        number in [1, limit] means the file is not what rnnc wrote."""
        value = self.metadata.get(key)
        if value is None or value == "variable":
            return None
        if not (len(value) <= 12 and value.isascii() and value.isdigit() and 1 <= int(value) <= limit):
            self._unusable(f"its metadata says {key} {value[:40]!r}; expected 'variable' or a whole number in [1, {limit:,}]")
        return int(value)

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
            raise DataError(f"onnxruntime could not run the model on this input: {_one_line(err)}") from None


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


def lengths_from_ids(ids: np.ndarray) -> np.ndarray:
    """`mask_zero`'s lengths: the position after the last non-zero id of each row."""
    if ids.shape[1] == 0:
        return np.zeros(ids.shape[0], np.int64)
    positions = np.arange(1, ids.shape[1] + 1, dtype=np.int64)
    return ((ids != 0) * positions).max(axis=1).astype(np.int64)


def _int_or_none(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
