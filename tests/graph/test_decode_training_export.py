"""`rnnc train` of a generative graph leaves its decoding graphs in the run directory: the
step graph (and the encoder graph of a sequence-to-sequence model) beside model.onnx,
named in its `rnnc.decoding` metadata, and computing what model.onnx does."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from seq2seq_spec import seq2seq_spec

from rnnc.cli import main

SPECS = {
    "seq2seq": seq2seq_spec(name="tiny-seq2seq", cell="gru", units=5, metrics=False,
                            rest="optimizer: adam\ntraining: {epochs: 1, batch_size: 8}\ndata: {train: train.npz}\n"),
    "next_token": """\
rnnc: 2
name: tiny-next
inputs:
  text: {shape: [null], dtype: int64}
layers:
  - {name: emb, type: embedding, input: text, vocab_size: 14, dim: 4, mask_zero: true}
  - {name: rnn, type: lstm, units: 5, return_sequences: true}
  - {name: next, type: dense, units: 14, activation: softmax}
outputs:
  next: {loss: sparse_categorical_crossentropy, feedback: text}
optimizer: adam
training: {epochs: 1, batch_size: 8}
data: {train: train.npz}
""",
}


def data(case: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = 16
    if case == "next_token":
        return {"text": rng.integers(1, 14, (n, 6))}
    answer = rng.integers(1, 12, (n, 4))
    answer_in = np.concatenate([np.full((n, 1), 12), answer[:, :-1]], axis=1)
    return {"question": rng.integers(1, 12, (n, 5)), "answer_in": answer_in, "answer": answer}


@pytest.mark.parametrize("case", sorted(SPECS))
def test_a_trained_generative_graph_leaves_its_decoding_graphs(tmp_path: Path, case: str) -> None:
    np.savez(tmp_path / "train.npz", **data(case, np.random.default_rng(0)))
    (tmp_path / "spec.yaml").write_text(SPECS[case])
    from contextlib import redirect_stderr

    with redirect_stderr(io.StringIO()):
        assert main(["train", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "run"), "--no-progress"]) == 0
    run = tmp_path / "run"
    expected = {"model.onnx", "model.step.onnx"} | ({"model.encoder.onnx"} if case == "seq2seq" else set())
    assert {p.name for p in run.glob("*.onnx")} == expected
    props = {p.key: p.value for p in onnx.load(str(run / "model.onnx")).metadata_props}
    entry = json.loads(props["rnnc.decoding"])
    assert entry["step"] == "model.step.onnx"
    assert entry["encoder"] == ("model.encoder.onnx" if case == "seq2seq" else None)

    # the trained weights in the step graph: all steps as one chunk equal model.onnx
    feeds = {k: v for k, v in data(case, np.random.default_rng(1)).items() if k != "answer"}
    feeds |= {f"{k}.lengths": np.full(len(v), v.shape[1]) for k, v in feeds.items()}  # every step real
    full = ort.InferenceSession(str(run / "model.onnx"))
    want = full.run([entry["output"]], {k: v for k, v in feeds.items() if k in {i.name for i in full.get_inputs()}})[0]
    side: dict[str, np.ndarray] = {}
    if entry["encoder"]:
        encoder = ort.InferenceSession(str(run / entry["encoder"]))
        side = dict(zip([o.name for o in encoder.get_outputs()], encoder.run(None, {k: feeds[k] for k in ("question", "question.lengths")})))
    step = ort.InferenceSession(str(run / entry["step"]))
    batch = feeds[entry["input"]].shape[0]
    step_feeds = {entry["input"]: feeds[entry["input"]]}
    for inp in step.get_inputs():
        if inp.name != entry["input"]:
            step_feeds[inp.name] = side[inp.name] if inp.name in side else np.zeros((batch, inp.shape[-1]), np.float32)
    got = step.run([entry["output"]], step_feeds)[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
