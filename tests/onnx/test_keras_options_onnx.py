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


def keras2_hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def cell_step(layer: ir.Recurrent, w: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, c: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """One step of Keras 3's cell, on weights in torch's gate order (LSTM i,f,g,o; GRU r,z,n)."""
    gate = {"sigmoid": sigmoid, "hard_sigmoid": hard_sigmoid,
            "keras2_hard_sigmoid": keras2_hard_sigmoid}[getattr(layer, "recurrent_activation", "sigmoid")]
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
    "gru-keras2-reset-before": ir.GRU(units=5, recurrent_activation="keras2_hard_sigmoid", reset_after=False),
    "lstm-keras2-bi": ir.LSTM(units=4, recurrent_activation="keras2_hard_sigmoid", bidirectional=True,
                              return_sequences=True),
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


def _dense(weights: dict[str, np.ndarray], y: np.ndarray, index: int = 1) -> np.ndarray:
    return y @ weights[f"layers.{index}.weight"].T + weights[f"layers.{index}.bias"]


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
        (ir.LSTM(units=4, recurrent_activation="hard_sigmoid"), ir.LSTM(units=4, recurrent_activation="keras2_hard_sigmoid")),
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


def masked_reference(layer: ir.Recurrent, weights: dict[str, np.ndarray], prefix: str, x: np.ndarray,
                     kept: np.ndarray) -> np.ndarray:
    """Keras's masks: every step is visited, and at a skipped one (`kept` False) the state
    stays as it was. Final states, or with return_sequences the outputs (zero where skipped)."""
    batch, steps = kept.shape
    outs, finals = [], []
    for suffix in ("", "_reverse")[: layer.directions]:
        w = {k[len(prefix) + 1:].removesuffix(suffix): v.astype(np.float64) for k, v in weights.items()
             if k.startswith(prefix + ".") and k.endswith(suffix) and (suffix or not k.endswith("_reverse"))}
        h, c = np.zeros((batch, layer.units)), np.zeros((batch, layer.units))
        ys = np.zeros((batch, steps, layer.units))
        for t in (range(steps - 1, -1, -1) if suffix else range(steps)):
            new_h, new_c = cell_step(layer, w, x[:, t].astype(np.float64), h, c)
            keep = kept[:, t : t + 1]
            h, c = np.where(keep, new_h, h), np.where(keep, new_c, c)
            ys[:, t] = np.where(keep, new_h, 0.0)
        outs.append(ys)
        finals.append(h)
    y = np.concatenate(outs if layer.return_sequences else finals, axis=-1)
    if layer.bidirectional and layer.merge_mode != "concat":
        f, r = y[..., : layer.units], y[..., layer.units :]
        y = {"sum": f + r, "mul": f * r, "ave": (f + r) / 2}[layer.merge_mode]
    return y


def _both(model: ir.Model, weights: dict[str, np.ndarray], feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime's and torch's outputs for `feed`."""
    module = rnnc_torch.build_module(model)
    module.load_ir_state(weights)
    module.eval()
    got = session(model, weights).run(["y"], feed)[0]
    with torch.inference_mode():
        lengths = torch.from_numpy(feed["lengths"]) if "lengths" in feed else None
        return got, module(torch.from_numpy(feed["x"]), lengths).numpy()


@pytest.mark.parametrize("shape", [(None, FEATURES), (9, FEATURES)], ids=["lengths", "fixed"])
def test_masking_skips_steps_anywhere_as_keras_does(shape: tuple[int | None, int]) -> None:
    lstm = ir.LSTM(units=4, bidirectional=True, merge_mode="sum", recurrent_activation="hard_sigmoid")
    model = make_model([ir.Masking(mask_value=-1.0), lstm, ir.Dense(units=2)], shape=shape)
    weights = random_weights(model, scale=0.6)
    rng = np.random.default_rng(7)
    x, lengths = _batch(rng, 6, 9)
    skipped = rng.random((6, 9)) < 0.35
    skipped[0] = True  # a sequence with no step at all
    skipped[1, 0] = False
    x[skipped] = -1.0
    x[2, 3, 0] = -1.0  # one feature equal to the value does not skip the step
    feed = {"x": x}
    kept = ~skipped
    if shape[0] is None:
        feed["lengths"] = lengths
        kept &= np.arange(9)[None, :] < lengths[:, None]
    want = _dense(weights, masked_reference(lstm, weights, "layers.1", x, kept), 2)
    got, torch_y = _both(model, weights, feed)
    assert np.abs(got - want).max() <= TOLERANCE
    assert np.abs(torch_y - want).max() <= TOLERANCE
    # negative control: the same steps as padding after the last real one would differ
    assert np.abs(want - _dense(weights, masked_reference(lstm, weights, "layers.1", x, np.ones_like(kept)), 2)).max() > 1e-2


def test_mask_zero_anywhere_skips_every_zero_id_and_pools_over_the_rest() -> None:
    gru = ir.GRU(units=5, return_sequences=True, reset_after=False)
    layers = [ir.Embedding(vocab_size=9, dim=4, mask_zero="anywhere"), gru, ir.Pool(mode="mean"), ir.Dense(units=2)]
    model = make_model(layers, shape=(None,), dtype="int64")
    weights = random_weights(model, scale=0.6)
    rng = np.random.default_rng(8)
    ids = rng.integers(1, 9, size=(5, 11)).astype(np.int64)
    ids[rng.random((5, 11)) < 0.3] = 0
    ids[0, :6] = 0  # padded at the start, as Keras's pad_sequences does
    ids[1, 8:] = 0  # and at the end
    from rnnc.runtime import lengths_from_ids

    feed = {"x": ids, "lengths": lengths_from_ids(ids)}
    kept = ids != 0
    vectors = weights["layers.0.weight"][ids]
    seq = masked_reference(gru, weights, "layers.1", vectors, kept)
    pooled = (seq * kept[:, :, None]).sum(axis=1) / kept.sum(axis=1, keepdims=True)
    want = pooled @ weights["layers.3.weight"].T + weights["layers.3.bias"]
    got, torch_y = _both(model, weights, feed)
    assert np.abs(got - want).max() <= TOLERANCE
    assert np.abs(torch_y - want).max() <= TOLERANCE


def test_a_streamed_masked_sequence_equals_it_whole() -> None:
    lstm = ir.LSTM(units=4)
    model = make_model([ir.Masking(), lstm, ir.Dense(units=2)], streaming=True)
    weights = random_weights(model, scale=0.6)
    rng = np.random.default_rng(9)
    x, _ = _batch(rng, 3, 10)
    x[rng.random((3, 10)) < 0.4] = 0.0
    x[1, 4:7] = 0.0  # a chunk with no kept step keeps the state
    want = _dense(weights, masked_reference(lstm, weights, "layers.1", x, (x != 0).any(axis=-1)), 2)
    sess = session(model, weights)
    states = {i.name: np.zeros((3, 4), np.float32) for i in sess.get_inputs() if i.name.startswith("state.")}
    for start, stop in ((0, 4), (4, 7), (7, 10)):
        feed = {"x": x[:, start:stop], "lengths": np.full(3, stop - start, np.int64), **states}
        y, *nexts = sess.run(["y", *(f"{s}.next" for s in states)], feed)
        states = dict(zip(states, nexts, strict=True))
    assert np.abs(y - want).max() <= TOLERANCE


def test_layer_norm_keeps_its_epsilon_in_both_backends() -> None:
    model = make_model([ir.LSTM(units=4, return_sequences=True), ir.LayerNorm(eps=0.5)])
    weights = random_weights(model)
    x, lengths = _batch(np.random.default_rng(2), 3, 5)
    seq = reference(ir.LSTM(units=4, return_sequences=True), weights, "layers.0", x, lengths).astype(np.float64)
    norm = (seq - seq.mean(-1, keepdims=True)) / np.sqrt(seq.var(-1, keepdims=True) + 0.5)
    want = (norm * weights["layers.1.weight"] + weights["layers.1.bias"]) * (np.arange(5)[None, :, None] < lengths[:, None, None])
    got, torch_y = _both(model, weights, {"x": x, "lengths": lengths})
    assert np.abs(got - want).max() <= TOLERANCE
    assert np.abs(torch_y - want).max() <= TOLERANCE
