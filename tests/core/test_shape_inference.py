"""Shape inference, one row per layer kind and option: output shape and parameters.

Shapes carry the batch axis (`B`) and the symbolic time axis (`T`) where the length is
only known at run time. Parameters are in PyTorch's layout and named
`layers.<index>.<param>`; every row places its layer at index 3 to check the prefix.
"""

from __future__ import annotations

import pytest

from rnnc import ir
from rnnc.shapes import ShapeMismatch, infer_node, infer_nodes

B, T = ir.BATCH, ir.TIME
INDEX = 3

# (id, layer, input shape, output shape, {param: shape})
NODES = [
    ("embedding", ir.Embedding(100, 8), (B, 10), (B, 10, 8), {"weight": (100, 8)}),
    ("embedding_variable_time", ir.Embedding(100, 8, mask_zero=True), (B, T), (B, T, 8), {"weight": (100, 8)}),
    ("simple_rnn", ir.SimpleRNN(32), (B, 10, 1), (B, 32),
     {"weight_ih": (32, 1), "weight_hh": (32, 32), "bias_ih": (32,), "bias_hh": (32,)}),
    ("simple_rnn_relu_sequences", ir.SimpleRNN(4, activation="relu", return_sequences=True), (B, 10, 3), (B, 10, 4),
     {"weight_ih": (4, 3), "weight_hh": (4, 4), "bias_ih": (4,), "bias_hh": (4,)}),
    ("lstm", ir.LSTM(16), (B, T, 3), (B, 16),
     {"weight_ih": (64, 3), "weight_hh": (64, 16), "bias_ih": (64,), "bias_hh": (64,)}),
    ("lstm_dropout_changes_no_shape", ir.LSTM(16, dropout=0.5), (B, 7, 3), (B, 16),
     {"weight_ih": (64, 3), "weight_hh": (64, 16), "bias_ih": (64,), "bias_hh": (64,)}),
    ("lstm_bidirectional_sequences", ir.LSTM(16, bidirectional=True, return_sequences=True), (B, T, 3), (B, T, 32),
     {"weight_ih": (64, 3), "weight_hh": (64, 16), "bias_ih": (64,), "bias_hh": (64,),
      "weight_ih_reverse": (64, 3), "weight_hh_reverse": (64, 16), "bias_ih_reverse": (64,), "bias_hh_reverse": (64,)}),
    ("gru", ir.GRU(8), (B, 5, 2), (B, 8),
     {"weight_ih": (24, 2), "weight_hh": (24, 8), "bias_ih": (24,), "bias_hh": (24,)}),
    ("gru_no_bias", ir.GRU(8, use_bias=False), (B, 5, 2), (B, 8), {"weight_ih": (24, 2), "weight_hh": (24, 8)}),
    ("gru_bidirectional_no_bias", ir.GRU(8, bidirectional=True, use_bias=False), (B, 5, 2), (B, 16),
     {"weight_ih": (24, 2), "weight_hh": (24, 8), "weight_ih_reverse": (24, 2), "weight_hh_reverse": (24, 8)}),
    ("simple_rnn_bidirectional", ir.SimpleRNN(5, bidirectional=True), (B, 5, 2), (B, 10),
     {"weight_ih": (5, 2), "weight_hh": (5, 5), "bias_ih": (5,), "bias_hh": (5,),
      "weight_ih_reverse": (5, 2), "weight_hh_reverse": (5, 5), "bias_ih_reverse": (5,), "bias_hh_reverse": (5,)}),
    ("dense", ir.Dense(4), (B, 32), (B, 4), {"weight": (4, 32), "bias": (4,)}),
    ("dense_per_timestep", ir.Dense(4, activation="softmax"), (B, T, 32), (B, T, 4), {"weight": (4, 32), "bias": (4,)}),
    ("dense_no_bias", ir.Dense(4, use_bias=False), (B, 32), (B, 4), {"weight": (4, 32)}),
    ("dropout", ir.Dropout(0.3), (B, 10, 3), (B, 10, 3), {}),
    ("activation", ir.Activation("gelu"), (B, 6), (B, 6), {}),
    ("layer_norm_sequence", ir.LayerNorm(), (B, 10, 6), (B, 10, 6), {"weight": (6,), "bias": (6,)}),
    ("layer_norm_features", ir.LayerNorm(eps=1e-3), (B, 6), (B, 6), {"weight": (6,), "bias": (6,)}),
    ("conv1d_same", ir.Conv1D(8, 3), (B, 10, 3), (B, 10, 8), {"weight": (8, 3, 3), "bias": (8,)}),
    ("conv1d_same_stride_2_even", ir.Conv1D(8, 3, stride=2), (B, 10, 3), (B, 5, 8), {"weight": (8, 3, 3), "bias": (8,)}),
    ("conv1d_same_stride_2_odd", ir.Conv1D(8, 3, stride=2), (B, 11, 3), (B, 6, 8), {"weight": (8, 3, 3), "bias": (8,)}),
    ("conv1d_valid", ir.Conv1D(8, 3, padding="valid"), (B, 10, 3), (B, 8, 8), {"weight": (8, 3, 3), "bias": (8,)}),
    ("conv1d_valid_stride_2", ir.Conv1D(8, 3, stride=2, padding="valid"), (B, 10, 3), (B, 4, 8),
     {"weight": (8, 3, 3), "bias": (8,)}),
    ("conv1d_valid_exact_kernel", ir.Conv1D(2, 5, padding="valid", activation="relu"), (B, 5, 1), (B, 1, 2),
     {"weight": (2, 1, 5), "bias": (2,)}),
    ("conv1d_same_variable_time", ir.Conv1D(8, 3), (B, T, 3), (B, T, 8), {"weight": (8, 3, 3), "bias": (8,)}),
    ("conv1d_same_stride_variable_time", ir.Conv1D(8, 3, stride=2), (B, T, 3), (B, "ceil(time/2)", 8),
     {"weight": (8, 3, 3), "bias": (8,)}),
    ("conv1d_valid_variable_time", ir.Conv1D(8, 3, padding="valid"), (B, T, 3), (B, "(time-3)//1+1", 8),
     {"weight": (8, 3, 3), "bias": (8,)}),
    ("pool_last", ir.Pool("last"), (B, 10, 6), (B, 6), {}),
    ("pool_mean", ir.Pool("mean"), (B, T, 6), (B, 6), {}),
    ("pool_max", ir.Pool("max"), (B, T, 6), (B, 6), {}),
    ("masking", ir.Masking(-1.0), (B, T, 6), (B, T, 6), {}),
]


