"""The semantic rule of `training.bucket_by_length`: where sorting batches by length means something.

Bucketing draws each epoch's batches from length-sorted chunks of its shuffled order,
so that a batch pads less (rnnc_torch.batching). It needs sequences whose lengths
differ: a chain with a variable-length input (`input.shape [null, ...]`), shuffled
(it regroups the shuffled order; unshuffled, there is none to regroup). A graph
(spec version 2) trains every batch at the full time axis, so it is refused there
rather than ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import Problem

if TYPE_CHECKING:
    from .graph_rules import GraphParts
    from .validate import Parts

WHERE = ("training", "bucket_by_length")


def chain_buckets(parts: Parts) -> list[Problem]:
    """A chain (spec version 1) with `training.bucket_by_length`: a variable-length input."""
    if parts.training is None or not parts.training.bucket_by_length:
        return []
    problems = []
    if not parts.training.shuffle:
        problems.append(parts.doc.problem(WHERE, "bucket_by_length draws batches from each epoch's shuffled order, "
                                                 "but training.shuffle is false: drop one of them"))
    if parts.input is not None and not (parts.input.shape and parts.input.shape[0] is None):
        problems.append(parts.doc.problem(WHERE, "bucket_by_length sorts batches by sequence length, but the spec's input "
                                                 "has a fixed length (use input.shape [null, ...] and give lengths)"))
    return problems


def graph_buckets(parts: GraphParts) -> list[Problem]:
    """A graph (spec version 2) does not bucket by length."""
    if parts.training is None or not parts.training.bucket_by_length:
        return []
    return [parts.doc.problem(WHERE, "bucket_by_length applies to a chain (spec version 1); a graph trains "
                                     "each batch at its full time axis")]
