"""The decoding graphs of a generative model: its encoder once, then its step graph over the
teacher-forced tokens (one token per call carrying the states, or all as one chunk), give the
full model's output at every real step; the files, their interface and metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx_cases import random_weights

import rnnc_onnx
from rnnc import ir
from rnnc.artifacts import check_model_checksum
from rnnc.decoding import decoding_plan
from rnnc.spec import load_model

ROOT = Path(__file__).resolve().parents[2]
ADD_NUMBERS = ROOT / "specs" / "graphs" / "add_numbers.yaml"

NEXT_TOKEN = """
rnnc: 2
name: next-token
inputs:
  text: {shape: [null], dtype: int64}
layers:
  - {name: emb, type: embedding, input: text, vocab_size: 11, dim: 6, mask_zero: true}
  - {name: rnn, type: RNN, units: 9, return_sequences: true}
  - {name: rnn2, type: RNN, units: 7, return_sequences: true}
  - {name: norm, type: layer_norm}
  - {name: next, type: dense, units: 11, activation: softmax}
outputs:
  next: {loss: sparse_categorical_crossentropy, feedback: text}
optimizer: adam
"""

SEQ2SEQ = """
rnnc: 2
name: seq2seq
inputs:
  question: {shape: [null], dtype: int64}
  answer_in: {shape: [null], dtype: int64}
layers:
  - {name: q_emb, type: embedding, input: question, vocab_size: 14, dim: 5, mask_zero: true}
  - {name: encoder, type: RNN, units: 8, return_sequences: true}
  - {name: a_emb, type: embedding, input: answer_in, vocab_size: 14, dim: 5, mask_zero: true}
  - {name: decoder, type: RNN, units: 8, return_sequences: true, initial_state: encoder.state}
  - {name: context, type: attention, query: decoder, value: encoder, SCORE}
  - {name: mix, type: concatenate, input: [decoder, context]}
  - {name: answer, type: dense, units: 14, activation: softmax}
outputs:
  answer: {loss: sparse_categorical_crossentropy, feedback: {input: answer_in, start: 12, end: 13, max_length: 6}}
optimizer: adam
"""

# A static summary of the question and static float features, repeated onto the answer's steps.
STATIC = """
rnnc: 2
name: static-side
inputs:
  question: {shape: [null], dtype: int64}
  profile: {shape: [3]}
  answer_in: {shape: [null], dtype: int64}
layers:
  - {name: q_emb, type: embedding, input: question, vocab_size: 14, dim: 5, mask_zero: true}
  - {name: summary, type: gru, units: 6}
  - {name: a_emb, type: embedding, input: answer_in, vocab_size: 14, dim: 5, mask_zero: true}
  - {name: rep, type: repeat_vector, input: summary, like: a_emb}
  - {name: rep_profile, type: repeat_vector, input: profile, like: a_emb}
  - {name: both, type: concatenate, input: [a_emb, rep, rep_profile]}
  - {name: decoder, type: lstm, units: 7, return_sequences: true}
  - {name: answer, type: dense, units: 14, activation: softmax}
outputs:
  answer: {loss: sparse_categorical_crossentropy, feedback: {input: answer_in, start: 12, end: 13, max_length: 6}}
optimizer: adam
"""

# Float sequences read straight from the inputs (one variable-length, one fixed, one through
# dropout, which passes its input on), and per-step layers on the decoder side.
RAW_SIDE = """
rnnc: 2
name: raw-side
inputs:
  frames: {shape: [null, 3]}
  fixed: {shape: [4, 2]}
  answer_in: {shape: [null], dtype: int64}
