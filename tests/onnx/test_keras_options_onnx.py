"""The Keras recurrent options through both backends, each against a numpy reference.

`recurrent_activation: hard_sigmoid` (Keras 3's relu6(x + 3) / 6), GRU `reset_after:
false` (one bias, reset before the recurrent product) and bidirectional `merge_mode`
(concat, sum, mul, ave): the reference below is Keras 3's cell equations written out in
numpy on the weights in rnnc's layout, run step by step with each sequence stopped at
its length (the backward direction starting at its last real step). onnxruntime on the
exported graph and the torch module must both equal it to 1e-5, at several batch
sizes and lengths, with and without lengths; and a streamed export chunk by chunk must
equal the whole sequence. A negative control shows the reference tells the options apart.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
rnnc_torch = pytest.importorskip("rnnc_torch")

from onnx_cases import FEATURES, make_model, random_weights, session  # noqa: E402

import rnnc_onnx  # noqa: E402
from rnnc import ir  # noqa: E402

TOLERANCE = 1e-5


def hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def cell_step(layer: ir.Recurrent, w: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, c: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """One step of Keras 3's cell, on weights in torch's gate order (LSTM i,f,g,o; GRU r,z,n)."""
    gate = hard_sigmoid if getattr(layer, "recurrent_activation", "sigmoid") == "hard_sigmoid" else sigmoid
    u = layer.units
    b_ih = w.get("bias_ih", np.zeros(w["weight_ih"].shape[0]))
    b_hh = w.get("bias_hh", np.zeros(w["weight_hh"].shape[0]))
    gx = x @ w["weight_ih"].T + b_ih
    if isinstance(layer, ir.SimpleRNN):
        pre = gx + h @ w["weight_hh"].T + b_hh
        return (np.maximum(pre, 0) if layer.activation == "relu" else np.tanh(pre)), c
    if isinstance(layer, ir.LSTM):
        gates = gx + h @ w["weight_hh"].T + b_hh
        i, f, g, o = (gates[:, k * u:(k + 1) * u] for k in range(4))
        c = gate(f) * c + gate(i) * np.tanh(g)
        return gate(o) * np.tanh(c), c
    assert isinstance(layer, ir.GRU)
    w_hh = w["weight_hh"]
    r = gate(gx[:, :u] + h @ w_hh[:u].T + b_hh[:u])
    z = gate(gx[:, u:2 * u] + h @ w_hh[u:2 * u].T + b_hh[u:2 * u])
    if layer.reset_after:
        n = np.tanh(gx[:, 2 * u:] + r * (h @ w_hh[2 * u:].T + b_hh[2 * u:]))
    else:
        n = np.tanh(gx[:, 2 * u:] + (r * h) @ w_hh[2 * u:].T)
    return (1 - z) * n + z * h, c


def reference(layer: ir.Recurrent, weights: dict[str, np.ndarray], prefix: str, x: np.ndarray,
              lengths: np.ndarray) -> np.ndarray:
    """The layer on `x` `[batch, time, features]`, one sequence at a time, in float64."""
    rows = []
    for b in range(x.shape[0]):
        seq = x[b, : lengths[b]].astype(np.float64)
        outs, finals = [], []
        for suffix in ("", "_reverse")[: layer.directions]:
            w = {k[len(prefix) + 1:].removesuffix(suffix): v.astype(np.float64) for k, v in weights.items()
                 if k.startswith(prefix + ".") and k.endswith(suffix) and (suffix or not k.endswith("_reverse"))}
            h = np.zeros((1, layer.units))
            c = np.zeros((1, layer.units))
            ys = np.zeros((x.shape[1], layer.units))
            order = range(len(seq) - 1, -1, -1) if suffix else range(len(seq))
            for t in order:
                h, c = cell_step(layer, w, seq[t : t + 1], h, c)
                ys[t] = h[0]
            outs.append(ys)
            finals.append(h[0])
        y = np.concatenate(outs, axis=-1) if layer.return_sequences else np.concatenate(finals)
        if layer.bidirectional and layer.merge_mode != "concat":
            f, r = y[..., : layer.units], y[..., layer.units :]
            y = {"sum": f + r, "mul": f * r, "ave": (f + r) / 2}[layer.merge_mode]
        rows.append(y)
    return np.stack(rows).astype(np.float32)


LAYERS = {
    "lstm-hard-sigmoid": ir.LSTM(units=5, recurrent_activation="hard_sigmoid", return_sequences=True),
    "lstm-hard-sigmoid-bi": ir.LSTM(units=4, recurrent_activation="hard_sigmoid", bidirectional=True),
    "gru-hard-sigmoid": ir.GRU(units=5, recurrent_activation="hard_sigmoid"),
    "gru-reset-before": ir.GRU(units=5, reset_after=False, return_sequences=True),
    "gru-reset-before-bi-hard": ir.GRU(units=4, reset_after=False, recurrent_activation="hard_sigmoid",
                                       bidirectional=True, return_sequences=True),
    "gru-reset-before-no-bias": ir.GRU(units=3, reset_after=False, use_bias=False),
    "lstm-bi-sum": ir.LSTM(units=4, bidirectional=True, merge_mode="sum", return_sequences=True),
    "gru-bi-mul": ir.GRU(units=4, bidirectional=True, merge_mode="mul"),
    "rnn-bi-ave": ir.SimpleRNN(units=4, bidirectional=True, merge_mode="ave", return_sequences=True),
    "lstm-bi-concat": ir.LSTM(units=3, bidirectional=True, merge_mode="concat", return_sequences=True),
}


def _model(layer: ir.Recurrent, **options: object) -> ir.Model:
    return make_model([layer, ir.Dense(units=2)], **options)  # type: ignore[arg-type]


def _batch(rng: np.random.Generator, batch: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    x = (2.5 * rng.normal(size=(batch, steps, FEATURES))).astype(np.float32)  # wide: both of hard_sigmoid's clips
    return x, rng.integers(1, steps + 1, size=batch).astype(np.int64)


def _dense(weights: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
    return y @ weights["layers.1.weight"].T + weights["layers.1.bias"]


@pytest.mark.parametrize("name", LAYERS)
def test_onnxruntime_and_torch_equal_the_numpy_reference(name: str) -> None:
    layer = LAYERS[name]
    model = _model(layer)
    weights = random_weights(model, scale=0.6)
    sess = session(model, weights)
    module = rnnc_torch.build_module(model)
    module.load_ir_state(weights)
    module.eval()
    rng = np.random.default_rng(3)
    for batch, steps in ((1, 1), (3, 7), (6, 19)):
        x, lengths = _batch(rng, batch, steps)
        want = _dense(weights, reference(layer, weights, "layers.0", x, lengths))
        if layer.return_sequences:
            want = want * (np.arange(steps)[None, :, None] < lengths[:, None, None])  # padded steps: zeros
        got = sess.run(["y"], {"x": x, "lengths": lengths})[0]
        with torch.inference_mode():
            torch_y = module(torch.from_numpy(x), torch.from_numpy(lengths)).numpy()
        assert got.shape == want.shape == torch_y.shape
        assert np.abs(got - want).max() <= TOLERANCE, (name, batch, steps)
        assert np.abs(torch_y - want).max() <= TOLERANCE, (name, batch, steps)


def test_exported_graphs_pass_the_full_checker_and_use_the_native_attributes() -> None:
    for name in ("lstm-hard-sigmoid-bi", "gru-reset-before-bi-hard"):
        model = _model(LAYERS[name])
        proto = rnnc_onnx.lower(model, random_weights(model))
        onnx.checker.check_model(proto, full_check=True)
        op = next(n for n in proto.graph.node if n.op_type in ("LSTM", "GRU"))
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in op.attribute}
        assert attrs["activations"][0] == b"HardSigmoid" and attrs["activations"].count(b"HardSigmoid") == 2
        assert attrs["activation_alpha"] == pytest.approx([1 / 6, 1 / 6])
        if op.op_type == "GRU":
            assert attrs["linear_before_reset"] == 0


@pytest.mark.parametrize("name", ["lstm-hard-sigmoid", "gru-reset-before"])
def test_streamed_chunks_equal_the_whole_sequence(name: str) -> None:
    model = _model(LAYERS[name], streaming=True)
    weights = random_weights(model, scale=0.6)
    sess = session(model, weights)
    rng = np.random.default_rng(5)
    x, _ = _batch(rng, 3, 12)
    lengths = np.full(3, 12, np.int64)
    want = _dense(weights, reference(LAYERS[name], weights, "layers.0", x, lengths))
    states = {i.name: np.zeros((3, LAYERS[name].units), np.float32) for i in sess.get_inputs() if i.name.startswith("state.")}
    outs = []
    for start, stop in ((0, 5), (5, 6), (6, 12)):
        feed = {"x": x[:, start:stop], "lengths": np.full(3, stop - start, np.int64), **states}
        names = ["y", *(f"{s}.next" for s in states)]
        y, *nexts = sess.run(names, feed)
        states = dict(zip(states, nexts, strict=True))
        outs.append(y)
    assert np.abs(np.concatenate(outs, axis=1) - want).max() <= TOLERANCE


def test_the_reference_tells_the_options_apart() -> None:
    """Negative control: each option changes the function, so the parity above is not vacuous."""
    rng = np.random.default_rng(0)
    x, lengths = _batch(rng, 4, 9)
    pairs = [
        (ir.GRU(units=4, reset_after=False), ir.GRU(units=4)),
        (ir.LSTM(units=4, recurrent_activation="hard_sigmoid"), ir.LSTM(units=4)),
        (ir.LSTM(units=4, bidirectional=True, merge_mode="sum"), ir.LSTM(units=4, bidirectional=True, merge_mode="ave")),
    ]
    for option, other in pairs:
        model = _model(other)
        weights = {k: v for k, v in random_weights(model, scale=0.6).items()}
        got = reference(option, weights, "layers.0", x, lengths)
        assert np.abs(got - reference(other, weights, "layers.0", x, lengths)).max() > 1e-2
        sess = session(_model(option), {k: v for k, v in weights.items()
                                         if k in {p.name for p in _model(option).params}})
        y = sess.run(["y"], {"x": x, "lengths": lengths})[0]
        assert np.abs(y - _dense(weights, reference(other, weights, "layers.0", x, lengths))).max() > 1e-2
