"""Small exported models for the `rnnc predict` input tests, one of each input kind.

They are lowered from specs with fresh weights (`rnnc_onnx.export`, no torch and no
training: a test of the input path needs a model's interface, not a good model), and
`edited` rewrites a model's metadata or graph for the tests of damaged models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnnc import ir
from rnnc.initial import initial_weights
from rnnc.spec import model_from_mapping
from rnnc.text import Vocab

FEATURES, STEPS, VOCAB_SIZE = 2, 6, 12
GRU_SIGMOID = [{"type": "gru", "units": 4}, {"type": "dense", "units": 1, "activation": "sigmoid"}]
EMBEDDING = {"type": "embedding", "vocab_size": VOCAB_SIZE, "dim": 4, "mask_zero": True}

# name -> (spec's input, layers, loss, classes, a vocabulary for raw text)
KINDS: dict[str, tuple[dict[str, Any], list[dict[str, Any]], str, list[str] | None, bool]] = {
    "variable": ({"shape": [None, FEATURES]}, GRU_SIGMOID, "binary_crossentropy", ["no", "yes"], False),
    "fixed": ({"shape": [STEPS, FEATURES]}, GRU_SIGMOID, "binary_crossentropy", None, False),
    "ids": ({"shape": [None], "dtype": "int64"}, [EMBEDDING, *GRU_SIGMOID], "binary_crossentropy", None, False),
    "text": ({"shape": [None], "dtype": "int64"}, [EMBEDDING, {"type": "gru", "units": 4},
             {"type": "dense", "units": 3, "activation": "softmax"}], "sparse_categorical_crossentropy", ["a", "b", "c"], True),
    "per_step": ({"shape": [None, FEATURES]}, [{"type": "gru", "units": 4, "return_sequences": True},
                 {"type": "dense", "units": 1}], "mse", None, False),
}


def export_all(folder: Path) -> dict[str, Path]:
    import rnnc_onnx

    paths = {}
    for name, (input_, layers, loss, classes, text) in KINDS.items():
        model = model_from_mapping({"rnnc": 1, "name": name, "input": input_, "layers": layers, "loss": loss, "optimizer": "adam"})
        vocab = Vocab.build(["a small test of words"], ir.TextData(tokenizer="char", max_vocab=VOCAB_SIZE - 2)) if text else None
        paths[name] = folder / f"{name}.onnx"
        rnnc_onnx.export(model, initial_weights(model, seed=1), paths[name], classes=classes, vocab=vocab)
    return paths


def edited(model: Path, out: Path, **metadata: str) -> Path:
    """`model` with these metadata entries replaced (or added), as a hand-edited file or
    another tool's would be: without rnnc's checksum, which would refuse the edit first."""
    import onnx

    proto = onnx.load(model)
    kept = [p for p in proto.metadata_props if p.key not in metadata and p.key != "rnnc_sha256"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, out)
    return out
