"""`rnnc train --weights`: an imported Keras model's weights start the run (fine-tuning),
instead of weights drawn from training.seed; refused with --resume and when they do
not fit the spec."""

from __future__ import annotations

import numpy as np

from keras_steps import rnnc
from rnnc.artifacts import read_weights
from test_keras_refusals import layer, random, sequential, write_keras


def imported(tmp_path):
    model = sequential(layer("SimpleRNN", "rnn", units=4), layer("Dense", "dense", units=1, activation="sigmoid"),
                       shape=(5, 3))
    weights = {"rnn": [random(3, 4), random(4, 4, seed=1), random(4, seed=2)], "dense": [random(4, 1), random(1)]}
    source = write_keras(tmp_path / "m.keras", model, weights,
                         {"loss": "binary_crossentropy", "optimizer": {"class_name": "SGD", "config": {"learning_rate": 1e-9}}})
    assert rnnc("import", str(source), "-o", str(tmp_path / "imported"))[0] == 0
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", x=rng.normal(0, 1, (16, 5, 3)).astype(np.float32),
             y=rng.integers(0, 2, 16).astype(np.float32))
    return tmp_path / "imported"


def train(tmp_path, run: str, *extra: str) -> tuple[int, str]:
    return rnnc("train", str(tmp_path / "imported" / "spec.yaml"), "-o", str(tmp_path / run), "--no-progress",
                "--set", f"data.train={tmp_path / 'train.npz'}", "--set", "training.epochs=1", *extra)


def test_train_starts_from_the_imported_weights(tmp_path):
    folder = imported(tmp_path)
    start, _ = read_weights(folder / "weights.safetensors")
    status, err = train(tmp_path, "tuned", "--weights", str(folder / "weights.safetensors"))
    assert status == 0, err
    tuned, _ = read_weights(tmp_path / "tuned" / "weights.safetensors")
    status, err = train(tmp_path, "fresh")
    assert status == 0, err
    fresh, _ = read_weights(tmp_path / "fresh" / "weights.safetensors")
    assert set(tuned) == set(start)
    for name in start:  # lr 1e-9: one epoch leaves them where they started
        np.testing.assert_allclose(tuned[name], start[name], atol=1e-6)
    assert max(np.abs(fresh[n] - start[n]).max() for n in start if start[n].any()) > 1e-2


def test_weights_with_resume_or_of_another_shape_are_refused(tmp_path):
    folder = imported(tmp_path)
    status, err = train(tmp_path, "run", "--weights", str(folder / "weights.safetensors"), "--resume")
    assert (status, err) == (2, "--weights starts a fresh run from those weights; --resume continues RUN_DIR: give one of them\n")
    status, err = train(tmp_path, "run", "--weights", str(folder / "weights.safetensors"), "--set", "layers.0.units=5")
    assert status == 2 and err.count("\n") == 1 and "layers.0.weight_hh has shape [4, 4], the spec needs [5, 5]" in err, err
    assert not (tmp_path / "run").exists()
