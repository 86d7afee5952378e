"""Builds the Keras models that tests/keras/ imports, in the Keras environment
(tests/keras/make_env.sh; never rnnc's): `python keras_models.py OUT [CASE...]`.

Per case: OUT/CASE.keras and OUT/CASE.h5 (the same model, random weights, biases
too, so that a bias conversion shows), OUT/CASE.inputs.npz (each input by name, and
`<name>_lengths` for a masked one: token ids padded with zeros at the end) and
OUT/CASE.keras_out.npz (Keras's predict, one array per output). OUT/cases.json lists
what each case is. A case whose model Keras cannot build is left out with its reason.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

L = keras.layers
BATCH, STEPS, FEATURES, VOCAB = 6, 7, 3, 12


def seq(steps: int | None = STEPS, features: int = FEATURES, name: str = "x") -> keras.KerasTensor:
    return keras.Input((steps, features), name=name)


def ids(name: str = "x") -> keras.KerasTensor:
    return keras.Input((None,), dtype="int64", name=name)


def chain(first: keras.KerasTensor, *layers: keras.layers.Layer) -> keras.Model:
    return keras.Sequential([first, *layers])


ACTIVATIONS = ["relu", "sigmoid", "tanh", "gelu", "elu", "selu", "leaky_relu", "softplus", "swish", "hard_sigmoid"]


def _activations() -> keras.Model:
    body = [L.Dense(4, activation=a) for a in ACTIVATIONS]
    return chain(seq(), L.LSTM(4, return_sequences=True), *body, L.Activation("log_softmax"))


def _two_inputs(merge: type) -> keras.Model:
    events, profile = seq(name="events"), keras.Input((3,), name="profile")
    a = L.LSTM(5, name="enc")(events)
    b = L.Dense(5, activation="tanh", name="prof_dense")(profile)
    joined = merge(name="joined")([a, b])
    return keras.Model([events, profile], L.Dense(1, activation="sigmoid", name="out")(joined))


def _attention(kind: type) -> keras.Model:
    tokens = ids("tokens")
    emb = L.Embedding(VOCAB, 6, mask_zero=True, name="emb")(tokens)
    value = L.LSTM(6, return_sequences=True, name="value")(emb)
    query = L.GRU(6, return_sequences=True, name="query")(value)
    context = kind(name="att")([query, value])
    pooled = L.GlobalAveragePooling1D(name="pooled")(context)
    return keras.Model(tokens, L.Dense(2, activation="softmax", name="out")(pooled))


def _two_outputs() -> keras.Model:
    x = seq(None, name="signal")
    h = L.Bidirectional(L.GRU(4, return_sequences=True), name="bi")(x)
    last = L.LSTM(3, name="summary")(h)
    per_step = L.Dense(2, activation="softmax", name="steps")(h)
    return keras.Model(x, [L.Dense(1, name="level")(last), per_step])


def _seq2seq(cell: type) -> keras.Model:
    """An encoder whose final state (return_state) starts a decoder (initial_state)."""
    question, answer_in = ids("question"), ids("answer_in")
    encoded = L.Embedding(VOCAB, 6, mask_zero=True, name="q_emb")(question)
    _, *state = cell(5, return_state=True, name="encoder")(encoded)
    decoded = L.Embedding(VOCAB, 6, mask_zero=True, name="a_emb")(answer_in)
    decoded = cell(5, return_sequences=True, name="decoder")(decoded, initial_state=state)
    return keras.Model([question, answer_in], L.Dense(VOCAB, activation="softmax", name="answer")(decoded))


def _normalization() -> keras.Model:
    norm = L.Normalization(name="norm")
    norm.adapt(np.random.default_rng(1).normal(3.0, 2.0, (40, STEPS, FEATURES)).astype("float32"))
    return chain(seq(), norm, L.GRU(4), L.Dense(1))


# name -> (builder, inputs are masked token ids, what it checks)
CASES = {
    "simple_rnn": (lambda: chain(seq(), L.SimpleRNN(5), L.Dense(2, activation="softmax")), False, "SimpleRNN, Dense softmax"),
    "simple_rnn_relu_seq": (lambda: chain(seq(), L.SimpleRNN(4, activation="relu", return_sequences=True), L.Dense(1)),
                            False, "SimpleRNN relu, per-step Dense"),
    "lstm": (lambda: chain(seq(), L.LSTM(6), L.Dense(1, activation="sigmoid")), False, "LSTM gates i,f,c,o"),
    "lstm_stack_dropout": (lambda: chain(seq(), L.LSTM(5, return_sequences=True, dropout=0.2), L.Dropout(0.3), L.LSTM(4),
                                         L.Dense(3)), False, "stacked LSTM, dropout"),
    "gru": (lambda: chain(seq(), L.GRU(5), L.Dense(1)), False, "GRU gates z,r,h, reset_after bias [2, 3u]"),
    "gru_no_bias": (lambda: chain(seq(), L.GRU(4, use_bias=False), L.Dense(2, use_bias=False)), False, "use_bias False"),
    "bidirectional": (lambda: chain(seq(), L.Bidirectional(L.LSTM(4, return_sequences=True)), L.Bidirectional(L.GRU(3)),
                                    L.Dense(2)), False, "Bidirectional LSTM and GRU, concat"),
    "embedding_mask": (lambda: chain(ids(), L.Embedding(VOCAB, 6, mask_zero=True), L.LSTM(5), L.Dense(1, activation="sigmoid")),
                       True, "Embedding mask_zero, variable lengths"),
    "embedding_bidir_steps": (lambda: chain(ids(), L.Embedding(VOCAB, 5, mask_zero=True),
                                            L.Bidirectional(L.GRU(4, return_sequences=True)),
                                            L.TimeDistributed(L.Dense(3, activation="softmax"))),
                              True, "masked Bidirectional GRU, TimeDistributed(Dense)"),
    "conv1d_same": (lambda: chain(seq(), L.Conv1D(6, 3, padding="same", activation="relu"), L.GRU(4), L.Dense(1)),
                    False, "Conv1D same"),
    "conv1d_valid_stride": (lambda: chain(seq(9), L.Conv1D(4, 3, strides=2), L.LSTM(3), L.Dense(1)), False,
                            "Conv1D valid, stride 2"),
    "layer_norm_pool": (lambda: chain(seq(), L.LSTM(6, return_sequences=True), L.LayerNormalization(epsilon=1e-3),
                                      L.GlobalAveragePooling1D(), L.Dense(2)), False, "LayerNormalization eps, mean pool"),
    "max_pool": (lambda: chain(seq(), L.SimpleRNN(5, return_sequences=True), L.GlobalMaxPooling1D(), L.Dense(1)), False,
                 "GlobalMaxPooling1D"),
    "activations": (_activations, False, "every activation"),
    "repeat_vector": (lambda: chain(seq(), L.LSTM(4), L.RepeatVector(5), L.LSTM(3, return_sequences=True), L.Dense(2)),
                      False, "RepeatVector (a version 2 chain)"),
    "normalization": (_normalization, False, "Normalization adapted (version 2)"),
    "concatenate": (lambda: _two_inputs(L.Concatenate), False, "functional, two inputs, Concatenate"),
    "add": (lambda: _two_inputs(L.Add), False, "Add"),
    "average": (lambda: _two_inputs(L.Average), False, "Average"),
    "multiply": (lambda: _two_inputs(L.Multiply), False, "Multiply"),
    "attention": (lambda: _attention(L.Attention), True, "Attention dot over a masked value"),
    "additive_attention": (lambda: _attention(L.AdditiveAttention), True, "AdditiveAttention (identity projections)"),
    "two_outputs": (_two_outputs, False, "functional, two outputs"),
    "seq2seq_lstm": (lambda: _seq2seq(L.LSTM), True, "LSTM encoder's return_state as the decoder's initial_state"),
    "seq2seq_gru": (lambda: _seq2seq(L.GRU), True, "GRU encoder's return_state as the decoder's initial_state"),
    # the Keras options of rnnc's layers (issue 18): refused until the layers declare them
    "lstm_hard_sigmoid": (lambda: chain(seq(), L.LSTM(5, recurrent_activation="hard_sigmoid"), L.Dense(1)), False,
                          "recurrent_activation hard_sigmoid"),
    "gru_reset_before": (lambda: chain(seq(), L.GRU(5, reset_after=False), L.Dense(1)), False, "GRU reset_after False"),
    "recurrent_dropout": (lambda: chain(seq(), L.LSTM(5, recurrent_dropout=0.25), L.Dense(1)), False,
                          "recurrent_dropout (inference unaffected)"),
    "merge_sum": (lambda: chain(seq(), L.Bidirectional(L.GRU(4), merge_mode="sum"), L.Dense(1)), False, "merge_mode sum"),
    "merge_mul": (lambda: chain(seq(), L.Bidirectional(L.LSTM(4), merge_mode="mul"), L.Dense(1)), False, "merge_mode mul"),
    "mask_zero_anywhere": (lambda: chain(ids(), L.Embedding(VOCAB, 5, mask_zero=True), L.GRU(4), L.Dense(1)), "anywhere",
                           "mask_zero with zeros at the start and inside (pad_sequences' default)"),
    "masking": (lambda: chain(seq(), L.Masking(0.0), L.LSTM(4), L.Dense(1)), "steps", "Masking layer, zero steps anywhere"),
    "merge_ave": (lambda: chain(seq(), L.Bidirectional(L.SimpleRNN(4), merge_mode="ave"), L.Dense(1)), False,
                  "merge_mode ave"),
}


def inputs_for(model: keras.Model, masked: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for tensor in model.inputs:
        name = tensor.name
        if masked == "anywhere":
            tokens = rng.integers(1, VOCAB, (BATCH, STEPS))
            tokens[rng.random((BATCH, STEPS)) < 0.3] = 0
            tokens[1:, :2] = 0  # padded at the start
            out[name] = tokens.astype("int64")
        elif masked == "steps":
            x = rng.normal(0, 1, (BATCH, STEPS, FEATURES)).astype("float32")
            x[rng.random((BATCH, STEPS)) < 0.3] = 0.0
            out[name] = x
        elif masked:
            lengths = rng.integers(1, STEPS + 1, BATCH)
            lengths[0] = STEPS
            tokens = rng.integers(1, VOCAB, (BATCH, STEPS))
            tokens[np.arange(STEPS)[None, :] >= lengths[:, None]] = 0
            out[name], out[f"{name}_lengths"] = tokens.astype("int64"), lengths.astype("int64")
        else:
            shape = [BATCH, *(STEPS if d is None else d for d in tensor.shape[1:])]
            out[name] = rng.normal(0, 1, shape).astype("float32")
    return out


def build(name: str, out: Path) -> str:
    builder, masked, what = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    keras.utils.set_random_seed(0)
    model = builder()
    weights = [w if "norm" in name and i < 3 else rng.normal(0, 0.5, w.shape).astype("float32")
               for i, w in enumerate(model.get_weights())]
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="mse")
    inputs = inputs_for(model, masked, rng)
    feed = [inputs[t.name] for t in model.inputs]
    predicted = model.predict(feed if len(feed) > 1 else feed[0], verbose=0)
    predicted = predicted if isinstance(predicted, list) else [predicted]
    np.savez(out / f"{name}.inputs.npz", **inputs)
    np.savez(out / f"{name}.keras_out.npz", **{t._keras_history[0].name: np.asarray(p) for t, p in zip(model.outputs, predicted)})
    model.save(out / f"{name}.keras")
    model.save(out / f"{name}.h5")
    return what


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    listed = {}
    for name in argv[1:] or list(CASES):
        try:
            listed[name] = {"what": build(name, out), "masked": CASES[name][1]}
        except Exception as err:  # noqa: BLE001 - reported per case, the others still build
            listed[name] = {"error": f"{type(err).__name__}: {err}"}
    (out / "cases.json").write_text(json.dumps(listed, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
