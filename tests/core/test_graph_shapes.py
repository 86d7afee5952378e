"""Shape inference of the graph kinds (spec version 2), one row per kind and option, as
tests/core/test_shape_inference.py does for the chain kinds: output shape and
parameters from the inputs' shapes; then how the graph carries each value's time axis
and lengths (`rnnc.graph`), which no one kind knows.

Shapes carry the batch axis (`B`) and the symbolic time axis (`T`). Parameters are in
PyTorch's layout (`[out, in]`) and named `layers.<index>.<param>`; every row places its
layer at index 3 to check the prefix.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rnnc import build, ir
from rnnc.graph import infer_graph
from rnnc.layers.base import ShapeMismatch
from rnnc.loader import load_text

B, T = ir.BATCH, ir.TIME
INDEX = 3

# (id, layer, input shapes in the order the graph passes them, output shape, {param: shape})
NODES = [
    ("concatenate_vectors", ir.Concatenate(), [(B, 4), (B, 5)], (B, 9), {}),
    ("concatenate_three_sequences", ir.Concatenate(), [(B, T, 4), (B, T, 5), (B, T, 1)], (B, T, 10), {}),
    ("concatenate_fixed_steps", ir.Concatenate(), [(B, 7, 2), (B, 7, 3)], (B, 7, 5), {}),
    ("add_vectors", ir.Add(), [(B, 4), (B, 4)], (B, 4), {}),
    ("add_sequences", ir.Add(), [(B, T, 4), (B, T, 4), (B, T, 4)], (B, T, 4), {}),
    ("multiply_sequences", ir.Multiply(), [(B, T, 3), (B, T, 3)], (B, T, 3), {}),
    ("average_vectors", ir.Average(), [(B, 6), (B, 6)], (B, 6), {}),
    ("repeat_vector_n", ir.RepeatVector(n=3), [(B, 5)], (B, 3, 5), {}),
    ("repeat_vector_like_variable", ir.RepeatVector(like="enc"), [(B, 5), (B, T, 2)], (B, T, 5), {}),
    ("repeat_vector_like_fixed", ir.RepeatVector(like="enc"), [(B, 5), (B, 9, 2)], (B, 9, 5), {}),
    ("attention_dot_sequence_query", ir.Attention(query="dec"), [(B, T, 8), (B, 7, 8)], (B, 7, 8), {}),
    ("attention_dot_scaled", ir.Attention(scale=True, query="dec"), [(B, T, 8), (B, T, 8)], (B, T, 8), {}),
    ("attention_dot_vector_query", ir.Attention(query="h"), [(B, T, 8), (B, 8)], (B, 8), {}),
    ("attention_general", ir.Attention(score="general", query="dec"), [(B, T, 8), (B, T, 4)], (B, T, 8),
     {"weight": (4, 8)}),
    ("attention_additive", ir.Attention(score="additive", units=5, query="dec"), [(B, T, 8), (B, 6, 4)], (B, 6, 8),
     {"weight_query": (5, 4), "weight_value": (5, 8), "v": (5,)}),
    ("attention_pooling", ir.Attention(), [(B, T, 8)], (B, 8), {"query": (8,)}),
    ("attention_pooling_general", ir.Attention(score="general"), [(B, 10, 8)], (B, 8), {"query": (8,), "weight": (8, 8)}),
    ("attention_pooling_additive", ir.Attention(score="additive", units=3), [(B, T, 8)], (B, 8),
     {"query": (8,), "weight_query": (3, 8), "weight_value": (3, 8), "v": (3,)}),
    ("normalization_sequence", ir.Normalization(), [(B, T, 6)], (B, T, 6), {"mean": (6,), "variance": (6,)}),
    ("normalization_features", ir.Normalization(), [(B, 6)], (B, 6), {"mean": (6,), "variance": (6,)}),
]


@pytest.mark.parametrize(("layer", "shapes", "out", "params"), [row[1:] for row in NODES], ids=[row[0] for row in NODES])
def test_output_shape_and_params(layer: ir.Layer, shapes: list[ir.Shape], out: ir.Shape,
                                 params: dict[str, tuple[int, ...]]) -> None:
    assert layer.output_shapes(tuple(shapes)) == out
    got = layer.params_for(f"layers.{INDEX}", tuple(shapes))
    assert {p.name: p.shape for p in got} == {f"layers.{INDEX}.{k}": v for k, v in params.items()}


def test_every_graph_kind_has_a_row() -> None:
    assert {row[1].kind for row in NODES} == set(ir.GRAPH_KINDS)


def test_normalization_statistics_are_not_trained() -> None:
    params = ir.Normalization().params_for("layers.0", ((B, T, 6),))
    assert [(p.name, p.trainable, p.init) for p in params] == [
        ("layers.0.mean", False, "zeros"), ("layers.0.variance", False, "ones")]


# (id, layer, input shapes, message)
REFUSED = [
    ("concatenate_vector_and_sequence", ir.Concatenate(), [(B, T, 4), (B, 5)],
     "concatenate takes vectors [features] or sequences [timesteps, features] alike, got [time, 4], [5] "
     "(repeat a vector over time with repeat_vector first)"),
    ("concatenate_other_fixed_steps", ir.Concatenate(), [(B, 7, 4), (B, 8, 4)],
     "concatenate takes sequences of one time axis, got [7, 4], [8, 4]"),
    ("add_other_sizes", ir.Add(), [(B, 4), (B, 5)], "add takes inputs of one shape, got [4], [5]"),
    ("average_other_sizes", ir.Average(), [(B, T, 4), (B, T, 2)], "average takes inputs of one shape, got [time, 4], [time, 2]"),
    ("repeat_vector_of_a_sequence", ir.RepeatVector(n=2), [(B, T, 4)], "expects a vector [features], got [time, 4]"),
    ("repeat_vector_like_a_vector", ir.RepeatVector(like="v"), [(B, 4), (B, 3)],
     "like: 'v' must name a sequence [timesteps, features], got [3]"),
    ("attention_on_a_vector", ir.Attention(), [(B, 8)], "the value must be a sequence [timesteps, features], got [8]"),
    ("attention_dot_other_sizes", ir.Attention(query="q"), [(B, T, 8), (B, T, 4)],
     "score dot needs query and value of one size, got query [time, 4] and value [time, 8]; "
     "use score: general or additive for different sizes"),
    ("attention_additive_without_units", ir.Attention(score="additive", query="q"), [(B, T, 8), (B, 8)],
     "score additive needs units >= 1"),
    ("normalization_without_features", ir.Normalization(), [(B,)], "expects input with a feature axis, got []"),
]


@pytest.mark.parametrize(("layer", "shapes", "message"), [row[1:] for row in REFUSED], ids=[row[0] for row in REFUSED])
def test_output_shapes_refuse(layer: ir.Layer, shapes: list[ir.Shape], message: str) -> None:
    with pytest.raises(ShapeMismatch) as caught:
        layer.output_shapes(tuple(shapes))
    assert str(caught.value) == message


# --- the time axis and lengths of each value, over the graph ------------------------------

def values_of(inputs: dict[str, Any], layers: list[dict[str, Any]]) -> dict[str, tuple[ir.Shape, str | None, str | None]]:
    """Each value's (shape, time axis, lengths) as `infer_graph` follows them."""
    doc = load_text(json.dumps({"rnnc": 2, "name": "t", "inputs": inputs, "layers": layers}), "t.yaml")
    built = {name: build.build_graph_input(name, section) for name, section in inputs.items()}
    result = infer_graph(doc, built, [build.build_layer(s) for s in layers], None, {})
    assert not result.problems, [str(p) for p in result.problems]
    return {key: (v.shape, v.time, v.lengths) for key, v in result.values.items()}