@pytest.mark.parametrize(("layer", "shape", "out", "params"), [row[1:] for row in NODES], ids=[row[0] for row in NODES])
def test_infer_node(layer: ir.Layer, shape: ir.Shape, out: ir.Shape, params: dict[str, tuple[int, ...]]) -> None:
    node = infer_node(INDEX, layer, shape, masked=False)
    assert node.output_shape == out
    assert node.input_shape == shape
    assert {p.name: p.shape for p in node.params} == {f"layers.{INDEX}.{k}": v for k, v in params.items()}
    assert node.param_count == sum(ir.Param("", s).size for s in params.values())


def test_every_layer_kind_has_a_row() -> None:
    assert {row[1].kind for row in NODES} == set(ir.LAYER_KINDS)


# (id, layer, input shape, message)
MISMATCHES = [
    ("embedding_on_features", ir.Embedding(10, 4), (B, 10, 1), "expects token ids [timesteps] (input dtype int64), got [10, 1]"),
    ("recurrent_on_vector", ir.LSTM(4), (B, 32), "expects input [timesteps, features], got [32]"),
    ("conv1d_on_vector", ir.Conv1D(4, 3), (B, 32), "expects input [timesteps, features], got [32]"),
    ("pool_on_vector", ir.Pool("max"), (B, 32), "expects input [timesteps, features], got [32]"),
    ("masking_on_vector", ir.Masking(), (B, 32), "expects input [timesteps, features], got [32]"),
    ("conv1d_valid_too_short", ir.Conv1D(4, 5, padding="valid"), (B, 4, 2),
     "with padding 'valid' needs at least kernel_size=5 timesteps, got [4, 2]"),
]


@pytest.mark.parametrize(("layer", "shape", "message"), [row[1:] for row in MISMATCHES], ids=[row[0] for row in MISMATCHES])
def test_infer_node_refuses(layer: ir.Layer, shape: ir.Shape, message: str) -> None:
    with pytest.raises(ShapeMismatch) as caught:
        infer_node(0, layer, shape, masked=False)
    assert str(caught.value) == message


def test_conv1d_valid_on_variable_time_is_left_to_run_time() -> None:
    node = infer_node(0, ir.Conv1D(4, 5, padding="valid"), (B, T, 2), masked=True)
    assert node.output_shape == (B, "(time-5)//1+1", 4)


