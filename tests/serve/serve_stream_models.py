"""Tiny exported models (random weights) for the session, WebSocket and generate tests:
streaming chains and a streaming graph (`export.streaming: true`), and next-token models
with their decoder step graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rnnc import ir
from rnnc.initial import initial_weights
from rnnc.spec import model_from_mapping, model_from_text
from rnnc.text import Vocab

FEATURES = 3
STREAMING = {"streaming": True}
CHAINS: dict[str, tuple[dict[str, Any], list[dict[str, Any]], str, list[str] | None]] = {
    # name: input, layers, loss, classes
    "moods": ({"shape": [None, FEATURES]}, [{"type": "lstm", "units": 5}, {"type": "dense", "units": 3, "activation": "softmax"}],
              "sparse_categorical_crossentropy", ["calm", "glad", "sad"]),
    "steps": ({"shape": [None, FEATURES]}, [{"type": "gru", "units": 4, "return_sequences": True},
                                            {"type": "lstm", "units": 3, "return_sequences": True}, {"type": "dense", "units": 2}],
              "mse", None),
    "words": ({"shape": [None], "dtype": "int64"}, [{"type": "embedding", "vocab_size": 12, "dim": 4, "mask_zero": True},
                                                    {"type": "gru", "units": 4}, {"type": "dense", "units": 3, "activation": "softmax"}],
              "sparse_categorical_crossentropy", ["a", "b", "c"]),
}
GRAPH = [{"name": "h", "type": "gru", "units": 4, "input": "events"},
         {"name": "both", "type": "concatenate", "input": ["h", "profile"]},
         {"name": "churn", "type": "dense", "units": 2, "activation": "softmax"}]
CHARS = Vocab(tuple("abcdefg"), tokenizer="char")  # ids 2..8


def streaming_models(folder: Path, streaming: bool = True) -> dict[str, Path]:
    """name -> model.onnx: `moods` (LSTM classifier), `steps` (per-step GRU+LSTM
    regression), `words` (raw text, mask_zero), `churn` (a v2 graph, a sequence and a
    static input); exported with streaming state unless `streaming` is false."""
    import rnnc_onnx

    export = STREAMING if streaming else {}
    files = {}
    for name, (input_, layers, loss, classes) in CHAINS.items():
        model = model_from_mapping({"rnnc": 1, "name": name, "input": input_, "layers": layers, "loss": loss,
                                    "optimizer": "adam", "export": export})
        vocab = Vocab.build(["a small test of words"], ir.TextData(tokenizer="char", max_vocab=10)) if name == "words" else None
        files[name] = folder / f"{name}.onnx"
        rnnc_onnx.export(model, initial_weights(model, seed=3), files[name], classes=classes, vocab=vocab)
    graph = model_from_mapping({"rnnc": 2, "name": "churn", "inputs": {"events": {"shape": [None, FEATURES]}, "profile": {"shape": [2]}},
                                "layers": GRAPH, "outputs": {"churn": {"loss": "sparse_categorical_crossentropy"}},
                                "optimizer": "adam", "export": export})
    files["churn"] = folder / "churn.onnx"
    rnnc_onnx.export(graph, initial_weights(graph, seed=3), files["churn"], classes={"churn": ["stay", "leave"]})
    return files


def next_token_spec(name: str, vocab_size: int, end: int | None = None) -> str:
    feedback = "text" if end is None else f"{{input: text, end: {end}}}"
    return f"""
rnnc: 2
name: {name}
inputs:
  text: {{shape: [null], dtype: int64}}
layers:
  - {{name: emb, type: embedding, input: text, vocab_size: {vocab_size}, dim: 5}}
  - {{name: rnn, type: gru, units: 8, return_sequences: true}}
  - {{name: next, type: dense, units: {vocab_size}, activation: softmax}}
outputs:
  next: {{loss: sparse_categorical_crossentropy, feedback: {feedback}}}
optimizer: adam
"""


SEQ2SEQ = """
rnnc: 2
name: s2s
inputs:
  question: {shape: [null], dtype: int64}
  answer_in: {shape: [null], dtype: int64}
layers:
  - {name: q_emb, type: embedding, input: question, vocab_size: 14, dim: 5, mask_zero: true}
  - {name: encoder, type: gru, units: 8}
  - {name: a_emb, type: embedding, input: answer_in, vocab_size: 14, dim: 5}
  - {name: decoder, type: gru, units: 8, return_sequences: true, initial_state: encoder.state}
  - {name: answer, type: dense, units: 14, activation: softmax}
outputs:
  answer: {loss: sparse_categorical_crossentropy, feedback: {input: answer_in, start: 12, end: 13, max_length: 5}}
optimizer: adam
"""


def generative_models(folder: Path) -> dict[str, Path]:
    """name -> run directory with model.onnx and model.step.onnx: `chars` (a character
    vocabulary, no end id: always max_tokens), `ids` (no vocabulary, end id 8, likely
    enough to end some texts early), `s2s` (a sequence-to-sequence model, which answers
    questions rather than continuing a prompt)."""
    import rnnc_onnx

    runs = {}
    for name, vocab, size, end in (("chars", CHARS, CHARS.size, None), ("ids", None, 9, 8)):
        model = model_from_text(next_token_spec(name, size, end))
        weights = initial_weights(model, seed=1)
        node = next(n for n in model.nodes if n.name == "next")
        bias = np.random.default_rng(2).normal(0, 1.0, weights[f"layers.{node.index}.bias"].shape).astype(np.float32)
        bias[: 2 if vocab is not None else 1] = -30.0  # padding (and unknown) unlikely, as training makes them
        if end is not None:
            bias[end] = -1.0
        weights[f"layers.{node.index}.bias"] = bias
        runs[name] = folder / name
        runs[name].mkdir()
        rnnc_onnx.export(model, weights, runs[name] / "model.onnx", vocab=vocab)
    model = model_from_text(SEQ2SEQ)
    runs["s2s"] = folder / "s2s"
    runs["s2s"].mkdir()
    rnnc_onnx.export(model, initial_weights(model, seed=1), runs["s2s"] / "model.onnx")
    return runs
