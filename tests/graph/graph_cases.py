"""Graphs (spec version 2) for the tests, and what they compute, in numpy.

`graph_model` compiles a spec mapping; `CHURN`, `ADD_NUMBERS` and `TWO_OUTPUTS` are
whole graphs (the first two as in DESIGN.md). `random_weights` draws weights large
enough that every layer matters, `random_batch` a padded batch with junk in its padded
float steps. `reference` is an independent implementation of the graph's function:
it runs each sample alone, cut to its real steps, so what padding must not change is
written into it (a recurrent layer's final state is its last real step's; a value with
no real step gives zeros to attention; sequence outputs are zero past their lengths).
Recurrent cells are written out step by step in torch's weight layout. Test modules
next to this file import it as `from graph_cases import ...`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import yaml
from seq2seq_spec import seq2seq_spec

from rnnc import ir
from rnnc.layers.normalization import NORMALIZATION_EPSILON
from rnnc.metadata import lengths_rules
from rnnc.spec import model_from_mapping

Weights = dict[str, np.ndarray]


def graph_model(inputs: dict[str, Any], layers: list[dict[str, Any]], outputs: dict[str, Any] | None = None,
                **extra: Any) -> ir.Model:
    """A compiled v2 spec; the default output is the last layer (which must be named), with mse."""
    outputs = outputs or {layers[-1]["name"]: {"loss": "mse"}}
    return model_from_mapping({"rnnc": 2, "name": "graph-test", "inputs": inputs, "layers": layers,
                               "outputs": outputs, "optimizer": "adam", **extra})


CHURN = dict(
    inputs={"events": {"shape": [None, 12]}, "profile": {"shape": [5]}},
    layers=[
        {"name": "enc", "type": "lstm", "units": 16, "input": "events"},
        {"name": "both", "type": "concatenate", "input": ["enc", "profile"]},
        {"type": "dense", "units": 8, "activation": "relu"},
        {"name": "churn", "type": "dense", "units": 1, "activation": "sigmoid"},
    ],
    outputs={"churn": {"loss": "binary_crossentropy", "metrics": ["auc"]}},
)

ADD_NUMBERS = {key: value for key, value in yaml.safe_load(seq2seq_spec(units=16, dim=8)).items()
               if key in ("inputs", "layers", "outputs")}

# Two outputs, one of which also feeds the other (its activated value, never its logits),
# a category id, static features repeated over a sequence, and a bidirectional GRU
# state across two variable-length inputs.
TWO_OUTPUTS = dict(
    inputs={"a": {"shape": [None, 3]}, "b": {"shape": [None, 4]}, "kind": {"shape": [], "dtype": "int64"},
            "static": {"shape": [2]}},
    layers=[
        {"name": "norm", "type": "normalization", "input": "a"},
        {"name": "enc", "type": "gru", "units": 5, "bidirectional": True, "return_sequences": True},
        {"name": "dec", "type": "gru", "units": 5, "bidirectional": True, "input": "b", "initial_state": "enc.state"},
        {"name": "kind_emb", "type": "embedding", "input": "kind", "vocab_size": 4, "dim": 3},
        {"name": "side", "type": "concatenate", "input": ["dec", "kind_emb", "static"]},
        {"name": "flag", "type": "dense", "units": 1, "activation": "sigmoid"},
        {"name": "again", "type": "repeat_vector", "input": "flag", "like": "enc"},
        {"name": "steps_in", "type": "concatenate", "input": ["enc", "again"]},
        {"type": "dropout", "rate": 0.3},
        {"name": "tags", "type": "dense", "units": 3, "activation": "softmax"},
    ],
    outputs={"flag": {"loss": "binary_crossentropy"},
             "tags": {"loss": "sparse_categorical_crossentropy", "loss_weight": 0.5}},
)


def random_weights(model: ir.Model, seed: int = 0, scale: float = 0.4) -> Weights:
    """Weights drawn around zero; normalization's variance positive, one feature's below
    the 1e-7 floor of the standard deviation (so the floor is exercised)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for p in model.params:
        if p.name.endswith(".variance"):
            value = rng.uniform(0.3, 3.0, size=p.shape)
            value[0] = 1e-16
        else:
            value = rng.normal(0.0, scale, size=p.shape)
        weights[p.name] = value.astype(np.float32)
    return weights


