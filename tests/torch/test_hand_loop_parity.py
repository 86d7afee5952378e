"""rnnc's training loop is a plain PyTorch loop: given rnnc's initial weights, its
per-epoch shuffle order and the same dropout draws, a loop written here by hand
(nn.RNN/nn.LSTM/nn.GRU + nn.Linear, fused Adam with rnnc's epsilon, the loss on logits,
the epoch loss a row-weighted mean of the batch means, the last partial batch trained
unscaled) reproduces `Trainer`'s per-epoch losses and final weights.

Three models: a SimpleRNN binary classifier (it trains in rnnc's own time loop,
cpu/scans.py), an LSTM softmax classifier with input dropout, a GRU regressor (mse).
One intra-op thread, so no batch is sharded (cpu/shards.py). The last test shows the
comparison has teeth: a hand loop that shuffles, averages or draws dropout differently misses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from rnnc import ir
from rnnc.data import from_arrays
from rnnc.spec import model_from_mapping
from rnnc_torch.cpu.policy import runs_a_time_loop
from rnnc_torch.trainer import Trainer, epoch_seed

ROWS, STEPS, FEATURES, BATCH, EPOCHS, SEED = 300, 10, 3, 32, 3, 7  # 300 = 9 * 32 + 12: a partial last batch
TOL = 1e-5


def spec(kind: str, head: dict[str, Any], loss: str, **recurrent: Any) -> dict[str, Any]:
    return {
        "rnnc": 1,
        "name": f"parity-{kind}",
        "input": {"shape": [STEPS, FEATURES]},
        "layers": [{"type": kind, "units": 12, **recurrent}, head],
        "loss": loss,
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"seed": SEED, "epochs": EPOCHS, "batch_size": BATCH},
    }


def data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(ROWS, STEPS, FEATURES)).astype(np.float32)
    if kind == "binary":
        y = (x[:, :, 0].sum(1) > 0).astype(np.float32).reshape(-1, 1)
    elif kind == "classes":
        y = x.mean(1).argmax(1).astype(np.int64)
    else:
        y = (x[:, :, 0] * x[:, :, 1]).mean(1, keepdims=True).astype(np.float32)
    return x, y


CASES = {
    "simple_rnn_binary": (spec("simple_rnn", {"type": "dense", "units": 1, "activation": "sigmoid"}, "binary_crossentropy"), "binary"),
    "lstm_softmax": (
        spec("lstm", {"type": "dense", "units": 3, "activation": "softmax"}, "sparse_categorical_crossentropy", dropout=0.2),
        "classes",
    ),
    "gru_mse": (spec("gru", {"type": "dense", "units": 1}, "mse"), "regression"),
}
HAND_RNN = {"simple_rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
HAND_LOSS = {
    "binary_crossentropy": nn.BCEWithLogitsLoss(),
    "sparse_categorical_crossentropy": nn.CrossEntropyLoss(),
    "mse": nn.MSELoss(),
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Hand(nn.Module):
    """One recurrent layer (input dropout, last step) and a linear head giving logits."""

    def __init__(self, kind: str, units: int, outputs: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.rnn = HAND_RNN[kind](FEATURES, units, batch_first=True)
        self.linear = nn.Linear(units, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.drop(x))
        return self.linear(out[:, -1])


def hand_names(ir_name: str) -> str:
    """rnnc's IR name (`layers.0.weight_ih`, `layers.1.bias`) -> the hand module's."""
    layer, short = ir_name.split(".", 2)[1:]
    return f"rnn.{short}_l0" if layer == "0" else f"linear.{short}"


def hand_train(model: ir.Model, initial: dict[str, np.ndarray], rng: torch.Tensor, x: np.ndarray, y: np.ndarray, *,
               order_epoch: int = 1, row_weighted: bool = True) -> tuple[list[float], dict[str, np.ndarray]]:
    """The hand loop from rnnc's `initial` weights, its dropout drawn from global RNG state `rng`
    (`order_epoch` 1 and `row_weighted`: rnnc's shuffle order and epoch mean)."""
    recurrent, head = model.nodes[0].layer, model.nodes[1].layer
    hand = Hand(recurrent.kind, recurrent.units, head.units, recurrent.dropout)
    with torch.no_grad():
        for name, value in initial.items():
            hand.get_parameter(hand_names(name)).copy_(torch.from_numpy(value))
    o = model.optimizer
    optimizer = torch.optim.Adam(hand.parameters(), lr=o.lr, betas=(o.beta_1, o.beta_2), eps=o.epsilon, fused=True)
    loss_fn = HAND_LOSS[model.loss.type]
    torch.set_rng_state(rng)  # after building `hand`, whose own initialisation draws from it
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    losses = []
    for epoch in range(order_epoch, order_epoch + EPOCHS):
        hand.train()
        order = torch.randperm(ROWS, generator=torch.Generator().manual_seed(epoch_seed(SEED, epoch)))
        total, batches = 0.0, 0
        for rows in order.split(BATCH):
            optimizer.zero_grad()
            loss = loss_fn(hand(xs[rows]), ys[rows])
            loss.backward()
            optimizer.step()
            total += loss.item() * (len(rows) if row_weighted else 1)
            batches += 1
        losses.append(total / (ROWS if row_weighted else batches))
    return losses, {name: hand.get_parameter(hand_names(name)).detach().numpy().copy() for name in initial}


def rnnc_train(case: str) -> tuple[ir.Model, np.ndarray, np.ndarray, dict[str, np.ndarray], torch.Tensor, list[float], dict[str, np.ndarray]]:
    mapping, target = CASES[case]
    model = model_from_mapping(mapping, case)
    x, y = data(target)
    trainer = Trainer(model, "cpu")  # seeds torch, draws the initial weights
    assert trainer.shards == 1 and model.optimizer.epsilon == 1e-7
    initial = trainer.module.ir_state()
    rng = torch.get_rng_state()  # the dropout draws start here
    trainer.run(from_arrays(model, x, y), progress=False)
    return model, x, y, initial, rng, [h["loss"] for h in trainer.history], trainer.module.ir_state()


@pytest.mark.parametrize("case", list(CASES))
def test_the_hand_loop_from_rnnc_start_gives_rnnc_losses_and_weights(case: str) -> None:
    model, x, y, initial, rng, losses, final = rnnc_train(case)
    if case == "simple_rnn_binary":  # this one trains in rnnc's own loop, not torch's nn.RNN
        assert runs_a_time_loop(model, BATCH)
    hand_losses, hand_final = hand_train(model, initial, rng, x, y)
    assert len(losses) == EPOCHS
    np.testing.assert_allclose(losses, hand_losses, rtol=0, atol=TOL)
    assert losses[-1] < losses[0]  # it learned something: the weights moved
    for name, value in final.items():
        assert not np.allclose(value, initial[name], atol=1e-3), name
        np.testing.assert_allclose(value, hand_final[name], rtol=0, atol=TOL, err_msg=name)


@pytest.mark.parametrize(("case", "variant"), [
    ("gru_mse", {"order_epoch": 0}),  # epoch_seed(seed, epoch - 1): another order each epoch
    ("gru_mse", {"row_weighted": False}),  # the epoch loss a plain mean of the batch means
    ("lstm_softmax", {"rng": 1}),  # other dropout draws
], ids=["shuffled_differently", "unweighted_mean", "other_dropout_draws"])
def test_a_loop_that_shuffles_averages_or_draws_differently_misses(case: str, variant: dict[str, Any]) -> None:
    model, x, y, initial, rng, losses, final = rnnc_train(case)
    variant = dict(variant)
    if "rng" in variant:
        rng = torch.Generator().manual_seed(variant.pop("rng")).get_state()
    hand_losses, hand_final = hand_train(model, initial, rng, x, y, **variant)
    assert np.abs(np.subtract(losses, hand_losses)).max() > 10 * TOL  # a miss far outside the parity tolerance
    if "row_weighted" not in variant:  # averaging differently reports another loss but trains the same model
        assert max(np.abs(final[n] - hand_final[n]).max() for n in final) > 100 * TOL
