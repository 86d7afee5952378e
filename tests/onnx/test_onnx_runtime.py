"""`rnnc.runtime.Predictor`: opening models, checking inputs, filling lengths, batching."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx_cases import make_model, random_weights

import rnnc_onnx
from rnnc import ir
from rnnc.errors import ArtifactError, DataError, UsageError
from rnnc.runtime import Predictor


@pytest.fixture
def lstm_path(tmp_path: Path) -> Path:
    model = make_model([ir.LSTM(4), ir.Dense(3, "softmax")], (10, 3), loss="categorical_crossentropy")
    rnnc_onnx.export(model, random_weights(model), tmp_path / "lstm.onnx", classes=["a", "b", "c"])
    return tmp_path / "lstm.onnx"


@pytest.fixture
def ids_path(tmp_path: Path) -> Path:
    model = make_model([ir.Embedding(7, 4, mask_zero=True), ir.GRU(3)], (None,), "int64")
    rnnc_onnx.export(model, random_weights(model), tmp_path / "ids.onnx")
    return tmp_path / "ids.onnx"


def not_rnnc(path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["b"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])], [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), str(path))


BAD_MODELS = [
    ("missing", lambda p, good: None, "no such model file"),
    ("garbage", lambda p, good: p.write_bytes(b"\x00garbage\xff" * 10), "not a usable ONNX model"),
    ("truncated", lambda p, good: p.write_bytes(good.read_bytes()[:200]), "not a usable ONNX model"),
    ("empty", lambda p, good: p.write_bytes(b""), "not a usable ONNX model"),
    ("not rnnc", lambda p, good: not_rnnc(p), "not an rnnc model (inputs ['a'], outputs ['b']"),
]


@pytest.mark.parametrize(("what", "write", "message"), BAD_MODELS, ids=[b[0] for b in BAD_MODELS])
def test_a_bad_model_file_is_an_artifact_error(tmp_path: Path, lstm_path: Path, what: str, write, message: str) -> None:
    path = tmp_path / "bad.onnx"
    write(path, lstm_path)
    with pytest.raises(ArtifactError) as caught:
        Predictor(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


BAD_INPUTS = [
    ("features", np.zeros((2, 10, 4), np.float32), None, "the model takes input [batch, time, 3], got shape [2, 10, 4]"),
    ("rank", np.zeros((2, 30), np.float32), None, "the model takes input [batch, time, 3], got shape [2, 30]"),
    ("strings", np.full((2, 10, 3), "a"), None, "the model takes numbers (float32), got <U1"),
    ("timesteps", np.zeros((2, 9, 3), np.float32), None, "the model takes 10 timesteps per sequence, got 9"),
    ("lengths", np.zeros((2, 10, 3), np.float32), np.array([10, 10]), "lengths given, but the model's input is fixed-length (it takes no lengths)"),
]


@pytest.mark.parametrize(("what", "x", "lengths", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_a_data_error(lstm_path: Path, what: str, x: np.ndarray, lengths, message: str) -> None:
    with pytest.raises(DataError) as caught:
        Predictor(lstm_path).run(x, lengths)
    assert str(caught.value) == message


BAD_IDS = [
    ("float ids", np.zeros((2, 5)), None, "the model takes integer token ids, got float64"),
    ("out of range", np.array([[1, 7, 0]]), None, "token ids must lie in [0, 6] (vocab_size 7), got ids from 0 to 7"),
    ("negative", np.array([[1, -1, 0]]), None, "token ids must lie in [0, 6] (vocab_size 7), got ids from -1 to 1"),
    ("long lengths", np.array([[1, 2, 0]]), np.array([4]), "lengths must lie in [1, 3] (the input's timesteps), got 4 to 4"),
    ("zero length", np.array([[1, 2, 0]]), np.array([0]), "lengths must lie in [1, 3] (the input's timesteps), got 0 to 0"),
    ("lengths shape", np.array([[1, 2, 0]]), np.array([1, 2]), "lengths must be integers of shape [1], got int64 [2]"),
    ("float lengths", np.array([[1, 2, 0]]), np.array([1.0]), "lengths must be integers of shape [1], got float64 [1]"),
]


@pytest.mark.parametrize(("what", "x", "lengths", "message"), BAD_IDS, ids=[b[0] for b in BAD_IDS])
def test_bad_token_ids_are_a_data_error(ids_path: Path, what: str, x: np.ndarray, lengths, message: str) -> None:
    with pytest.raises(DataError) as caught:
        Predictor(ids_path).run(x, lengths)
    assert str(caught.value) == message


def test_mask_zero_lengths_come_from_the_ids(ids_path: Path) -> None:
    runner = Predictor(ids_path)
    ids = np.array([[3, 0, 5, 0, 0], [1, 2, 3, 4, 5], [6, 0, 0, 0, 0]])
    np.testing.assert_array_equal(runner.run(ids), runner.run(ids, np.array([3, 5, 1])))
    assert not np.allclose(runner.run(ids), runner.run(ids, np.array([5, 5, 5])))


def test_missing_lengths_mean_full_length(tmp_path: Path) -> None:
    model = make_model([ir.LSTM(3)], (None, 3))
    rnnc_onnx.export(model, random_weights(model), tmp_path / "m.onnx")
    runner = Predictor(tmp_path / "m.onnx")
    x = np.random.default_rng(0).normal(size=(4, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(runner.run(x), runner.run(x, np.full(4, 6)))


def test_predict_in_batches_matches_one_run(lstm_path: Path) -> None:
    runner = Predictor(lstm_path)
    x = np.random.default_rng(0).normal(size=(11, 10, 3))  # float64 is cast
    np.testing.assert_allclose(runner.predict(x, batch_size=4), runner.run(x), atol=1e-6)


def test_the_interface_is_read_from_the_model(lstm_path: Path, ids_path: Path) -> None:
    lstm, ids = Predictor(lstm_path), Predictor(ids_path)
    assert (lstm.token_ids, lstm.features, lstm.timesteps, lstm.takes_lengths, lstm.classes) == (False, 3, 10, False, ["a", "b", "c"])
    assert (ids.token_ids, ids.vocab_size, ids.timesteps, ids.takes_lengths, ids.lengths_from_ids) == (True, 7, None, True, True)
    assert lstm.metadata["output"] == "y float32 [batch, 3]: class probabilities"


def test_an_input_onnxruntime_refuses_is_a_data_error(tmp_path: Path) -> None:
    model = make_model([ir.Conv1D(2, 5, padding="valid"), ir.LSTM(2)], (None, 3))
    rnnc_onnx.export(model, random_weights(model), tmp_path / "conv.onnx")
    with pytest.raises(DataError, match="^onnxruntime could not run the model on this input: "):
        Predictor(tmp_path / "conv.onnx").run(np.zeros((1, 3, 3), np.float32))


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime has CUDA")
def test_cuda_without_onnxruntime_gpu_is_a_usage_error(lstm_path: Path) -> None:
    with pytest.raises(UsageError, match="--device cuda needs onnxruntime-gpu"):
        Predictor(lstm_path, device="cuda")


def test_the_runtime_imports_neither_torch_nor_onnx() -> None:
    code = "import sys, rnnc.runtime; bad = {'torch', 'onnx'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_one_sequence_runs_on_one_thread_and_batches_on_the_cores(lstm_path: Path) -> None:
    from rnnc.runtime import default_threads

    def threads(runner: Predictor, batch: int) -> int:
        return runner.session_for(batch).get_session_options().intra_op_num_threads

    assert (threads(Predictor(lstm_path), 1), threads(Predictor(lstm_path), 64)) == (1, default_threads())
    assert threads(Predictor(lstm_path, threads=3), 1) == threads(Predictor(lstm_path, threads=3), 64) == 3


def test_a_pool_of_threads_sleeps_when_idle_rather_than_spin(lstm_path: Path) -> None:
    """A spinning pool would hold the cores after each run, against every other session
    in the process (bench/README.md, "Session options"); one thread has no pool."""
    def spins(runner: Predictor, batch: int) -> str:
        return runner.session_for(batch).get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    assert spins(Predictor(lstm_path, threads=2), 64) == spins(Predictor(lstm_path, threads=3), 1) == "0"
    with pytest.raises(RuntimeError):  # no entry: onnxruntime's default, for the pool it does not have
        spins(Predictor(lstm_path, threads=1), 64)
