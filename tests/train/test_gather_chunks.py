"""A shuffled epoch gathers its rows whole batches at a time (trainer._gathered): the
batches are exactly those of one gather per batch, so training is bit-identical,
ragged last batch and a chunk smaller than the data included."""

from __future__ import annotations

import pytest
import torch
from tiny_models import binary_data, tiny_model

from rnnc.data import from_arrays
from rnnc_torch import trainer as trainer_module
from rnnc_torch.trainer import DeviceData, Trainer




def _weights_after_two_epochs() -> list[torch.Tensor]:
    model = tiny_model(batch_size=7)
    run = Trainer(model)
    data = DeviceData.of(model, from_arrays(model, *binary_data(96)), torch.device("cpu"))
    for epoch in (1, 2):
        run.train_epoch(epoch, data, model.optimizer.lr)
    return [p.detach().clone() for p in run.module.parameters()]


@pytest.mark.parametrize("rows", [7, 21, 4096])  # one batch, three, every row at once
def test_gathering_several_batches_at_once_trains_the_same_weights(rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer_module, "GATHER_ROWS", 7)
    once = _weights_after_two_epochs()
    monkeypatch.setattr(trainer_module, "GATHER_ROWS", rows)
    for a, b in zip(once, _weights_after_two_epochs(), strict=True):
        assert torch.equal(a, b)


def test_the_batches_are_the_orders_rows() -> None:
    x = torch.arange(30.0).view(10, 3)
    data = DeviceData(x, torch.arange(10), None, None)
    order = torch.tensor([3, 1, 4, 0, 5, 9, 2, 6, 8, 7])
    parts = list(trainer_module._gathered(data, order, 3))
    assert [p.y.tolist() for p in parts] == [[3, 1, 4], [0, 5, 9], [2, 6, 8], [7]]
    assert torch.equal(torch.cat([p.x for p in parts]), x[order])
