"""Padding never changes a result: a padded batch with lengths gives, for each
sequence's real steps, what that sequence gives alone and unpadded."""

from __future__ import annotations

import pytest
import torch

import rnnc_torch
from rnnc import ir

LENGTHS = [9, 5, 1, 8, 3]  # the longest first and in the middle: packing must unsort
VOCAB = 13

CASES = [
    ("simple_rnn", [ir.SimpleRNN(4)]),
    ("simple_rnn_relu", [ir.SimpleRNN(4, activation="relu")]),
    ("simple_rnn_relu_seq_bidir", [ir.SimpleRNN(4, activation="relu", return_sequences=True, bidirectional=True)]),
    ("lstm", [ir.LSTM(4)]),
    ("lstm_seq", [ir.LSTM(4, return_sequences=True)]),
    ("lstm_bidir", [ir.LSTM(4, bidirectional=True)]),
    ("lstm_bidir_seq_no_bias", [ir.LSTM(4, bidirectional=True, return_sequences=True, use_bias=False)]),
    ("gru", [ir.GRU(4)]),
    ("gru_bidir", [ir.GRU(4, bidirectional=True)]),
    ("gru_seq", [ir.GRU(4, return_sequences=True)]),
    ("fused_lstm_bidir", [ir.LSTM(4, return_sequences=True, bidirectional=True), ir.LSTM(4, bidirectional=True)]),
    ("fused_gru_seq", [ir.GRU(3, return_sequences=True), ir.GRU(3, return_sequences=True), ir.GRU(3, return_sequences=True)]),
    ("pool_last", [ir.Dense(4, activation="tanh"), ir.Pool("last")]),
    ("pool_mean", [ir.Dense(4, activation="tanh"), ir.Pool("mean")]),
    ("pool_max", [ir.Dense(4, activation="tanh"), ir.Pool("max")]),
    ("lstm_seq_pool_mean", [ir.LSTM(4, return_sequences=True), ir.Pool("mean")]),
    ("conv_same", [ir.Conv1D(4, 3)]),
    ("conv_same_even_kernel", [ir.Conv1D(4, 4)]),
    ("conv_same_stride2", [ir.Conv1D(4, 3, stride=2)]),
    ("conv_same_stride3_k5", [ir.Conv1D(4, 5, stride=3)]),
    ("conv_same_stride2_k1", [ir.Conv1D(4, 1, stride=2)]),
    ("conv_valid", [ir.Conv1D(4, 1, padding="valid")]),
    ("conv_same_then_gru", [ir.Conv1D(4, 3, stride=2), ir.GRU(3)]),
    ("conv_same_then_pool_max", [ir.Conv1D(4, 2, stride=2, activation="relu"), ir.Pool("max")]),
    ("dense_layer_norm_seq", [ir.Dense(4), ir.LayerNorm(), ir.Activation("softmax")]),
]

CONV_VALID_CASES = [  # valid padding needs at least kernel_size steps in every sequence
    ("conv_valid_k3", [ir.Conv1D(4, 3, padding="valid")]),
    ("conv_valid_k3_stride2_lstm", [ir.Conv1D(4, 3, stride=2, padding="valid"), ir.LSTM(3, return_sequences=True)]),
]


def pad(rows: list[torch.Tensor]) -> torch.Tensor:
    """Rows padded at the end: float rows with large junk, so a leak would show; id
    rows with zeros, as mask_zero needs."""
    batch = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
    if batch.is_floating_point():
        real = torch.arange(batch.shape[1])[None, :] < torch.tensor([len(r) for r in rows])[:, None]
        batch = torch.where(real[:, :, None], batch, 100 * torch.randn_like(batch))
    return batch


def assert_padding_invariant(module: torch.nn.Module, rows: list[torch.Tensor], lengths: torch.Tensor | None) -> None:
    batch = module(pad(rows), lengths)
    for i, row in enumerate(rows):
        alone = module(row[None])[0]
        if alone.dim() == 2:  # a sequence output: compare the real steps, padded ones are zero
            torch.testing.assert_close(batch[i, : alone.shape[0]], alone, rtol=0, atol=1e-6)
            assert torch.all(batch[i, alone.shape[0] :] == 0)
        else:
            torch.testing.assert_close(batch[i], alone, rtol=0, atol=1e-6)