layers:
  - {name: drop, type: dropout, rate: 0.1, input: frames}
  - {name: a_emb, type: embedding, input: answer_in, vocab_size: 14, dim: 3, mask_zero: true}
  - {name: pointwise, type: conv1d, filters: 5, kernel_size: 1, activation: relu}
  - {name: decoder, type: simple_rnn, units: 3, return_sequences: true}
  - {name: on_frames, type: attention, query: decoder, value: frames}
  - {name: on_drop, type: attention, query: decoder, value: drop, scale: true}
  - {name: on_fixed, type: attention, query: decoder, value: fixed, score: general}
  - {name: mix, type: concatenate, input: [decoder, on_frames, on_drop, on_fixed]}
  - {name: act, type: activation, activation: tanh}
  - {name: answer, type: dense, units: 14, activation: softmax}
outputs:
  answer: {loss: sparse_categorical_crossentropy, feedback: {input: answer_in, start: 12, end: 13, max_length: 6}}
optimizer: adam
"""


def spec_model(tmp_path: Path, text: str, name: str = "spec.yaml") -> ir.Model:
    path = tmp_path / name
    path.write_text(text)
    return load_model(path)


def cases() -> list[tuple[str, str]]:
    out = [("add_numbers", "")]
    out += [(f"next_token_{kind}", NEXT_TOKEN.replace("RNN", kind)) for kind in ("lstm", "gru", "simple_rnn")]
    for kind, score in (("gru", "score: general"), ("simple_rnn", "score: additive, units: 4"), ("lstm", "score: dot")):
        out.append((f"seq2seq_{kind}_{score.split(',')[0].split()[-1]}", SEQ2SEQ.replace("RNN", kind).replace("SCORE", score)))
    out.append(("static_side", STATIC))
    out.append(("raw_side", RAW_SIDE))
    return out


def load_case(tmp_path: Path, text: str) -> ir.Model:
    return load_model(ADD_NUMBERS) if not text else spec_model(tmp_path, text)


def ids(rng: np.random.Generator, batch: int, steps: int, lengths: np.ndarray, first: int | None = None) -> np.ndarray:
    """Token ids, non-zero, with junk (non-zero ids too) past each length: the lengths decide."""
    x = rng.integers(1, 11, (batch, steps))
    if first is not None:
        x[:, 0] = first
    return x


def feeds_for(model: ir.Model, session: ort.InferenceSession, rng: np.random.Generator, batch: int) -> tuple[dict, np.ndarray]:
    """Inputs for the full model (every lengths given, junk past them) and the fed-back input's lengths."""
    plan = decoding_plan(model)
    assert plan is not None
    feeds: dict[str, np.ndarray] = {}
    answer_lengths = np.array([1, 4, 6, 2, 5][:batch]) if batch > 1 else np.array([4])
    for inp in model.inputs:
        if inp.dtype == "float32" and not inp.sequence:
            feeds[inp.name] = rng.normal(size=(batch, inp.shape[-1])).astype(np.float32)
            continue
        if inp.dtype == "float32":
            steps = inp.shape[0] or 6
            feeds[inp.name] = rng.normal(size=(batch, steps, inp.shape[-1])).astype(np.float32)
            feeds[f"{inp.name}.lengths"] = np.array([6, 1, 3, 5, 2][:batch]) if inp.shape[0] is None else np.full(batch, steps)
            continue
        lengths = answer_lengths if inp.name == plan.input else np.array([7, 1, 3, 5, 2][:batch]) if batch > 1 else np.array([3])
        feeds[inp.name] = ids(rng, batch, int(lengths.max()) + 2, lengths)
        feeds[f"{inp.name}.lengths"] = lengths
    names = {i.name for i in session.get_inputs()}
    return {k: v for k, v in feeds.items() if k in names}, answer_lengths