SEQ = {"x": {"shape": [None, 3]}}
IDS = {"ids": {"shape": [10], "dtype": "int64"}}
# (id, inputs, layers, {key: (shape, time axis, lengths)})
FLOWS = [
    ("variable_input_has_its_own_lengths", SEQ, [{"name": "d", "type": "dense", "units": 2}],
     {"x": ((B, T, 3), "x", "x"), "d": ((B, T, 2), "x", "x")}),
    ("fixed_ids_with_mask_zero_get_lengths", IDS, [{"name": "e", "type": "embedding", "vocab_size": 5, "dim": 2, "mask_zero": True}],
     {"ids": ((B, 10), "ids", None), "e": ((B, 10, 2), "ids", "ids")}),
    ("fixed_ids_without_mask_zero_have_none", IDS, [{"name": "e", "type": "embedding", "vocab_size": 5, "dim": 2}],
     {"ids": ((B, 10), "ids", None), "e": ((B, 10, 2), "ids", None)}),
    ("last_step_drops_time_and_lengths", SEQ, [{"name": "r", "type": "gru", "units": 4}], {"x": ((B, T, 3), "x", "x"), "r": ((B, 4), None, None)}),
    ("return_sequences_keeps_them", SEQ, [{"name": "r", "type": "gru", "units": 4, "return_sequences": True}],
     {"x": ((B, T, 3), "x", "x"), "r": ((B, T, 4), "x", "x")}),
    ("conv1d_one_step_per_step_keeps_them", SEQ, [{"name": "c", "type": "conv1d", "filters": 2, "kernel_size": 3}],
     {"x": ((B, T, 3), "x", "x"), "c": ((B, T, 2), "x", "x")}),
    ("conv1d_with_stride_has_its_own", SEQ, [{"name": "c", "type": "conv1d", "filters": 2, "kernel_size": 3, "stride": 2}],
     {"x": ((B, T, 3), "x", "x"), "c": ((B, "ceil(time/2)", 2), "c", "c")}),
    ("repeat_vector_n_has_its_own_steps_and_no_lengths", SEQ,
     [{"name": "r", "type": "gru", "units": 4}, {"name": "n", "type": "repeat_vector", "n": 5}],
     {"x": ((B, T, 3), "x", "x"), "r": ((B, 4), None, None), "n": ((B, 5, 4), "n", None)}),
    ("repeat_vector_like_takes_like_s", SEQ,
     [{"name": "r", "type": "gru", "units": 4}, {"name": "l", "type": "repeat_vector", "like": "x"},
      {"name": "j", "type": "concatenate", "input": ["l", "x"]}],
     {"x": ((B, T, 3), "x", "x"), "r": ((B, 4), None, None), "l": ((B, T, 4), "x", "x"), "j": ((B, T, 7), "x", "x")}),
    ("attention_takes_the_query_s", {**SEQ, **IDS},
     [{"name": "e", "type": "embedding", "input": "ids", "vocab_size": 5, "dim": 3, "mask_zero": True},
      {"name": "a", "type": "attention", "value": "x", "query": "e"}],
     {"x": ((B, T, 3), "x", "x"), "ids": ((B, 10), "ids", None), "e": ((B, 10, 3), "ids", "ids"), "a": ((B, 10, 3), "ids", "ids")}),
    ("attention_with_a_vector_query_is_a_vector", SEQ,
     [{"name": "h", "type": "lstm", "units": 3}, {"name": "a", "type": "attention", "value": "x", "query": "h"}],
     {"x": ((B, T, 3), "x", "x"), "h": ((B, 3), None, None), "a": ((B, 3), None, None)}),
    ("pool_drops_them", SEQ, [{"name": "p", "type": "pool", "mode": "mean"}], {"x": ((B, T, 3), "x", "x"), "p": ((B, 3), None, None)}),
]


