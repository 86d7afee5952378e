"""The ONNX backend's graphs, without torch: validity, interface, numerics, metadata, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx_cases import CASES, Case, make_model, random_weights, session

import rnnc_onnx
from rnnc import ir
from rnnc.errors import ArtifactError, SpecError, UsageError
from rnnc.initial import initial_weights


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_case_passes_the_full_checker(case: Case) -> None:
    model = case.model()
    onnx.checker.check_model(rnnc_onnx.lower(model, random_weights(model)), full_check=True)


@pytest.mark.parametrize("case", [c for c in CASES if not rnnc_onnx.export_problems(c.model(streaming=True))], ids=lambda c: c.id)
def test_every_streamable_case_passes_the_full_checker_when_streaming(case: Case) -> None:
    model = case.model(streaming=True)
    onnx.checker.check_model(rnnc_onnx.lower(model, random_weights(model)), full_check=True)


# --- numerics against a numpy reference (PyTorch's cell equations) ---------------------


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def reference_last_state(kind: str, w: dict[str, np.ndarray], x: np.ndarray, units: int) -> np.ndarray:
    """The final hidden state of one torch-convention cell run over `x` [batch, time, F]."""
    h = np.zeros((x.shape[0], units))
    c = np.zeros_like(h)
    wi, wh, bi, bh = (w[f"layers.0.{n}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    for t in range(x.shape[1]):
        gi, gh = x[:, t] @ wi.T + bi, h @ wh.T + bh
        if kind == "simple_rnn":
            h = np.tanh(gi + gh)
        elif kind == "lstm":
            i, f, g, o = np.split(gi + gh, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        else:  # gru: the reset gate scales the recurrent candidate after its matmul
            ir_, iz, in_ = np.split(gi, 3, axis=1)
            hr, hz, hn = np.split(gh, 3, axis=1)
            r, z = sigmoid(ir_ + hr), sigmoid(iz + hz)
            n = np.tanh(in_ + r * hn)
            h = (1 - z) * n + z * h
    return h


@pytest.mark.parametrize("layer", [ir.SimpleRNN(5), ir.LSTM(5), ir.GRU(5)], ids=lambda layer: layer.kind)
def test_recurrent_layers_match_the_numpy_reference(layer: ir.Recurrent) -> None:
    model = make_model([layer])
    weights = random_weights(model, scale=0.5)
    x = np.random.default_rng(2).normal(size=(4, 9, 3)).astype(np.float32)
    got = session(model, weights).run(["y"], {"x": x, "lengths": np.full(4, 9)})[0]
    np.testing.assert_allclose(got, reference_last_state(layer.kind, weights, x.astype(np.float64), 5), atol=1e-5)


# --- the graph's interface --------------------------------------------------------------


def interface(proto: onnx.ModelProto, values: list[onnx.ValueInfoProto]) -> list[tuple[str, int, list[object]]]:
    def dim(d: onnx.TensorShapeProto.Dimension) -> object:
        return d.dim_param if d.HasField("dim_param") else d.dim_value

    return [(v.name, v.type.tensor_type.elem_type, [dim(d) for d in v.type.tensor_type.shape.dim]) for v in values]


FLOAT, INT64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64

INTERFACES = [
    ("fixed length", make_model([ir.LSTM(4)], (10, 3)), [("x", FLOAT, ["batch", "time", 3])], [("y", FLOAT, ["batch", 4])]),
    (
        "variable length",
        make_model([ir.GRU(4, return_sequences=True)], (None, 2)),
        [("x", FLOAT, ["batch", "time", 2]), ("lengths", INT64, ["batch"])],
        [("y", FLOAT, ["batch", "time", 4])],
    ),
    (
        "token ids with mask_zero",
        make_model([ir.Embedding(9, 4, mask_zero=True), ir.LSTM(2)], (12,), "int64"),
        [("x", INT64, ["batch", "time"]), ("lengths", INT64, ["batch"])],
        [("y", FLOAT, ["batch", 2])],
    ),
    (
        "strided convolution",
        make_model([ir.Conv1D(5, 3, stride=2)], (None, 2)),
        [("x", FLOAT, ["batch", "time", 2]), ("lengths", INT64, ["batch"])],
        [("y", FLOAT, ["batch", "steps", 5])],
    ),
    (
        "streaming",
        make_model([ir.LSTM(4, return_sequences=True), ir.GRU(3, return_sequences=True), ir.Pool("last")], (None, 2), streaming=True),
        [("x", FLOAT, ["batch", "time", 2]), ("lengths", INT64, ["batch"]), ("state.0.h", FLOAT, ["batch", 4]),
         ("state.0.c", FLOAT, ["batch", 4]), ("state.1.h", FLOAT, ["batch", 3]), ("state.2.last", FLOAT, ["batch", 3])],
        [("y", FLOAT, ["batch", 3]), ("state.0.h.next", FLOAT, ["batch", 4]), ("state.0.c.next", FLOAT, ["batch", 4]),
         ("state.1.h.next", FLOAT, ["batch", 3]), ("state.2.last.next", FLOAT, ["batch", 3])],
    ),
]


@pytest.mark.parametrize(("what", "model", "inputs", "outputs"), INTERFACES, ids=[i[0] for i in INTERFACES])
def test_graph_interface(what: str, model: ir.Model, inputs: list, outputs: list) -> None:
    proto = rnnc_onnx.lower(model, random_weights(model))
    assert interface(proto, list(proto.graph.input)) == inputs
    assert interface(proto, list(proto.graph.output)) == outputs


def test_an_lstm_classifier_lowers_to_five_nodes() -> None:
    model = make_model([ir.LSTM(128), ir.Dense(10, "softmax")], (100, 16))
    proto = rnnc_onnx.lower(model, random_weights(model))
    assert [n.op_type for n in proto.graph.node] == ["Transpose", "LSTM", "Squeeze", "Gemm", "Softmax"]


def test_stacked_recurrent_layers_stay_time_major() -> None:
    model = make_model([ir.GRU(4, return_sequences=True), ir.Dense(4), ir.LSTM(4, return_sequences=True), ir.Dense(2)], (None, 3))
    ops = [n.op_type for n in rnnc_onnx.lower(model, random_weights(model)).graph.node]
    assert ops.count("Transpose") == 2  # in once, out once


def test_time_axis_is_dynamic_even_for_a_fixed_length_spec() -> None:
    model = make_model([ir.LSTM(3, return_sequences=True)], (10, 3))
    sess = session(model, random_weights(model))
    assert sess.run(["y"], {"x": np.ones((2, 37, 3), np.float32)})[0].shape == (2, 37, 3)


# --- metadata ---------------------------------------------------------------------------

MEANINGS = [
    ("binary_crossentropy", [ir.LSTM(4), ir.Dense(1, "sigmoid")], "probabilities of class 1"),
    ("binary_crossentropy", [ir.LSTM(4), ir.Dense(1)], "logits of class 1"),
    ("categorical_crossentropy", [ir.LSTM(4), ir.Dense(3, "softmax"), ir.Dropout(0.1)], "class probabilities"),
    ("sparse_categorical_crossentropy", [ir.LSTM(4), ir.Dense(3, "log_softmax")], "class log-probabilities"),
    ("mse", [ir.LSTM(4), ir.Dense(2)], "values"),
    ("mae", [ir.LSTM(4, return_sequences=True), ir.Dense(1)], "per-step values, zero past each sequence's length"),
]


@pytest.mark.parametrize(("loss", "layers", "meaning"), MEANINGS)
def test_metadata_says_what_the_output_means(loss: str, layers: list, meaning: str) -> None:
    model = make_model(layers, loss=loss)
    props = {p.key: p.value for p in rnnc_onnx.lower(model, random_weights(model)).metadata_props}
    assert props["output"].endswith(f": {meaning}")


def test_metadata_describes_the_model() -> None:
    model = make_model([ir.LSTM(4), ir.Dense(3, "softmax")], (None, 2), loss="categorical_crossentropy", name="demo")
    proto = rnnc_onnx.lower(model, random_weights(model), classes=["a", "b", "c"])
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["rnnc_version"] == proto.producer_version != ""
    assert (props["spec_name"], props["spec_hash"]) == ("demo", "0" * 64)
    assert props["input"].startswith("x float32 [batch, time, 2]; lengths int64 [batch]")
    assert props["output"] == "y float32 [batch, 3]: class probabilities"
    assert json.loads(props["classes"]) == ["a", "b", "c"]
    assert (props["timesteps"], props["features"], props["lengths"], props["streaming"]) == ("variable", "2", "full", "false")


@pytest.mark.parametrize(
    ("loss", "units", "classes"),
    [("categorical_crossentropy", 3, ["a", "b"]), ("binary_crossentropy", 1, ["yes"]), ("mse", 1, ["a"])],
)
def test_class_names_must_fit_the_output(loss: str, units: int, classes: list[str]) -> None:
    model = make_model([ir.LSTM(4), ir.Dense(units)], loss=loss)
    with pytest.raises(UsageError):
        rnnc_onnx.lower(model, random_weights(model), classes=classes)


# --- opsets, refusals, weights ----------------------------------------------------------


@pytest.mark.parametrize("opset", [18, 19, 20, 22, 23])
def test_other_opsets_compute_the_same(opset: int) -> None:
    layers = [ir.Conv1D(4, 3), ir.LSTM(4, return_sequences=True), ir.LayerNorm(), ir.Dense(3, "gelu"), ir.Pool("mean")]
    base, other = make_model(layers), make_model(layers, opset=opset)
    weights = random_weights(base)
    onnx.checker.check_model(rnnc_onnx.lower(other, weights), full_check=True)
    feed = {"x": np.random.default_rng(0).normal(size=(3, 8, 3)).astype(np.float32), "lengths": np.array([8, 3, 1])}
    want = session(base, weights).run(["y"], feed)[0]
    np.testing.assert_allclose(session(other, weights).run(["y"], feed)[0], want, atol=1e-6)


REFUSALS = [
    ("opset", [ir.LSTM(2)], {"opset": 17}, "test: export.opset: the ONNX backend writes opsets 18 to 23, got 17"),
    ("bidirectional", [ir.GRU(2, bidirectional=True)], {"streaming": True}, "test: layers[0] (gru): a bidirectional layer cannot stream"),
    ("conv1d", [ir.Conv1D(2, 3), ir.LSTM(2)], {"streaming": True}, "test: layers[0] (conv1d): a conv1d wider than one step sees across"),
    ("strided conv1d", [ir.Conv1D(2, 1, stride=2)], {"streaming": True}, "test: layers[0] (conv1d): a conv1d wider than one step"),
    ("pool mean", [ir.LSTM(2, return_sequences=True), ir.Pool("mean")], {"streaming": True}, "test: layers[1] (pool): pool 'mean' reduces"),
]


@pytest.mark.parametrize(("what", "layers", "export", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_export_settings_that_cannot_be_honoured_are_spec_errors(what: str, layers: list, export: dict, message: str) -> None:
    model = make_model(layers, **export)
    with pytest.raises(SpecError) as caught:
        rnnc_onnx.lower(model, random_weights(model))
    assert message in str(caught.value)


def test_weights_that_do_not_fit_are_an_artifact_error() -> None:
    model = make_model([ir.LSTM(4)])
    weights = random_weights(model)
    weights["layers.0.weight_hh"] = weights["layers.0.weight_hh"][:, :3]
    del weights["layers.0.bias_ih"]
    with pytest.raises(ArtifactError, match="missing layers.0.bias_ih; layers.0.weight_hh has shape"):
        rnnc_onnx.lower(model, weights)


def test_export_writes_the_lowered_model(tmp_path) -> None:
    model = make_model([ir.GRU(3)])
    weights = random_weights(model)
    rnnc_onnx.export(model, weights, tmp_path / "m.onnx")
    assert onnx.load(str(tmp_path / "m.onnx")) == rnnc_onnx.lower(model, weights)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left behind


# --- initial weights and the plugin -------------------------------------------------------


def test_initial_weights_are_deterministic_from_the_seed() -> None:
    model = make_model([ir.Embedding(9, 4), ir.LSTM(5), ir.Dense(2)], (None,), "int64")
    first, again, other = initial_weights(model), initial_weights(model), initial_weights(model, seed=1)
    assert {k: v.shape for k, v in first.items()} == {p.name: p.shape for p in model.params}
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["layers.1.weight_ih"], other["layers.1.weight_ih"])
    np.testing.assert_array_equal(first["layers.1.bias_ih"][5:10], 1.0)  # forget gate bias


def test_the_plugin_compiles_to_a_model_proto() -> None:
    from rnnc.plugins import get_backend

    backend = get_backend("onnx", capability="export")
    assert backend is rnnc_onnx.backend
    assert backend.capabilities == frozenset({"export", "infer"})
    assert isinstance(backend.compile(make_model([ir.LSTM(2)])), onnx.ModelProto)
    with pytest.raises(UsageError, match="unknown option"):
        backend.compile(make_model([ir.LSTM(2)]), fuse=True)


def test_lowering_imports_no_torch() -> None:
    code = (
        "import sys, numpy as np, rnnc_onnx\n"
        "from onnx_cases import make_model\nfrom rnnc import ir\n"
        "m = make_model([ir.LSTM(3)])\nrnnc_onnx.backend.compile(m)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    from pathlib import Path

    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)