# (id, input, layers, output shapes per node, masked per node)
STACKS = [
    ("seed_model", ir.Input((10, 1)), [ir.SimpleRNN(32), ir.Dense(1, "sigmoid")],
     [(B, 32), (B, 1)], [False, False]),
    ("dense_per_timestep_after_sequences", ir.Input((10, 3)), [ir.GRU(8, return_sequences=True), ir.Dense(2)],
     [(B, 10, 8), (B, 10, 2)], [False, False]),
    ("variable_length_masks_until_time_is_reduced", ir.Input((None, 3)),
     [ir.LSTM(8, return_sequences=True), ir.Dropout(0.1), ir.LSTM(4), ir.Dense(1)],
     [(B, T, 8), (B, T, 8), (B, 4), (B, 1)], [True, True, True, False]),
    ("mask_zero_embedding_starts_masking", ir.Input((20,), "int64"),
     [ir.Embedding(50, 8, mask_zero=True), ir.GRU(4, bidirectional=True), ir.Dense(3, "softmax")],
     [(B, 20, 8), (B, 8), (B, 3)], [True, True, False]),
    ("fixed_length_ids_without_mask_zero_are_unmasked", ir.Input((20,), "int64"),
     [ir.Embedding(50, 8), ir.GRU(4), ir.Dense(1)], [(B, 20, 8), (B, 4), (B, 1)], [False, False, False]),
    ("pool_ends_masking", ir.Input((None, 2)), [ir.Conv1D(4, 3), ir.Pool("mean"), ir.LayerNorm(), ir.Dense(1)],
     [(B, T, 4), (B, 4), (B, 4), (B, 1)], [True, True, False, False]),
]


@pytest.mark.parametrize(("input_", "layers", "shapes", "masked"), [row[1:] for row in STACKS], ids=[row[0] for row in STACKS])
def test_infer_nodes_chains_shapes_and_masking(input_: ir.Input, layers: list[ir.Layer], shapes: list[ir.Shape], masked: list[bool]) -> None:
    nodes, problems = infer_nodes(input_, layers)
    assert problems == []
    assert [n.output_shape for n in nodes] == shapes
    assert [n.masked for n in nodes] == masked
    assert [n.index for n in nodes] == list(range(len(layers)))
    assert nodes[0].input_shape == input_.tensor_shape


# (id, input, layers, (index of the bad layer, message))
BAD_STACKS = [
    ("recurrent_after_return_sequences_false", ir.Input((10, 3)), [ir.LSTM(8), ir.LSTM(4)],
     (1, "expects input [timesteps, features], got [8]; the previous lstm returns only its last step; set return_sequences: true on layers[0]")),
    ("recurrent_after_dropout_after_return_sequences_false", ir.Input((10, 3)), [ir.GRU(8, return_sequences=True), ir.GRU(8), ir.Dropout(0.1), ir.SimpleRNN(4)],
     (3, "expects input [timesteps, features], got [8]; the previous gru returns only its last step; set return_sequences: true on layers[1]")),
    ("recurrent_after_pool", ir.Input((10, 3)), [ir.Pool("mean"), ir.LSTM(4)], (1, "expects input [timesteps, features], got [3]")),
    ("embedding_after_float_input", ir.Input((10, 3)), [ir.Embedding(10, 4)],
     (0, "expects token ids [timesteps], got float input [10, 3]; for token ids set input.dtype: int64 and input.shape: [10]")),
    ("embedding_after_variable_length_float_input", ir.Input((None, 3)), [ir.Embedding(10, 4)],
     (0, "expects token ids [timesteps], got float input [time, 3]; for token ids set input.dtype: int64 and input.shape: [null]")),
    ("embedding_after_features", ir.Input((10,), "int64"), [ir.Embedding(10, 4), ir.Pool("max"), ir.Embedding(10, 4)],
     (2, "expects token ids [timesteps] (input dtype int64), got [4]")),
    ("token_ids_into_dense", ir.Input((None,), "int64"), [ir.Dense(4)],
     (0, "expects float features, got token ids [time] (input dtype int64); start with an embedding layer")),
    ("pool_on_2d", ir.Input((10, 3)), [ir.GRU(4), ir.Pool("last")],
     (1, "expects input [timesteps, features], got [4]; the previous gru returns only its last step; set return_sequences: true on layers[0]")),
]


@pytest.mark.parametrize(("input_", "layers", "problem"), [row[1:] for row in BAD_STACKS], ids=[row[0] for row in BAD_STACKS])
def test_infer_nodes_stops_at_the_first_mismatch(input_: ir.Input, layers: list[ir.Layer], problem: tuple[int, str]) -> None:
    nodes, problems = infer_nodes(input_, layers)
    assert problems == [problem]
    assert len(nodes) == problem[0]


def test_seed_model_has_1153_parameters() -> None:
    nodes, _ = infer_nodes(ir.Input((10, 1)), [ir.SimpleRNN(32), ir.Dense(1, "sigmoid")])
    assert [n.param_count for n in nodes] == [32 * 1 + 32 * 32 + 32 + 32, 32 + 1]
    assert sum(n.param_count for n in nodes) == 1153