def decode_teacher_forced(path: Path, feeds: dict[str, np.ndarray], chunk: bool) -> np.ndarray:
    """The encoder once, then the step graph over the teacher-forced tokens of the fed-back input."""
    entry = json.loads(metadata(path)["rnnc.decoding"])
    tokens = feeds[entry["input"]]
    batch = tokens.shape[0]
    encoded: dict[str, np.ndarray] = {}
    if entry["encoder"]:
        encoder = ort.InferenceSession(str(path.parent / entry["encoder"]))
        wanted = {i.name for i in encoder.get_inputs()}
        encoded = dict(zip([o.name for o in encoder.get_outputs()], encoder.run(None, {k: v for k, v in feeds.items() if k in wanted})))
    step = ort.InferenceSession(str(path.parent / entry["step"]))
    sizes = {i.name: i.shape[-1] for i in step.get_inputs()}
    states = {name: encoded[name] if name in entry["started"] else np.zeros((batch, sizes[name]), np.float32)
              for name, _ in entry["states"]}
    side = {k: v for k, v in encoded.items() if k in sizes and not k.startswith("state.")}
    pieces = [tokens] if chunk else [tokens[:, t : t + 1] for t in range(tokens.shape[1])]
    outputs = []
    for piece in pieces:
        result = dict(zip([o.name for o in step.get_outputs()], step.run(None, {entry["input"]: piece, **side, **states})))
        outputs.append(result[entry["output"]])
        states = {name: result[after] for name, after in entry["states"]}
    return np.concatenate(outputs, axis=1)


def metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


@pytest.mark.parametrize(("name", "text"), cases(), ids=[c[0] for c in cases()])
@pytest.mark.parametrize("batch", [1, 5])
def test_encoder_then_steps_equal_the_full_model_at_every_real_step(tmp_path: Path, name: str, text: str, batch: int) -> None:
    model = load_case(tmp_path, text)
    path = tmp_path / "model.onnx"
    rnnc_onnx.export(model, random_weights(model, seed=3, scale=0.5), path)
    full = ort.InferenceSession(str(path))
    feeds, lengths = feeds_for(model, full, np.random.default_rng(batch), batch)
    plan = decoding_plan(model)
    assert plan is not None
    want = full.run([plan.output], feeds)[0]
    real = np.arange(want.shape[1])[None, :] < lengths[:, None]
    assert np.ptp(want[real], axis=0).max() > 1e-3  # the steps differ: a real comparison
    for chunk in (False, True):
        got = decode_teacher_forced(path, feeds, chunk)
        np.testing.assert_allclose(got[real], want[real], atol=1e-5, err_msg=f"chunk={chunk}")


@pytest.mark.parametrize(("name", "text"), cases(), ids=[c[0] for c in cases()])
def test_decoding_graphs_pass_the_full_checker_and_carry_the_entry(tmp_path: Path, name: str, text: str) -> None:
    model = load_case(tmp_path, text)
    path = tmp_path / "x.onnx"
    rnnc_onnx.export(model, random_weights(model), path)
    entry = json.loads(metadata(path)["rnnc.decoding"])
    files = [path, tmp_path / "x.step.onnx"] + ([tmp_path / "x.encoder.onnx"] if entry["encoder"] else [])
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == sorted(p.name for p in files)
    for file in files:
        onnx.checker.check_model(onnx.load(str(file)), full_check=True)
        check_model_checksum(file.read_bytes(), str(file))
        assert json.loads(metadata(file)["rnnc.decoding"]) == entry
    assert entry["step"] == "x.step.onnx"
    assert entry["encoder"] == ("x.encoder.onnx" if name not in ("next_token_lstm", "next_token_gru", "next_token_simple_rnn") else None)


def test_add_numbers_interface(tmp_path: Path) -> None:
    model = load_model(ADD_NUMBERS)
    path = tmp_path / "add.onnx"
    rnnc_onnx.export(model, random_weights(model), path)
    entry = json.loads(metadata(path)["rnnc.decoding"])
    assert entry == {"output": "answer", "input": "answer_in", "start": 12, "end": 13, "max_length": 5,
                     "encoder": "add.encoder.onnx", "step": "add.step.onnx",
                     "states": [["state.3.h", "state.3.h.next"], ["state.3.c", "state.3.c.next"]],
                     "boundary": ["encoder"], "started": ["state.3.h", "state.3.c"]}
    step = onnx.load(str(tmp_path / "add.step.onnx")).graph
    encoder = onnx.load(str(tmp_path / "add.encoder.onnx")).graph
    assert [i.name for i in step.input] == ["answer_in", "encoder", "encoder.lengths", "state.3.h", "state.3.c"]
    assert [o.name for o in step.output] == ["answer", "state.3.h.next", "state.3.c.next"]
    assert [i.name for i in encoder.input] == ["question", "question.lengths"]
    assert [o.name for o in encoder.output] == ["encoder", "encoder.lengths", "state.3.h", "state.3.c"]


