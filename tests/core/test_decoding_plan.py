"""`rnnc.decoding`: how a generative graph splits into what runs once (encoder) and what runs
per step (decoder), and which decoder layers `rnnc check` refuses because they need later steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnc.decoding import DecodingPlan, decoding_plan, metadata_entry
from rnnc.errors import SpecError
from rnnc.spec import load_model, model_from_text

ADD_NUMBERS = Path(__file__).resolve().parents[2] / "specs" / "graphs" / "add_numbers.yaml"

NEXT_TOKEN = """
rnnc: 2
name: next-token
inputs:
  text: {shape: [null], dtype: int64}
layers:
  - {name: emb, type: embedding, input: text, vocab_size: 11, dim: 6, mask_zero: true}
  - {name: rnn, type: lstm, units: 9, return_sequences: true}
  - {name: rnn2, type: gru, units: 7, return_sequences: true}
  - {name: next, type: dense, units: 11, activation: softmax}
outputs:
  next: {loss: sparse_categorical_crossentropy, feedback: text}
optimizer: adam
"""

# DECODER stands for the layers between the answer's embedding (a_emb) and the output.
SEQ2SEQ = """
rnnc: 2
name: seq2seq
inputs:
  question: {shape: [null], dtype: int64}
  answer_in: {shape: [null], dtype: int64}
layers:
  - {name: q_emb, type: embedding, input: question, vocab_size: 14, dim: 5, mask_zero: true}
  - {name: encoder, type: gru, units: 8, return_sequences: true}
  - {name: a_emb, type: embedding, input: answer_in, vocab_size: 14, dim: 5, mask_zero: true}
DECODER
  - {name: answer, type: dense, units: 14, activation: softmax}
OUTPUTS
optimizer: adam
"""
ANSWER = "  answer: {loss: sparse_categorical_crossentropy, feedback: {input: answer_in, start: 12, end: 13, max_length: 6}}"


def seq2seq(decoder: str, outputs: str = "") -> str:
    return SEQ2SEQ.replace("DECODER", decoder.strip("\n")).replace("OUTPUTS", "outputs:\n" + ANSWER + outputs)


def test_add_numbers_splits_at_the_encoder() -> None:
    plan = decoding_plan(load_model(ADD_NUMBERS))
    assert plan == DecodingPlan(
        output="answer", input="answer_in", start=12, end=13, max_length=5,
        decoder=("a_emb", "decoder", "context", "mix", "answer"), encoder=("q_emb", "encoder"),
        boundary=("encoder",), started=("state.3.h", "state.3.c"), states=(("decoder", ("state.3.h", "state.3.c")),))
    assert plan.has_encoder and plan.state_names == ("state.3.h", "state.3.c")


def test_a_next_token_model_is_all_decoder() -> None:
    plan = decoding_plan(model_from_text(NEXT_TOKEN))
    assert plan is not None
    assert plan.decoder == ("emb", "rnn", "rnn2", "next") and plan.encoder == () and plan.boundary == ()
    assert plan.started == () and not plan.has_encoder
    assert plan.states == (("rnn", ("state.1.h", "state.1.c")), ("rnn2", ("state.2.h",)))
    assert (plan.start, plan.end, plan.max_length) == (None, None, None)
    assert metadata_entry(plan, "m.step.onnx", None) == {
        "output": "next", "input": "text", "start": None, "end": None, "max_length": None, "encoder": None,
        "step": "m.step.onnx", "states": [["state.1.h", "state.1.h.next"], ["state.1.c", "state.1.c.next"],
                                          ["state.2.h", "state.2.h.next"]], "boundary": [], "started": []}


def test_a_model_without_feedback_has_no_plan() -> None:
    assert decoding_plan(model_from_text(NEXT_TOKEN.replace(", feedback: text", ""))) is None


def test_inputs_and_encoder_vectors_read_by_the_decoder_are_the_boundary() -> None:
    text = seq2seq("""
  - {name: gist, type: pool, mode: mean, input: encoder}
  - {name: spread, type: repeat_vector, input: gist, like: a_emb}
  - {name: both, type: concatenate, input: [a_emb, spread]}
  - {name: decoder, type: gru, units: 8, return_sequences: true, initial_state: encoder.state}
  - {name: context, type: attention, query: decoder, value: encoder}
  - {name: mix, type: concatenate, input: [decoder, context]}
