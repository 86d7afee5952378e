"""Legacy `.h5` files of Keras 2 (tf.keras), written here as Keras 2 wrote them:
`batch_input_shape`, inbound nodes as `[[name, node, tensor, kwargs]]`, weights under
`model_weights/<layer>/<layer>/<cell>/kernel:0` listed by `weight_names`. They import
as the same spec and weights as the Keras 3 file of the same model."""

from __future__ import annotations

import json

import h5py
import numpy as np

from keras_steps import rnnc
from rnnc.artifacts import read_weights
from test_keras_refusals import layer, random, sequential, write_keras

UNITS, FEATURES = 3, 2
GRU = {"units": UNITS, "reset_after": False, "activation": "tanh", "recurrent_activation": "sigmoid"}
LSTM = {"units": UNITS, "return_sequences": True}


def arrays() -> dict[str, list[np.ndarray]]:
    lstm = lambda seed, inputs: [random(inputs, 4 * UNITS, seed=seed), random(UNITS, 4 * UNITS, seed=seed + 1),
                                 random(4 * UNITS, seed=seed + 2)]
    return {
        "bi": lstm(0, FEATURES) + lstm(10, FEATURES),
        "gru": [random(2 * UNITS, 3 * UNITS, seed=20), random(UNITS, 3 * UNITS, seed=21), random(3 * UNITS, seed=22)],
        "out": [random(UNITS, 1, seed=30), random(1, seed=31)],
    }


def keras2_h5(path, weights) -> None:
    def node(name):
        return [[[name, 0, 0, {}]]]

    layers = [
        {"class_name": "InputLayer", "name": "x", "inbound_nodes": [],
         "config": {"batch_input_shape": [None, None, FEATURES], "dtype": "float32", "name": "x"}},
        {"class_name": "Bidirectional", "name": "bi", "inbound_nodes": node("x"),
         "config": {"name": "bi", "merge_mode": "concat", "layer": {"class_name": "LSTM", "config": {"name": "lstm", **LSTM}}}},
        {"class_name": "GRU", "name": "gru", "inbound_nodes": node("bi"), "config": {"name": "gru", **GRU}},
        {"class_name": "Dense", "name": "out", "inbound_nodes": node("gru"),
         "config": {"name": "out", "units": 1, "activation": "sigmoid"}},
    ]
    config = {"class_name": "Functional", "config": {"name": "model", "layers": layers, "input_layers": [["x", 0, 0]],
                                                     "output_layers": [["out", 0, 0]]}}
    names = {"bi": [f"bi/{d}_lstm/lstm_cell/{w}:0" for d in ("forward", "backward")
                    for w in ("kernel", "recurrent_kernel", "bias")],
             "gru": [f"gru/gru_cell/{w}:0" for w in ("kernel", "recurrent_kernel", "bias")],
             "out": ["out/kernel:0", "out/bias:0"]}
    with h5py.File(path, "w") as store:
        store.attrs["keras_version"] = "2.15.0"
        store.attrs["backend"] = "tensorflow"
        store.attrs["model_config"] = json.dumps(config)
        store.attrs["training_config"] = json.dumps({"loss": "binary_crossentropy", "metrics": [["acc"]],
                                                     "optimizer_config": {"class_name": "RMSprop",
                                                                          "config": {"learning_rate": 0.01, "rho": 0.9}}})
        root = store.create_group("model_weights")
        root.attrs["layer_names"] = [n.encode() for n in ("x", "bi", "gru", "out")]
        root.create_group("x").attrs["weight_names"] = np.array([], dtype="S1")
        for name, listed in names.items():
            group = root.create_group(name)
            group.attrs["weight_names"] = [n.encode() for n in listed]
            for key, array in zip(listed, weights[name]):
                group.create_dataset(key, data=array)


def test_a_keras2_h5_imports_as_its_keras3_twin(tmp_path):
    weights = arrays()
    keras2_h5(tmp_path / "old.h5", weights)
    twin = sequential(layer("Bidirectional", "bi", merge_mode="concat", layer={"class_name": "LSTM", "config": LSTM}),
                      layer("GRU", "gru", **GRU), layer("Dense", "out", units=1, activation="sigmoid"),
                      shape=(None, FEATURES))
    write_keras(tmp_path / "new.keras", twin, weights, {"loss": "binary_crossentropy", "metrics": ["acc"],
                                                         "optimizer": {"class_name": "RMSprop", "config": {"learning_rate": 0.01}}})
    for name in ("old.h5", "new.keras"):
        status, err = rnnc("import", str(tmp_path / name), "-o", str(tmp_path / name.split(".")[0]))
        assert status == 0, err
    old, _ = read_weights(tmp_path / "old" / "weights.safetensors")
    new, _ = read_weights(tmp_path / "new" / "weights.safetensors")
    assert sorted(old) == sorted(new)
    for key in new:
        np.testing.assert_array_equal(old[key], new[key])
    np.testing.assert_array_equal(old["layers.0.weight_ih_reverse"], weights["bi"][3].T)  # the backward layer's kernel
    spec = (tmp_path / "old" / "spec.yaml").read_text()
    assert "  - {name: gru, type: gru, units: 3, reset_after: false, input: bi}\n" in spec, spec
    assert "  - {name: bi, type: lstm, units: 3, return_sequences: true, bidirectional: true, input: x}\n" in spec, spec
    assert "optimizer: {type: rmsprop, lr: 0.01}\n" in spec and "  out: {loss: binary_crossentropy, metrics: [accuracy]}\n" in spec


def test_keras2_hard_sigmoid_is_refused(tmp_path):
    weights = arrays()
    keras2_h5(tmp_path / "old.h5", weights)
    with h5py.File(tmp_path / "old.h5", "a") as store:
        config = json.loads(store.attrs["model_config"])
        config["config"]["layers"][2]["config"]["recurrent_activation"] = "hard_sigmoid"
        store.attrs["model_config"] = json.dumps(config)
    status, err = rnnc("import", str(tmp_path / "old.h5"), "-o", str(tmp_path / "out"))
    assert (status, err) == (2, f"{tmp_path / 'old.h5'}: config.layers[2].config.recurrent_activation: Keras 2's "
                                "hard_sigmoid is 0.2x + 0.5; rnnc's is Keras 3's relu6(x + 3) / 6\n")