def test_quantized_export_quantizes_the_decoding_graphs_too(tmp_path: Path) -> None:
    from dataclasses import replace

    model = load_model(ADD_NUMBERS)
    model = replace(model, export=replace(model.export, quantize="int8"))
    path = tmp_path / "q.onnx"
    rnnc_onnx.export(model, random_weights(model), path)
    for file in ("q.step.onnx", "q.encoder.onnx"):
        ops = {n.op_type for n in onnx.load(str(tmp_path / file)).graph.node}
        assert ops & {"DynamicQuantizeLSTM", "MatMulInteger", "DynamicQuantizeMatMul", "QLinearMatMul"}, (file, ops)
        check_model_checksum((tmp_path / file).read_bytes(), file)
        assert metadata(tmp_path / file)["quantize"] == "int8"


def test_a_model_without_feedback_gets_no_companions(tmp_path: Path) -> None:
    model = spec_model(tmp_path, NEXT_TOKEN.replace("RNN", "gru").replace(", feedback: text", ""))
    rnnc_onnx.export(model, random_weights(model), tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["m.onnx"]
    assert "rnnc.decoding" not in metadata(tmp_path / "m.onnx")


def test_rnnc_compile_of_add_numbers_writes_the_three_files(tmp_path: Path) -> None:
    from rnnc.cli import main

    out = tmp_path / "out" / "add.onnx"
    out.parent.mkdir()
    assert main(["compile", str(ADD_NUMBERS), "--backend", "onnx", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["add.encoder.onnx", "add.onnx", "add.step.onnx"]
    entry = json.loads(metadata(out)["rnnc.decoding"])
    assert (entry["encoder"], entry["step"]) == ("add.encoder.onnx", "add.step.onnx")
    model = load_model(ADD_NUMBERS)
    feeds, lengths = feeds_for(model, ort.InferenceSession(str(out)), np.random.default_rng(0), 5)
    want = ort.InferenceSession(str(out)).run(["answer"], feeds)[0]
    real = np.arange(want.shape[1])[None, :] < lengths[:, None]
    np.testing.assert_allclose(decode_teacher_forced(out, feeds, chunk=False)[real], want[real], atol=1e-5)


def test_export_refuses_an_ir_whose_decoder_needs_later_steps(tmp_path: Path) -> None:
    from dataclasses import replace

    from rnnc.errors import SpecError

    text = SEQ2SEQ.replace("RNN, units: 8, return_sequences: true, initial_state: encoder.state",
                           "gru, units: 4, return_sequences: true, bidirectional: true").replace("RNN", "gru")
    text = text.replace("SCORE", "score: general").replace(", feedback: {input: answer_in, start: 12, end: 13, max_length: 6}", "")
    model = spec_model(tmp_path, text)  # no feedback: rnnc check has nothing to refuse
    assert model.graph is not None
    out = replace(model.graph.outputs[0], feedback=ir.Feedback("answer_in", 12, 13, 6))
    model = replace(model, graph=replace(model.graph, outputs=(out,)))
    with pytest.raises(SpecError) as err:
        rnnc_onnx.export(model, random_weights(model), tmp_path / "m.onnx")
    assert err.value.lines() == [
        "seq2seq: layers[3]: decoding feeds 'answer' back into 'answer_in' one step at a time, so 'decoder' cannot be "
        "bidirectional: its backward direction reads the steps after each one, which are not decoded yet"]
    assert not list(tmp_path.glob("*.onnx"))
