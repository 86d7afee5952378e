"""`export.quantize: int8`: dynamic int8 quantisation at export time.

The quantised graph must compute nearly what the float32 one does, keep its interface
and metadata, store the weights it quantises as int8, and run through `rnnc.runtime`
(and `rnnc predict`) where neither torch nor onnx can be imported.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import rnnc_onnx
from rnnc import ir
from rnnc.cli import main
from rnnc.runtime import Predictor

from onnx_cases import FEATURES, VOCAB, make_model, random_weights

# (id, layers, input shape, dtype, operator the quantised graph must hold)
MODELS = [
    ("lstm", [ir.LSTM(24), ir.Dense(4, "softmax")], (12, FEATURES), "float32", "DynamicQuantizeLSTM"),
    ("lstm_sequences_variable", [ir.LSTM(16, return_sequences=True), ir.Dense(2)], (None, FEATURES), "float32", "MatMulInteger"),
    ("stacked_lstm", [ir.LSTM(8, return_sequences=True), ir.LSTM(8, bidirectional=True), ir.Dense(1)], (9, FEATURES), "float32",
     "DynamicQuantizeLSTM"),
    ("embedding_gru", [ir.Embedding(VOCAB, 6, mask_zero=True), ir.GRU(8, bidirectional=True), ir.Dense(3, "softmax")], (None,),
     "int64", "DequantizeLinear"),
    ("conv_simple_rnn", [ir.Conv1D(4, 3), ir.SimpleRNN(6), ir.Dense(1, "sigmoid")], (10, FEATURES), "float32", "RNN"),
]


def cpu_flags() -> list[str]:
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.exists() else ""
    return next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])


# How far int8 may move an output depends on the CPU's int8 product in onnxruntime (MLAS:
# activations uint8, weights int8). With VNNI (vpdpbusd) it sums exactly in int32 and only
# the 8-bit rounding of weights and activations is left: 0.02. Without VNNI (AVX2, or
# AVX-512 before VNNI) it multiplies with vpmaddubsw, which adds each two adjacent
# uint8 x int8 products into a saturating int16 (255 * 127 * 2 > 32767), so large pairs
# clip. Measured on an AVX2 EPYC (no VNNI), max error per model: lstm 0.012,
# lstm_sequences_variable 0.053, stacked_lstm 0.0055, embedding_gru 0.0005,
# conv_simple_rnn 0.0004; with 7-bit weights (`reduce_range`, where no pair saturates) all
# under 0.0015, so the excess is that clipping, bounded here by 0.08.
VNNI = ("avx512_vnni", "avx_vnni", "amx_int8")
INT8_ATOL = 0.02 if any(flag in cpu_flags() for flag in VNNI) else 0.08


def quantised(model: ir.Model) -> ir.Model:
    return dataclasses.replace(model, export=dataclasses.replace(model.export, quantize="int8"))


def batch(model: ir.Model, n: int = 5, steps: int = 9) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(1)
    steps = model.input.shape[0] or steps
    lengths = rng.integers(1, steps + 1, size=n) if model.variable_length else None
    if model.input.dtype == "int64":
        x = rng.integers(1, VOCAB, size=(n, steps))
        if lengths is not None:
            x[np.arange(steps)[None, :] >= lengths[:, None]] = 0
        return x, None  # mask_zero: the runtime derives the lengths from the ids
    return rng.normal(size=(n, steps, FEATURES)).astype(np.float32), lengths


@pytest.mark.parametrize(("layers", "shape", "dtype", "op"), [m[1:] for m in MODELS], ids=[m[0] for m in MODELS])
def test_int8_model_computes_nearly_the_float_model(tmp_path: Path, layers, shape, dtype, op) -> None:
    model = make_model(layers, shape, dtype)
    weights = random_weights(model)
    rnnc_onnx.export(model, weights, tmp_path / "fp32.onnx")
    proto = rnnc_onnx.export(quantised(model), weights, tmp_path / "int8.onnx")
    assert op in {node.op_type for node in proto.graph.node}
    x, lengths = batch(model)
    expected = Predictor(tmp_path / "fp32.onnx").run(x, lengths)
    got = Predictor(tmp_path / "int8.onnx").run(x, lengths)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=INT8_ATOL)
    # and far closer to its float model than the same model with other weights is (mean
    # errors measured without VNNI: 0.0002-0.0067, against 0.016-0.23 for other weights)
    rnnc_onnx.export(model, random_weights(model, seed=1), tmp_path / "other.onnx")
    unrelated = np.abs(Predictor(tmp_path / "other.onnx").run(x, lengths) - expected).mean()
    assert np.abs(got - expected).mean() < unrelated / 3


def test_int8_keeps_the_interface_and_metadata_and_says_so(tmp_path: Path) -> None:
    model = make_model([ir.LSTM(8, return_sequences=True), ir.Dense(2, "softmax")], loss="categorical_crossentropy")
    weights = random_weights(model)
    plain = rnnc_onnx.lower(model, weights, classes=["a", "b"])
    small = rnnc_onnx.OnnxBackend().compile(quantised(model), weights, classes=["a", "b"])
    meta = {p.key: p.value for p in small.metadata_props}
    assert meta.pop("quantize") == "int8"
    assert meta.pop("rnnc_sha256") != {p.key: p.value for p in plain.metadata_props}["rnnc_sha256"]  # its own checksum
    assert {p.key: p.value for p in plain.metadata_props if p.key != "rnnc_sha256"}.items() <= meta.items()
    for got, want in ((small.graph.input, plain.graph.input), (small.graph.output, plain.graph.output)):
        assert [(v.name, v.type.tensor_type.elem_type) for v in got] == [(v.name, v.type.tensor_type.elem_type) for v in want]
    assert small.producer_name == "rnnc"


def test_int8_stores_the_lstm_weights_as_int8_and_shrinks_the_file() -> None:
    model = make_model([ir.LSTM(64), ir.Dense(3, "softmax")], (20, 16))
    weights = random_weights(model)
    plain = rnnc_onnx.lower(model, weights).SerializeToString()
    small = rnnc_onnx.deployable(quantised(model), weights)
    lstm = next(node for node in small.graph.node if node.op_type == "DynamicQuantizeLSTM")
    types = {init.name: init.data_type for init in small.graph.initializer}
    assert types[lstm.input[1]] == TensorProto.INT8 and types[lstm.input[2]] == TensorProto.INT8  # W and R
    assert len(small.SerializeToString()) < 0.4 * len(plain)


def test_quantize_none_is_the_lowered_model() -> None:
    model = make_model([ir.LSTM(8), ir.Dense(1)])
    weights = random_weights(model)
    assert rnnc_onnx.deployable(model, weights) == rnnc_onnx.lower(model, weights)


def test_int8_streaming_model_carries_its_state(tmp_path: Path) -> None:
    model = make_model([ir.LSTM(12, return_sequences=True), ir.Dense(2)], streaming=True)
    rnnc_onnx.export(quantised(model), random_weights(model), tmp_path / "int8.onnx")
    predictor = Predictor(tmp_path / "int8.onnx")
    x = np.random.default_rng(2).normal(size=(3, 12, FEATURES)).astype(np.float32)
    stream = predictor.stream()
    chunks = np.concatenate([stream.step(x[:, i : i + 4]) for i in range(0, 12, 4)], axis=1)
    # each call quantises its own chunk's activations, so chunks differ from one piece a little
    np.testing.assert_allclose(chunks, predictor.run(x), atol=0.02)


SPEC = """\
rnnc: 1
name: int8-demo
input: {shape: [8, 2]}
layers: [{type: lstm, units: 6}, {type: dense, units: 2, activation: softmax}]
loss: sparse_categorical_crossentropy
optimizer: adam
"""


def test_compiled_int8_model_predicts_where_torch_and_onnx_cannot_be_imported(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    out = tmp_path / "model.onnx"
    assert main(["compile", str(tmp_path / "spec.yaml"), "--set", "export.quantize=int8", "-o", str(out)]) == 0
    assert {p.key: p.value for p in onnx.load(out).metadata_props}["quantize"] == "int8"
    blocker = tmp_path / "blocked"
    for name in ("torch", "onnx"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked in this test')\n")
    x = np.random.default_rng(0).normal(size=(4, 8, 2)).astype(np.float32)
    np.save(tmp_path / "in.npy", x)
    cmd = [sys.executable, "-m", "rnnc", "predict", str(out), str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy")]
    done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(blocker)}, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), Predictor(out).run(x), atol=1e-6)
