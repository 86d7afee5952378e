"""`rnnc import` without Keras: files written here with h5py and zipfile as Keras 3
writes them. What cannot be mapped is one line per problem at its JSON path, exit 2,
nothing written; the weight layouts match the Keras equations run in numpy."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from keras_steps import rnnc


def layer(class_name: str, name: str, **config) -> dict:
    return {"module": "keras.layers", "class_name": class_name, "config": {"name": name, **config}}


def sequential(*layers: dict, shape=(None, 3), dtype="float32") -> dict:
    first = {"class_name": "InputLayer", "config": {"batch_shape": [None, *shape], "dtype": dtype, "name": "x"}}
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": [first, *layers]}}


def write_keras(path: Path, model: dict, weights: dict[str, list[np.ndarray]], compile_config=None) -> Path:
    """A .keras zip: config.json and model.weights.h5 with `layers/<name>/vars/<i>`."""
    blob = path.with_suffix(".weights.h5")
    with h5py.File(blob, "w") as store:
        for name, arrays in weights.items():
            group = store.create_group(f"layers/{name}/vars")
            group.attrs["name"] = name
            for i, array in enumerate(arrays):
                group.create_dataset(str(i), data=array)
    config = {**model, "compile_config": compile_config} if compile_config else model
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.write(blob, "model.weights.h5")
    return path


def random(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).normal(0, 0.5, shape).astype(np.float32)


def lstm_weights(features: int, units: int) -> list[np.ndarray]:
    return [random(features, 4 * units), random(units, 4 * units), random(4 * units)]


def test_every_unmappable_layer_and_argument_is_one_line_at_its_json_path(tmp_path):
    model = sequential(
        layer("LSTM", "lstm", units=4, activation="relu", stateful=True, return_sequences=True),
        layer("SpatialDropout1D", "spatial", rate=0.1),
        layer("Conv1D", "conv", filters=2, kernel_size=[3], dilation_rate=[2], padding="causal"),
        layer("Flatten", "flatten"),
        layer("Dense", "dense", units=1, activation="mish"),
    )
    source = write_keras(tmp_path / "bad.keras", model, {"lstm": lstm_weights(3, 4), "conv": [random(3, 4, 2), random(2)],
                                                         "dense": [random(2, 1), random(1)]})
    status, err = rnnc("import", str(source), "-o", str(tmp_path / "out"))
    assert status == 2
    lines = err.strip().splitlines()
    assert lines == [
        f"{source}: config.layers[1].config.stateful: True: rnnc carries state between chunks of one sequence "
        "(export.streaming), not between batches",
        f"{source}: config.layers[1].config.activation: 'relu': rnnc's lstm uses tanh",
        f"{source}: config.layers[2].class_name: 'SpatialDropout1D': rnnc's dropout drops values, not whole channels",
        f"{source}: config.layers[3].config.padding: 'causal': rnnc's conv1d pads 'same' or 'valid'",
        f"{source}: config.layers[3].config.dilation_rate: [2]: rnnc's conv1d is not dilated",
        f"{source}: config.layers[4].class_name: 'Flatten': rnnc keeps the time axis; reduce it with a recurrent "
        "layer or a pool",
        f"{source}: config.layers[5].config.activation: 'mish': no rnnc activation of that name (linear, relu, "
        "sigmoid, tanh, softmax, log_softmax, gelu, elu, selu, leaky_relu, softplus, silu, hard_sigmoid)",
    ]
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.keras", "bad.weights.h5"]


@pytest.mark.parametrize("content, message", [
    (b"hello", "not a Keras model file (neither a .keras zip nor HDF5 .h5)"),
    (None, "no such file (expected a Keras model, .keras or .h5)"),
])
def test_a_file_that_is_not_a_keras_model_is_one_line(tmp_path, content, message):
    source = tmp_path / "model.keras"
    if content is not None:
        source.write_bytes(content)
    status, err = rnnc("import", str(source), "-o", str(tmp_path / "out"))
    assert (status, err) == (2, f"{source}: {message}\n")


def test_a_subclassed_model_is_refused(tmp_path):
    source = write_keras(tmp_path / "sub.keras", {"class_name": "MyModel", "config": {"name": "m"}}, {})
    status, err = rnnc("import", str(source), "-o", str(tmp_path / "out"))
    assert status == 2
    assert err == (f"{source}: class_name: 'MyModel': rnnc imports Sequential and functional models "
                   "(a subclassed model's call is Python code)\n")


def test_without_h5py_it_names_the_extra(tmp_path, monkeypatch):
    source = write_keras(tmp_path / "m.keras", sequential(layer("Dense", "dense", units=1)),
                         {"dense": [random(3, 1), random(1)]})
    monkeypatch.setitem(sys.modules, "h5py", None)
    status, err = rnnc("import", str(source), "-o", str(tmp_path / "out"))
    assert (status, err) == (2, "rnnc import reads Keras files with h5py: pip install 'rnnc[keras]'\n")


def test_an_existing_spec_is_replaced_only_with_force(tmp_path):
    model = sequential(layer("LSTM", "lstm", units=4), layer("Dense", "dense", units=1, activation="sigmoid"))
    source = write_keras(tmp_path / "m.keras", model, {"lstm": lstm_weights(3, 4), "dense": [random(4, 1), random(1)]},
                         {"loss": "binary_crossentropy", "optimizer": {"class_name": "Adam",
                                                                       "config": {"learning_rate": 0.003}},
                          "metrics": ["accuracy"]})
    out = tmp_path / "out"
    assert rnnc("import", str(source), "-o", str(out))[0] == 0
    text = (out / "spec.yaml").read_text()
    assert "loss: binary_crossentropy\noptimizer: {type: adam, lr: 0.003}\nmetrics: [accuracy]\n" in text
    status, err = rnnc("import", str(source), "-o", str(out))
    assert (status, err) == (2, f"-o {out}: already holds spec.yaml; pass --force to replace it, or choose another directory\n")
    assert rnnc("import", str(source), "-o", str(out), "--force")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["spec.yaml", "weights.safetensors"]


def test_the_spec_without_compile_settings_says_what_it_chose(tmp_path):
    model = sequential(layer("GRU", "gru", units=2), layer("Dense", "dense", units=3, activation="softmax"))
    weights = {"gru": [random(3, 6), random(2, 6), random(2, 6)], "dense": [random(2, 3), random(3)]}
    source = write_keras(tmp_path / "Seed Model.keras", model, weights)
    assert rnnc("import", str(source), "-o", str(tmp_path / "out"))[0] == 0
    lines = (tmp_path / "out" / "spec.yaml").read_text().splitlines()
    assert lines[0].startswith("# yaml-language-server: $schema=") and lines[0].endswith("rnnc/schema/spec-v1.json")
    assert "# note: the file has no compile settings: loss sparse_categorical_crossentropy (from the output's " \
           "softmax activation) and optimizer adam chosen" in lines
    assert lines[lines.index("rnnc: 1") + 1:] == [
        "name: seed-model", "input:", "  shape: [null, 3]", "layers:", "  - {type: gru, units: 2}",
        "  - {type: dense, units: 3, activation: softmax}", "loss: sparse_categorical_crossentropy", "optimizer: adam",
    ]


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_gru_weights_compute_the_keras_equations_in_rnnc_layout(tmp_path):
    """Keras's reset-after GRU (gates z, r, h; kernels [in, 3u]; bias [2, 3u]) in numpy,
    against PyTorch's equations (r, z, n; [3u, in]) on the imported weights."""
    from rnnc.artifacts import read_weights

    units, features = 3, 2
    kernel, recurrent_kernel, bias = random(features, 9), random(units, 9, seed=1), random(2, 9, seed=2)
    model = sequential(layer("GRU", "gru", units=units), layer("Dense", "dense", units=1), shape=(None, features))
    source = write_keras(tmp_path / "g.keras", model,
                         {"gru": [kernel, recurrent_kernel, bias], "dense": [random(units, 1), random(1)]})
    assert rnnc("import", str(source), "-o", str(tmp_path / "out"))[0] == 0
    w, _ = read_weights(tmp_path / "out" / "weights.safetensors")
    x, h = random(features, seed=3), random(units, seed=4)

    gx, gh = x @ kernel + bias[0], h @ recurrent_kernel + bias[1]
    z, r = _sigmoid(gx[:3] + gh[:3]), _sigmoid(gx[3:6] + gh[3:6])
    keras_h = z * h + (1 - z) * np.tanh(gx[6:] + r * gh[6:])

    ix, ih = w["layers.0.weight_ih"] @ x + w["layers.0.bias_ih"], w["layers.0.weight_hh"] @ h + w["layers.0.bias_hh"]
    r2, z2 = _sigmoid(ix[:3] + ih[:3]), _sigmoid(ix[3:6] + ih[3:6])
    torch_h = (1 - z2) * np.tanh(ix[6:] + r2 * ih[6:]) + z2 * h
    np.testing.assert_allclose(torch_h, keras_h, atol=1e-6)
    assert np.abs(z2 - r2).max() > 1e-3  # the gates differ, so an order mix-up would show
