"""DESIGN.md's attention sequence-to-sequence graph (two numbers added, the answer decoded
token by token) at whatever size a test needs, as spec text. Token ids: 0 pads, 1-10 are
the digits, 11 is '+', 12 starts an answer and 13 ends it. Any test directory imports it
as `from seq2seq_spec import seq2seq_spec` (tests/shared is on pytest's pythonpath)."""

from __future__ import annotations


def seq2seq_spec(*, name: str = "add-numbers", cell: str = "lstm", units: int = 4, dim: int = 4,
                 max_length: int = 5, metrics: bool = True, rest: str = "optimizer: adam\n") -> str:
    """The v2 spec: embedded question -> `cell` encoder whose state starts the `cell`
    decoder over the embedded answer so far -> attention over the encoder's steps ->
    softmax over the 14 ids, decoded by feedback up to `max_length` tokens. `rest` is the
    spec's tail (optimizer, training, data)."""
    scored = "    metrics: [accuracy]\n" if metrics else ""
    return f"""\
rnnc: 2
name: {name}
inputs:
  question: {{shape: [null], dtype: int64}}
  answer_in: {{shape: [null], dtype: int64}}
layers:
  - {{name: q_emb, type: embedding, input: question, vocab_size: 14, dim: {dim}, mask_zero: true}}
  - {{name: encoder, type: {cell}, units: {units}, return_sequences: true}}
  - {{name: a_emb, type: embedding, input: answer_in, vocab_size: 14, dim: {dim}, mask_zero: true}}
  - {{name: decoder, type: {cell}, units: {units}, return_sequences: true, initial_state: encoder.state}}
  - {{name: context, type: attention, query: decoder, value: encoder}}
  - {{name: mix, type: concatenate, input: [decoder, context]}}
  - {{name: answer, type: dense, units: 14, activation: softmax}}
outputs:
  answer:
    loss: sparse_categorical_crossentropy
{scored}    feedback: {{input: answer_in, start: 12, end: 13, max_length: {max_length}}}
{rest}"""
