"""Streaming and padding, through `rnnc.runtime`: chunked and whole give the same outputs,
and padding a sequence in a batch never changes its result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_cases import CASES, Case, inputs, make_model, random_weights

import rnnc_onnx
from rnnc import ir
from rnnc.errors import DataError, UsageError
from rnnc.runtime import Predictor

TOLERANCE = 1e-5

STREAMING = [
    ("lstm_seq", [ir.LSTM(4, return_sequences=True), ir.Dense(2)]),
    ("stacked_last", [ir.GRU(4, return_sequences=True), ir.SimpleRNN(3, return_sequences=True), ir.LSTM(3), ir.Dense(2, "softmax")]),
    ("relu_rnn_layer_norm", [ir.SimpleRNN(4, activation="relu", return_sequences=True), ir.LayerNorm(), ir.Dropout(0.2), ir.Dense(2)]),
    ("pointwise_conv_pool_last", [ir.Conv1D(4, 1, activation="tanh"), ir.GRU(4, return_sequences=True), ir.Pool("last")]),
]


def predictor(tmp_path: Path, model: ir.Model, seed: int = 0) -> Predictor:
    rnnc_onnx.export(model, random_weights(model, seed), tmp_path / f"{model.name}.onnx")
    return Predictor(tmp_path / f"{model.name}.onnx")


def chunked(stream, x: np.ndarray, size: int, lengths: np.ndarray | None = None) -> list[np.ndarray]:
    stream.reset()
    outs = []
    for start in range(0, x.shape[1], size):
        chunk_lengths = None if lengths is None else np.clip(lengths - start, 0, size).astype(np.int64)
        outs.append(stream.step(x[:, start : start + size], chunk_lengths))
    return outs


@pytest.mark.parametrize(("name", "layers"), STREAMING, ids=[s[0] for s in STREAMING])
@pytest.mark.parametrize("size", [1, 5, 23])
def test_chunks_give_the_same_outputs_as_the_whole_sequence(tmp_path: Path, name: str, layers: list, size: int) -> None:
    model = make_model(layers, (None, 3), streaming=True)
    runner = predictor(tmp_path, model)
    x = np.random.default_rng(0).normal(size=(4, 23, 3)).astype(np.float32)
    whole = runner.run(x)
    outs = chunked(runner.stream(), x, size)
    if model.sequence_output:
        np.testing.assert_allclose(np.concatenate(outs, axis=1), whole, atol=TOLERANCE)
    else:  # each chunk's output is the output after its last step
        np.testing.assert_allclose(outs[-1], whole, atol=TOLERANCE)
        np.testing.assert_allclose(outs[0], runner.run(x[:, :size]), atol=TOLERANCE)


@pytest.mark.parametrize(("name", "layers"), STREAMING, ids=[s[0] for s in STREAMING])
def test_chunks_with_lengths_keep_the_state_of_ended_sequences(tmp_path: Path, name: str, layers: list) -> None:
    model = make_model(layers, (None, 3), streaming=True)
    runner = predictor(tmp_path, model)
    x = np.random.default_rng(1).normal(size=(3, 20, 3)).astype(np.float32)
    lengths = np.array([20, 3, 11])
    whole = runner.run(x, lengths)
    outs = chunked(runner.stream(), x, 4, lengths)
    got = np.concatenate(outs, axis=1) if model.sequence_output else outs[-1]
    np.testing.assert_allclose(got, whole, atol=TOLERANCE)


def test_a_stream_starts_over_after_reset(tmp_path: Path) -> None:
    runner = predictor(tmp_path, make_model([ir.LSTM(3)], streaming=True))
    stream = runner.stream()
    x = np.ones((2, 4, 3), np.float32)
    first = stream.step(x)
    assert not np.allclose(stream.step(x), first)
    stream.reset()
    np.testing.assert_allclose(stream.step(x), first, atol=TOLERANCE)


def test_a_stream_keeps_one_batch(tmp_path: Path) -> None:
    stream = predictor(tmp_path, make_model([ir.GRU(3)], streaming=True)).stream()
    stream.step(np.ones((2, 4, 3), np.float32))
    with pytest.raises(DataError, match="a stream keeps one batch: this chunk has 3 sequences, the stream 2"):
        stream.step(np.ones((3, 4, 3), np.float32))


def test_only_streaming_models_stream(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="export.streaming: true"):
        predictor(tmp_path, make_model([ir.GRU(3)])).stream()


def test_streaming_models_also_predict_whole_batches(tmp_path: Path) -> None:
    plain, streaming = make_model([ir.LSTM(3), ir.Dense(2)], name="plain"), make_model([ir.LSTM(3), ir.Dense(2)], streaming=True)
    x = np.random.default_rng(2).normal(size=(5, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(predictor(tmp_path, streaming).run(x), predictor(tmp_path, plain).run(x), atol=TOLERANCE)


# --- padding invariance -----------------------------------------------------------------

PADDED = [c for c in CASES if c.shape[0] is None]


@pytest.mark.parametrize("case", PADDED, ids=lambda c: c.id)
def test_padding_never_changes_a_result(tmp_path: Path, case: Case) -> None:
    """Each sequence alone gives, on its real steps, what it gives padded in a batch
    with garbage (not zeros) in the padding."""
    model = case.model()
    runner = predictor(tmp_path, model)
    rng = np.random.default_rng(3)
    x, lengths = inputs(case, 6, 13, rng)
    assert lengths is not None
    if case.dtype != "int64":
        x = np.where(np.arange(13)[None, :, None] < lengths[:, None, None], x, 1e3 * rng.normal(size=x.shape)).astype(np.float32)
    batched = runner.run(x, lengths)
    for i, n in enumerate(lengths):
        alone = runner.run(x[i : i + 1, :n], lengths[i : i + 1])[0]
        if model.sequence_output:
            steps = alone.shape[0]
            np.testing.assert_allclose(batched[i, :steps], alone, atol=TOLERANCE)
            np.testing.assert_array_equal(batched[i, steps:], 0.0)  # zero past the length
        else:
            np.testing.assert_allclose(batched[i], alone, atol=TOLERANCE)
