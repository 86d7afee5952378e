"""What the module accepts: input that does not fit ends in a DataError with one clear
line; dropout acts only while training."""

from __future__ import annotations

import pytest
import torch

import rnnc_torch
from rnnc import ir
from rnnc.errors import DataError

FLOAT_MODEL = ([ir.GRU(3)], (None, 2), "float32")
TOKEN_MODEL = ([ir.Embedding(10, 4), ir.GRU(3)], (None,), "int64")

BAD_INPUTS = [
    ("rank", FLOAT_MODEL, torch.randn(2, 5), None, r"expects input \[batch, time, 2\], got \[2, 5\]"),
    ("features", FLOAT_MODEL, torch.randn(2, 5, 3), None, r"expects input \[batch, time, 2\], got \[2, 5, 3\]"),
    ("ids_rank", TOKEN_MODEL, torch.randint(0, 9, (2, 5, 1)), None, r"expects input \[batch, time\]"),
    ("float_ids", TOKEN_MODEL, torch.rand(2, 5), None, "expects integer token ids"),
    ("id_past_vocab", TOKEN_MODEL, torch.tensor([[1, 10]]), None, r"token ids must lie in \[0, 9\] \(vocab_size 10\), got ids from 1 to 10"),
    ("negative_id", TOKEN_MODEL, torch.tensor([[-1, 2]]), None, r"token ids must lie in \[0, 9\]"),
    ("length_past_steps", FLOAT_MODEL, torch.randn(2, 5, 2), torch.tensor([5, 6]), r"lengths must lie in \[0, 5\] .*got 5 to 6"),
    ("negative_length", FLOAT_MODEL, torch.randn(2, 5, 2), torch.tensor([-1, 3]), r"lengths must lie in \[0, 5\]"),
    ("lengths_shape", FLOAT_MODEL, torch.randn(2, 5, 2), torch.tensor([5, 5, 5]), r"lengths must be integers of shape \[2\]"),
    ("float_lengths", FLOAT_MODEL, torch.randn(2, 5, 2), torch.tensor([5.0, 3.0]), r"lengths must be integers"),
]


@pytest.mark.parametrize(("spec", "x", "lengths", "message"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_input_that_does_not_fit_is_a_data_error(make_model, spec, x, lengths, message):
    module = rnnc_torch.build_module(make_model(*spec))
    with pytest.raises(DataError, match=message):
        module(x, lengths)


def test_float64_input_computes_in_float32(make_model):
    module = rnnc_torch.build_module(make_model(*FLOAT_MODEL)).eval()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    out = module(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, module(x.float()), rtol=0, atol=0)


def test_int32_ids_and_lengths_are_accepted(make_model):
    module = rnnc_torch.build_module(make_model(*TOKEN_MODEL)).eval()
    ids = torch.randint(0, 10, (2, 5))
    torch.testing.assert_close(module(ids.int(), torch.tensor([5, 3], dtype=torch.int32)), module(ids, torch.tensor([5, 3])))


WITH_DROPOUT = [ir.Dropout(0.5), ir.LSTM(4, dropout=0.5, return_sequences=True), ir.LSTM(4, dropout=0.5), ir.Dense(2)]
WITHOUT_DROPOUT = [ir.Dropout(0.0), ir.LSTM(4, return_sequences=True), ir.LSTM(4), ir.Dense(2)]


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_dropout_leaves_nothing_at_inference(make_model, fuse):
    with_dropout = rnnc_torch.build_module(make_model(WITH_DROPOUT, (None, 3)), fuse=fuse).eval()
    without = rnnc_torch.build_module(make_model(WITHOUT_DROPOUT, (None, 3)), fuse=fuse).eval()
    without.load_ir_state(with_dropout.ir_state())
    x = torch.randn(3, 5, 3)
    torch.testing.assert_close(with_dropout(x), without(x), rtol=0, atol=0)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_recurrent_dropout_drops_inputs_while_training(make_model, fuse):
    # only the recurrent layers' own dropout: the model has no dropout layer
    layers = [ir.LSTM(4, dropout=0.5, return_sequences=True), ir.LSTM(4, dropout=0.5)]
    module = rnnc_torch.build_module(make_model(layers, (None, 3)), fuse=fuse)
    x = torch.randn(3, 5, 3)
    inference = module.eval()(x)
    module.train()
    torch.manual_seed(1)
    first = module(x)
    torch.manual_seed(1)
    assert torch.equal(module(x), first)  # seeded: reproducible
    assert not torch.allclose(first, inference)
