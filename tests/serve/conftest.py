"""Small exported models (random weights) for the server's tests, made once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
rnnc_onnx = pytest.importorskip("rnnc_onnx")

from rnnc import ir  # noqa: E402
from rnnc.initial import initial_weights  # noqa: E402
from rnnc.spec import model_from_mapping  # noqa: E402
from rnnc.text import Vocab  # noqa: E402

FEATURES = 3
CLASSIFIER = [{"type": "lstm", "units": 5}, {"type": "dense", "units": 3, "activation": "softmax"}]
PER_STEP = [{"type": "gru", "units": 4, "return_sequences": True}, {"type": "dense", "units": 2}]
TEXT = [{"type": "embedding", "vocab_size": 12, "dim": 4, "mask_zero": True}, {"type": "gru", "units": 4},
        {"type": "dense", "units": 3, "activation": "softmax"}]
GRAPH = [{"name": "h", "type": "gru", "units": 4, "input": "events"},
         {"name": "both", "type": "concatenate", "input": ["h", "profile"]},
         {"name": "churn", "type": "dense", "units": 2, "activation": "softmax"}]


def _export(folder: Path, name: str, input_: dict[str, Any], layers: list[dict[str, Any]], loss: str,
            classes: list[str] | None = None, text: bool = False) -> Path:
    model = model_from_mapping({"rnnc": 1, "name": name, "input": input_, "layers": layers, "loss": loss, "optimizer": "adam"})
    vocab = Vocab.build(["a small test of words"], ir.TextData(tokenizer="char", max_vocab=10)) if text else None
    path = folder / f"{name}.onnx"
    rnnc_onnx.export(model, initial_weights(model, seed=3), path, classes=classes, vocab=vocab)
    return path


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> model.onnx: `moods` (LSTM classifier, variable length), `steps` (per-step
    regression), `words` (raw text), `churn` (a v2 graph with a sequence and a static input)."""
    folder = tmp_path_factory.mktemp("served")
    files = {
        "moods": _export(folder, "moods", {"shape": [None, FEATURES]}, CLASSIFIER, "sparse_categorical_crossentropy", ["calm", "glad", "sad"]),
        "steps": _export(folder, "steps", {"shape": [None, FEATURES]}, PER_STEP, "mse"),
        "words": _export(folder, "words", {"shape": [None], "dtype": "int64"}, TEXT, "sparse_categorical_crossentropy", ["a", "b", "c"], text=True),
    }
    graph = model_from_mapping({"rnnc": 2, "name": "churn", "inputs": {"events": {"shape": [None, FEATURES]}, "profile": {"shape": [2]}},
                                "layers": GRAPH, "outputs": {"churn": {"loss": "sparse_categorical_crossentropy"}}, "optimizer": "adam"})
    rnnc_onnx.export(graph, initial_weights(graph, seed=3), folder / "churn.onnx", classes={"churn": ["stay", "leave"]})
    files["churn"] = folder / "churn.onnx"
    return files


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`slow`: an LSTM(256) classifier, whose run on a long batch keeps the server busy
    for seconds on a small body (compute grows with the units, the body only with the
    3 features)."""
    layers = [{"type": "lstm", "units": 256}, {"type": "dense", "units": 3, "activation": "softmax"}]
    return _export(tmp_path_factory.mktemp("slow"), "slow", {"shape": [None, FEATURES]}, layers, "sparse_categorical_crossentropy")
