"""The worked example of docs/keras.md: the seed model (SimpleRNN(32), dense sigmoid)
trained in Keras on specs/data/seed_binary_*.npz, saved as OUT.keras; prints its
validation accuracy and writes its predictions on the validation set to OUT.npz.
Runs in the Keras environment (tests/keras/make_env.sh):

    KERAS_BACKEND=torch ~/.cache/rnnc-keras-env/bin/python tests/keras/train_seed_keras.py seed
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "specs" / "data"


def main(out: str) -> int:
    keras.utils.set_random_seed(0)
    train, val = np.load(DATA / "seed_binary_train.npz"), np.load(DATA / "seed_binary_val.npz")
    model = keras.Sequential([keras.Input((10, 1)), keras.layers.SimpleRNN(32), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(train["x"], train["y"], epochs=15, batch_size=32, verbose=0,
              validation_data=(val["x"], val["y"]))
    _, accuracy = model.evaluate(val["x"], val["y"], verbose=0)
    model.save(f"{out}.keras")
    np.savez(f"{out}.npz", y=model.predict(val["x"], verbose=0))
    print(f"keras validation accuracy {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
