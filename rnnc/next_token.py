"""Which graphs are next-token models, the one rule that the spec's checks
(`rnnc.graph_rules`) and the text reader (`rnnc.data_corpus`) share.

A next-token model has one input, a sequence of token ids, and every one of its outputs
feeds that input back (`feedback: text`): the output at step t predicts the input's
step t+1, so raw text alone trains it. Needs nothing beyond the IR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from . import ir

CORPUS_SUFFIXES = (".txt", ".csv", ".jsonl")  # a whole text, or one text per row


def fed_back_input(inputs: Mapping[str, ir.Input], outputs: Sequence[ir.Output]) -> str | None:
    """The name of the only input when it is an int64 sequence that every output feeds
    back, else None."""
    if len(inputs) != 1 or not outputs:
        return None
    (name, inp), = inputs.items()
    if inp.dtype != "int64" or not inp.sequence:
        return None
    return name if all(out.feedback is not None and out.feedback.input == name for out in outputs) else None


def next_token_input(model: ir.Model) -> str | None:
    """The input of a next-token graph, else None (a v1 chain has no feedback)."""
    if model.graph is None:
        return None
    return fed_back_input({inp.name: inp for inp in model.inputs}, model.outputs)