""")
    plan = decoding_plan(model_from_text(text))
    assert plan is not None
    assert plan.encoder == ("q_emb", "encoder", "gist")
    assert plan.decoder == ("a_emb", "spread", "both", "decoder", "context", "mix", "answer")
    assert plan.boundary == ("gist", "encoder") and plan.started == ("state.6.h",)


def test_layers_the_fed_back_output_does_not_read_play_no_part() -> None:
    text = seq2seq("""
  - {name: decoder, type: gru, units: 8, return_sequences: true}
  - {name: backwards, type: gru, units: 8, return_sequences: true, bidirectional: true, input: a_emb}
  - {name: tagger, type: dense, units: 2, activation: softmax, input: backwards}
  - {name: topic, type: pool, mode: max, input: encoder}
  - {name: topic_out, type: dense, units: 3, activation: softmax}
""", "\n  tagger: {loss: sparse_categorical_crossentropy}\n  topic_out: {loss: sparse_categorical_crossentropy}")
    plan = decoding_plan(model_from_text(text.replace("  - {name: answer, type: dense", "  - {name: answer, type: dense, input: decoder")))
    assert plan is not None
    assert plan.decoder == ("a_emb", "decoder", "answer") and plan.encoder == () and not plan.has_encoder


REFUSED = [
    ("conv1d_wide", "  - {name: c, type: conv1d, filters: 4, kernel_size: 3}",
     "layers[3] (conv1d): decoding feeds 'answer' back into 'answer_in' one step at a time, so 'c' must have kernel_size 1 "
     "and stride 1: a wider convolution reads the steps after each one, which are not decoded yet"),
    ("summary", "  - {name: s, type: gru, units: 4}\n  - {name: r, type: repeat_vector, like: a_emb}",
     "layers[3] (gru): decoding feeds 'answer' back into 'answer_in' one step at a time, so 's' cannot sum the steps up "
     "into one vector: that reads the steps after each one, which are not decoded yet (set return_sequences: true)"),
]


@pytest.mark.parametrize(("name", "decoder", "line"), REFUSED, ids=[r[0] for r in REFUSED])
def test_check_refuses_decoder_layers_that_need_later_steps(name: str, decoder: str, line: str) -> None:
    with pytest.raises(SpecError) as err:
        model_from_text(seq2seq(decoder), "s.yaml")
    assert [ln.split(": ", 1)[1] for ln in err.value.lines()] == [line]


def test_a_conv1d_of_one_step_decodes() -> None:
    plan = decoding_plan(model_from_text(seq2seq("  - {name: c, type: conv1d, filters: 4, kernel_size: 1}")))
    assert plan is not None and plan.decoder == ("a_emb", "c", "answer")


def test_a_second_feedback_output_is_refused_at_its_feedback() -> None:
    text = seq2seq("  - {name: other, type: dense, units: 14, activation: softmax, input: a_emb}",
                   "\n  other: {loss: sparse_categorical_crossentropy, feedback: {input: answer_in, start: 12, end: 13, "
                   "max_length: 6}}")
    with pytest.raises(SpecError) as err:
        model_from_text(text.replace("  - {name: answer, type: dense", "  - {name: answer, type: dense, input: a_emb"), "s.yaml")
    assert [ln.split(": ", 1)[1] for ln in err.value.lines()] == [
        "outputs.other.feedback: decoding feeds back one output, 'answer'; 'other' would need a decoding loop of its own: "
        "remove its feedback"]