@pytest.mark.parametrize("layers", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_padded_batch_equals_each_sequence_alone(make_model, layers):
    module = rnnc_torch.build_module(make_model(layers, (None, 3))).eval()
    rows = [torch.randn(n, 3) for n in LENGTHS]
    assert_padding_invariant(module, rows, torch.tensor(LENGTHS))


@pytest.mark.parametrize("layers", [c[1] for c in CONV_VALID_CASES], ids=[c[0] for c in CONV_VALID_CASES])
def test_padded_batch_equals_each_sequence_alone_conv_valid(make_model, layers):
    module = rnnc_torch.build_module(make_model(layers, (None, 3))).eval()
    lengths = [9, 5, 3, 8, 4]
    rows = [torch.randn(n, 3) for n in lengths]
    assert_padding_invariant(module, rows, torch.tensor(lengths))


@pytest.mark.parametrize(
    "layers",
    [
        [ir.Embedding(VOCAB, 4, mask_zero=True), ir.LSTM(3)],
        [ir.Embedding(VOCAB, 4, mask_zero=True), ir.GRU(3, return_sequences=True, bidirectional=True)],
        [ir.Embedding(VOCAB, 4, mask_zero=True), ir.Pool("mean")],
    ],
    ids=["lstm", "gru_seq_bidir", "pool_mean"],
)
def test_mask_zero_derives_lengths_from_trailing_zero_ids(make_model, layers):
    module = rnnc_torch.build_module(make_model(layers, (None,), "int64")).eval()
    rows = [torch.randint(1, VOCAB, (n,)) for n in LENGTHS]
    assert_padding_invariant(module, rows, lengths=None)


def test_mask_zero_keeps_interior_zero_ids(make_model):
    module = rnnc_torch.build_module(make_model([ir.Embedding(VOCAB, 4, mask_zero=True), ir.GRU(3)], (None,), "int64")).eval()
    padded = module(torch.tensor([[3, 0, 2, 0, 0]]))
    torch.testing.assert_close(padded, module(torch.tensor([[3, 0, 2]])), rtol=0, atol=1e-6)
    assert not torch.allclose(padded, module(torch.tensor([[3]])))


def test_explicit_lengths_win_over_mask_zero(make_model):
    module = rnnc_torch.build_module(make_model([ir.Embedding(VOCAB, 4, mask_zero=True), ir.GRU(3)], (None,), "int64")).eval()
    ids = torch.tensor([[3, 5, 2, 0, 0]])
    torch.testing.assert_close(module(ids, torch.tensor([2])), module(ids[:, :2]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("layers", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_full_lengths_equal_no_lengths(make_model, layers):
    # lengths None skips packing: the fast path must compute the same function
    module = rnnc_torch.build_module(make_model(layers, (None, 3))).eval()
    x = torch.randn(4, 6, 3)
    torch.testing.assert_close(module(x, torch.full((4,), 6)), module(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "layers",
    [[ir.LSTM(3)], [ir.GRU(3, bidirectional=True, return_sequences=True)], [ir.Pool("max")], [ir.Pool("last")], [ir.Pool("mean")]],
    ids=["lstm", "gru_bidir_seq", "pool_max", "pool_last", "pool_mean"],
)
def test_empty_sequence_gives_zeros(make_model, layers):
    module = rnnc_torch.build_module(make_model(layers, (None, 3))).eval()
    out = module(torch.randn(2, 4, 3), torch.tensor([4, 0]))
    assert torch.all(out[1] == 0)
    assert not torch.all(out[0] == 0)


def test_bidirectional_last_step_is_forward_end_and_backward_start(make_model):
    seq = rnnc_torch.build_module(make_model([ir.LSTM(3, bidirectional=True, return_sequences=True)], (None, 2))).eval()
    last = rnnc_torch.build_module(make_model([ir.LSTM(3, bidirectional=True)], (None, 2))).eval()
    last.load_ir_state(seq.ir_state())
    x, lengths = torch.randn(2, 5, 2), torch.tensor([5, 3])
    outputs = seq(x, lengths)
    expected = torch.stack([torch.cat([outputs[i, n - 1, :3], outputs[i, 0, 3:]]) for i, n in enumerate([5, 3])])
    torch.testing.assert_close(last(x, lengths), expected, rtol=0, atol=1e-6)


def test_gradients_flow_through_packed_sequences(make_model):
    module = rnnc_torch.build_module(make_model([ir.LSTM(3, return_sequences=True, dropout=0.2), ir.LSTM(3), ir.Dense(1)], (None, 2)))
    module.train()
    module(torch.randn(3, 5, 2), torch.tensor([5, 2, 4])).sum().backward()
    for name, param in module.ir_parameters().items():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


GRADIENT_CASES = [
    ("lstm_fused", [ir.LSTM(3, return_sequences=True), ir.LSTM(3), ir.Dense(1)]),
    ("gru_bidir_seq", [ir.GRU(3, return_sequences=True, bidirectional=True), ir.Dense(1)]),
    ("simple_rnn_relu", [ir.SimpleRNN(3, activation="relu", return_sequences=True), ir.Pool("mean")]),
    ("conv_stride2_simple_rnn", [ir.Conv1D(3, 3, stride=2), ir.SimpleRNN(3)]),
]


@pytest.mark.parametrize("layers", [c[1] for c in GRADIENT_CASES], ids=[c[0] for c in GRADIENT_CASES])
def test_padding_never_changes_gradients(make_model, layers):
    """Even NaN in the padded steps: they must not reach values or gradients."""
    module = rnnc_torch.build_module(make_model(layers, (None, 3))).eval()
    rows = [torch.randn(n, 3) for n in LENGTHS]
    batch = pad(rows)
    batch[1, LENGTHS[1] :] = float("nan")
    module(batch, torch.tensor(LENGTHS)).sum().backward()
    padded = {name: p.grad.clone() for name, p in module.ir_parameters().items()}
    module.zero_grad()
    sum(module(row[None]).sum() for row in rows).backward()
    for name, param in module.ir_parameters().items():
        torch.testing.assert_close(padded[name], param.grad, rtol=0, atol=1e-5, msg=name)
