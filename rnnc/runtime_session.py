"""Opening an exported rnnc model with onnxruntime, whatever its interface: no torch, no onnx.

`OpenedModel(path)` opens the file (one clear `ArtifactError` for a file that is no
model, or a damaged one whose checksum does not match), reads its metadata and asks
its subclass to read the interface it needs: `rnnc.runtime.Predictor` for a v1 chain
(`x` in, `y` out), `rnnc.runtime_graph.GraphPredictor` for a v2 graph (named inputs and
outputs). Here too what both share: sessions per thread count (one sequence runs on one
thread, batches on the cores), execution providers, size limits on what metadata may
claim, onnxruntime's errors on one line, and `lengths_from_ids`, `mask_zero`'s rule.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .artifacts import check_model_checksum
from .errors import ArtifactError, UsageError

DEVICES = ("cpu", "cuda")
DEFAULT_BATCH_SIZE = 256
# Sizes a model's metadata may claim: each is allocated per batch (a text batch is padded
# to `timesteps`), so a damaged or hostile 1e10 must stop at load, not in numpy.
MAX_TIMESTEPS = 1 << 20
MAX_VOCAB_SIZE = 1 << 31
MAX_STATE_SIZE = 1 << 20
ALLOW_SPINNING = "session.intra_op.allow_spinning"

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
    """Every graph optimisation on, `threads` intra-op threads (default `default_threads()`),
    whose workers sleep when idle rather than spin.

    A spinning pool keeps its cores busy for a while after each run, and any other
    session in the process (another model, or this model's one-thread session for single
    sequences) then runs beside it. Two models at batch 256 run in turn on a 2-core EPYC
    took 29.1 ms a call spinning against 14.7 not (LSTM workload; seq2seq 14.6 against
    6.0), while one model alone ran at 1.00-1.01x (the seed model, 0.5 ms a call, lost
    17%), its slowest calls shorter (bench/README.md, "onnxruntime's session options")."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads if threads is not None else default_threads()
    options.inter_op_num_threads = 1
    if options.intra_op_num_threads > 1:
        options.add_session_config_entry(ALLOW_SPINNING, "0")
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


def one_line_error(err: BaseException) -> str:
    """onnxruntime's message on one line, without its `[ONNXRuntimeError] : 7 : ...` prefix."""
    text = " ".join(str(err).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"^Load model from .* failed: ?", "", text)
    return text if len(text) <= 300 else text[:297] + "..."


def is_graph(metadata: dict[str, str]) -> bool:
    """Whether a model's metadata says it is a v2 graph (named inputs and outputs)."""
    return metadata.get("spec_version") == "2"


class OpenedModel:
    """An exported model file opened with onnxruntime: `path`, `metadata` (every entry),
    `session_for(batch)`. A subclass reads its interface in `_read_interface`; a damaged
    file that still parses but whose interface code trips over it is an `ArtifactError`."""

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
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self._interface()

    def _interface(self) -> None:
        try:
            self._read_interface()
        except (ValueError, LookupError, TypeError) as err:  # a damaged file that still parses
            raise ArtifactError(f"{self.path}: not a usable rnnc model: damaged interface or metadata ({type(err).__name__}: {err})") from None

    def _read_interface(self) -> None:
        """What a subclass needs of the graph and the metadata (nothing here)."""

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
                raise ArtifactError(f"{self.path}: not a usable ONNX model ({one_line_error(err)})") from None
        return self._sessions[threads]

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


def lengths_from_ids(ids: np.ndarray) -> np.ndarray:
    """`mask_zero`'s lengths: the position after the last non-zero id of each row."""
    if ids.shape[1] == 0:
        return np.zeros(ids.shape[0], np.int64)
    positions = np.arange(1, ids.shape[1] + 1, dtype=np.int64)
    return ((ids != 0) * positions).max(axis=1).astype(np.int64)


def int_or_none(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