@pytest.mark.parametrize(("inputs", "layers", "expected"), [row[1:] for row in FLOWS], ids=[row[0] for row in FLOWS])
def test_time_axis_and_lengths_flow(inputs: dict[str, Any], layers: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    assert values_of(inputs, layers) == expected


def test_a_node_knows_what_it_reads_and_whose_state_starts_it() -> None:
    layers = [{"name": "enc", "type": "lstm", "units": 4, "return_sequences": True},
              {"name": "dec", "type": "lstm", "units": 4, "input": "x", "initial_state": "enc.state", "return_sequences": True},
              {"name": "ctx", "type": "attention", "value": "enc", "query": "dec", "score": "general"},
              {"type": "concatenate", "input": ["dec", "ctx"]}]
    doc = load_text(json.dumps({"rnnc": 2, "name": "t", "inputs": SEQ, "layers": layers}), "t.yaml")
    result = infer_graph(doc, {"x": build.build_graph_input("x", SEQ["x"])}, [build.build_layer(s) for s in layers], None, {})
    assert [(n.key, n.sources, n.state_from, n.masked) for n in result.nodes] == [
        ("enc", ("x",), "", True), ("dec", ("x",), "enc", True), ("ctx", ("enc", "dec"), "", True),
        ("layers[3]", ("dec", "ctx"), "", True)]
    assert result.nodes[2].input_shapes == ((B, T, 4), (B, T, 4))