def random_batch(model: ir.Model, batch: int, steps: int, rng: np.random.Generator,
                 empty: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Inputs (padded float steps hold large junk, padded ids are 0) and the lengths of
    each input that takes them: the first sequence full, the others random in [1, steps]
    (`empty`: one of the last two of length 0, a different one for the next input)."""
    rules = lengths_rules(model)
    vocab = {n.sources[0]: n.layer.vocab_size for n in model.nodes if isinstance(n.layer, ir.Embedding)}
    inputs, lengths = {}, {}
    for inp in model.inputs:
        t = steps if inp.shape and inp.shape[0] is None else (inp.shape[0] if inp.sequence else 0)
        real = np.full(batch, t)
        if inp.name in rules:
            real = rng.integers(1, t + 1, size=batch)
            real[0] = t
            if empty and batch > 2:  # a different row for each input: one empty where another is not
                real[-1 - len(lengths) % 2] = 0
        if inp.dtype == "int64":
            low = 1 if rules.get(inp.name) == "ids" else 0
            x = rng.integers(low, vocab[inp.name], size=(batch, t) if inp.sequence else (batch,))
            if inp.sequence:
                x[np.arange(t)[None, :] >= real[:, None]] = 0
        elif inp.sequence:
            x = rng.normal(size=(batch, t, inp.shape[-1]))
            padded = np.arange(t)[None, :] >= real[:, None]
            x[padded] = 100 * rng.normal(size=(int(padded.sum()), inp.shape[-1]))
        else:
            x = rng.normal(size=(batch, *inp.shape))
        inputs[inp.name] = x.astype(np.int64 if inp.dtype == "int64" else np.float32)
        if inp.name in rules:
            lengths[inp.name] = real.astype(np.int64)
    return inputs, lengths


# --- the reference ------------------------------------------------------------------------

def _activation(name: str, z: np.ndarray) -> np.ndarray:
    match name:
        case "linear":
            return z
        case "relu":
            return np.maximum(z, 0.0)
        case "tanh":
            return np.tanh(z)
        case "sigmoid":
            return _sigmoid(z)
        case "softmax":
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
    raise NotImplementedError(name)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))  # 1 / (1 + e^-z) without overflow


def _cell(layer: ir.Recurrent, w: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, c: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    gi = w["weight_ih"] @ x + w["bias_ih"]
    gh = w["weight_hh"] @ h + w["bias_hh"]
    match layer:
        case ir.LSTM():
            i, f, g, o = np.split(gi + gh, 4)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            return _sigmoid(o) * np.tanh(c), c
        case ir.GRU():
            (ri, zi, ni), (rh, zh, nh) = np.split(gi, 3), np.split(gh, 3)
            r, z = _sigmoid(ri + rh), _sigmoid(zi + zh)
            n = np.tanh(ni + r * nh)
            return (1 - z) * n + z * h, c
        case ir.SimpleRNN():
            return _activation(layer.activation, gi + gh), c
    raise NotImplementedError(layer.kind)


def _recurrent(node: ir.Node, weights: Weights, x: np.ndarray, initial: tuple[np.ndarray, np.ndarray] | None
               ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """One sample's real steps `x` [t, F]: the output and the final (h, c), each [directions, units]."""
    layer = node.layer
    assert isinstance(layer, ir.Recurrent)
    units, t = layer.units, x.shape[0]
    outs, hs, cs = [], [], []
    for d, suffix in enumerate(("", "_reverse")[: layer.directions]):
        w = {name: weights.get(f"layers.{node.index}.{name}{suffix}", np.zeros(1)).astype(np.float64)
             for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        h = np.zeros(units) if initial is None else initial[0][d].astype(np.float64)
        c = np.zeros(units) if initial is None else initial[1][d].astype(np.float64)
        ys = np.zeros((t, units))
        for s in range(t) if d == 0 else reversed(range(t)):
            h, c = _cell(layer, w, x[s], h, c)
            ys[s] = h
        outs.append(ys)
        hs.append(h)
        cs.append(c)
    final = (np.stack(hs), np.stack(cs))
    return (np.concatenate(outs, axis=-1) if layer.return_sequences else np.concatenate(hs)), final


def _attention(node: ir.Node, weights: Weights, value: np.ndarray, query: np.ndarray | None) -> np.ndarray:
    layer = node.layer
    assert isinstance(layer, ir.Attention)
    w = {p.name.rsplit(".", 1)[1]: weights[p.name].astype(np.float64) for p in node.params}
    if query is None:
        query = w["query"]
    q = query if query.ndim == 2 else query[None, :]  # [tq, d_q]
    if value.shape[0] == 0:
        out = np.zeros((q.shape[0], value.shape[1]))
    else:
        scores = np.zeros((q.shape[0], value.shape[0]))
        for i in range(q.shape[0]):
            for j in range(value.shape[0]):
                match layer.score:
                    case "dot":
                        scores[i, j] = q[i] @ value[j] / (np.sqrt(value.shape[1]) if layer.scale else 1.0)
                    case "general":
                        scores[i, j] = q[i] @ w["weight"] @ value[j]
                    case "additive":
                        scores[i, j] = w["v"] @ np.tanh(w["weight_query"] @ q[i] + w["weight_value"] @ value[j])
        out = _activation("softmax", scores) @ value
    return out if query.ndim == 2 else out[0]


def _sample(model: ir.Model, weights: Weights, inputs: dict[str, np.ndarray]
            ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every node's value for one sample (`inputs` cut to their real steps), and the
    value before the activation of each dense and activation node (through dropout)."""
    env: dict[str, np.ndarray] = {k: (v if v.dtype == np.int64 else v.astype(np.float64)) for k, v in inputs.items()}
    pre: dict[str, np.ndarray] = {}
    states: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for node in model.nodes:
        layer, prefix = node.layer, f"layers.{node.index}"
        x = env[node.sources[0]]
        more = [env[k] for k in node.sources[1:]]
        param = lambda name: weights[f"{prefix}.{name}"].astype(np.float64)  # noqa: E731
        match layer:
            case ir.Embedding():
                y = param("weight")[x]
            case ir.Dense():
                z = x @ param("weight").T + (param("bias") if layer.use_bias else 0.0)
                pre[node.key], y = z, _activation(layer.activation, z)
            case ir.Activation():
                pre[node.key], y = x, _activation(layer.activation, x)
            case ir.Dropout():
                y = x
                if node.sources[0] in pre:
                    pre[node.key] = pre[node.sources[0]]
            case ir.SimpleRNN() | ir.LSTM() | ir.GRU():
                y, states[node.key] = _recurrent(node, weights, x, states.get(node.state_from))
            case ir.Pool():
                if x.shape[0] == 0:
                    y = np.zeros(x.shape[1])
                else:
                    y = {"last": x[-1], "mean": x.mean(axis=0), "max": x.max(axis=0)}[layer.mode]
            case ir.LayerNorm():
                normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + layer.eps)
                y = normed * param("weight") + param("bias")
            case ir.Normalization():
                y = (x - param("mean")) / np.maximum(np.sqrt(param("variance")), NORMALIZATION_EPSILON)
            case ir.Concatenate():
                y = np.concatenate([x, *more], axis=-1)
            case ir.Add():
                y = x + sum(more)
            case ir.Multiply():
                y = x * np.prod(more, axis=0)
            case ir.Average():
                y = (x + sum(more)) / (1 + len(more))
            case ir.RepeatVector():
                steps = more[0].shape[0] if layer.like else layer.n
                y = np.tile(x, (steps, 1))
            case ir.Attention():
                y = _attention(node, weights, x, more[0] if layer.query else None)
            case _:
                raise NotImplementedError(layer.kind)
        env[node.key] = y
    return env, pre


def real_lengths(model: ir.Model, inputs: dict[str, np.ndarray], lengths: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each sequence input's real steps per sample: given lengths, else after the last
    non-zero id (an input a mask_zero embedding reads), else every step."""
    rules = lengths_rules(model)
    out = {}
    for inp in model.inputs:
        x = inputs[inp.name]
        if not inp.sequence:
            continue
        if inp.name in lengths:
            out[inp.name] = lengths[inp.name]
        elif rules.get(inp.name) == "ids":
            nonzero = x != 0
            out[inp.name] = np.where(nonzero.any(1), x.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)
        else:
            out[inp.name] = np.full(x.shape[0], x.shape[1])
    return out


def reference(model: ir.Model, weights: Weights, inputs: dict[str, np.ndarray], lengths: dict[str, np.ndarray],
              logits: bool = False) -> dict[str, list[np.ndarray]]:
    """Each output's value per sample (a sequence output cut to its real steps); with
    `logits`, the value before a final sigmoid or softmax."""
    real = real_lengths(model, inputs, lengths)
    by_index = {n.index: n for n in model.nodes}
    rows: dict[str, list[np.ndarray]] = {out.name: [] for out in model.outputs}
    for b in range(len(next(iter(inputs.values())))):
        sample = {k: (v[b, : real[k][b]] if k in real else v[b]) for k, v in inputs.items()}
        env, pre = _sample(model, weights, sample)
        for out in model.outputs:
            node = by_index[out.node]
            final = _final_activation(model, node)
            rows[out.name].append(pre[node.key] if logits and final in ("sigmoid", "softmax") else env[node.key])
    return rows


def _final_activation(model: ir.Model, node: ir.Node) -> str | None:
    by_key = {n.key: n for n in model.nodes}
    while isinstance(node.layer, ir.Dropout):
        node = by_key[node.sources[0]]
    return getattr(node.layer, "activation", None)


def assert_rows(batch: np.ndarray, rows: list[np.ndarray], atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """A batch output matches per-sample rows: a sequence row on its real steps, zeros after."""
    assert len(batch) == len(rows)
    for i, row in enumerate(rows):
        if batch.ndim == 3:
            np.testing.assert_allclose(batch[i, : len(row)], row, atol=atol, rtol=rtol, err_msg=f"row {i}")
            assert np.all(batch[i, len(row):] == 0), f"row {i}: steps past its length are not zero"
        else:
            np.testing.assert_allclose(batch[i], row, atol=atol, rtol=rtol, err_msg=f"row {i}")
