"""The trainer runs models with tiny steps on one intra-op thread, others on torch's
setting, and leaves torch's setting as it found it."""

from __future__ import annotations

import pytest
import torch

from rnnc import ir
from rnnc.data import from_arrays
from rnnc_torch.cpu.policy import largest_step_product, training_threads
from rnnc_torch.cpu.threads import at_most
from rnnc_torch.trainer import DeviceData, Trainer

from tiny_models import binary_data, tiny_model


@pytest.mark.parametrize(("layers", "batch", "threads"), [
    ([ir.SimpleRNN(32), ir.Dense(1, "sigmoid")], 32, 1),  # the seed model: 6.6e4 FLOPs per step
    ([ir.LSTM(64), ir.Dense(4, "softmax")], 32, None),  # 2.1e6
    ([ir.GRU(32, bidirectional=True), ir.Dense(1)], 32, 1),  # 3.9e5
])
def test_small_steps_run_on_one_thread(layers: list, batch: int, threads: int | None) -> None:
    model = tiny_model(layers, shape=(10, 3), loss="mse", batch_size=batch)
    assert training_threads(model, torch.device("cpu")) == threads
    assert training_threads(model, torch.device("cuda")) is None


def test_the_largest_product_counts_gates_units_and_directions() -> None:
    model = tiny_model([ir.LSTM(8, bidirectional=True, return_sequences=True), ir.Dense(5)], shape=(10, 3), loss="mse")
    assert largest_step_product(model, 4) == 2 * 4 * 4 * 8 * 8 * 2


def test_at_most_lowers_and_restores_but_never_raises() -> None:
    torch.set_num_threads(2)
    with at_most(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    with at_most(4), at_most(None):
        assert torch.get_num_threads() == 1


def test_training_leaves_the_thread_setting_as_it_was() -> None:
    model = tiny_model()
    x, y = binary_data(32)
    trainer = Trainer(model)
    data = DeviceData.of(model, from_arrays(model, x, y), trainer.device)
    torch.set_num_threads(2)
    trainer.train_epoch(1, data, 0.01)
    trainer.evaluate(data)
    assert torch.get_num_threads() == 2
