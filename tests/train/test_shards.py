"""Sharded steps (shards.py): a batch split across threads gives the batch's gradients,
training with it is deterministic, and it is chosen only where it is measured to pay."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnc import ir
from rnnc.data import from_arrays
from rnnc_torch.cpu.dropout import Dropout, drawing_from
from rnnc_torch.cpu.policy import MIN_ROWS, shard_count
from rnnc_torch.cpu.shards import ShardedStep
from rnnc_torch.model import build_module
from rnnc_torch.trainer import DeviceData, Trainer

from tiny_models import tiny_model

CPU = torch.device("cpu")


@pytest.fixture
def two_threads() -> Iterator[None]:
    """torch on two intra-op threads, as on this 2-core machine outside the tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def lstm_model(**training: object) -> ir.Model:
    """One-direction LSTM(64) at batch 64: 32-row shards run torch's fused kernel."""
    return tiny_model([ir.LSTM(64), ir.Dense(5, "softmax")], shape=(12, 3), loss="sparse_categorical_crossentropy",
                      **{"batch_size": 64, **training})


@pytest.mark.parametrize(("model", "shards"), [
    (lstm_model(), 2),
    (tiny_model([ir.LSTM(64, return_sequences=True), ir.LSTM(64, return_sequences=True), ir.Dense(3)], shape=(12, 3),
                loss="mse", batch_size=64), 2),
    (lstm_model(batch_size=16), 1),  # 8-row shards: below MIN_ROWS
    (lstm_model(precision="bf16"), 2),  # each shard enters autocast (autocast state is per thread)
    (tiny_model([ir.LSTM(64, dropout=0.2), ir.Dense(5, "softmax")], shape=(12, 3), batch_size=64), 2),
    (tiny_model([ir.LSTM(64), ir.Dropout(0.3), ir.Dense(5, "softmax")], shape=(12, 3), batch_size=64), 2),
    (tiny_model([ir.LSTM(64, return_sequences=True), ir.LSTM(64, dropout=0.2), ir.Dense(5, "softmax")], shape=(12, 3),
                batch_size=64), 1),  # fused: torch's kernel drops between its layers
    (tiny_model([ir.SimpleRNN(8), ir.Dense(1, "sigmoid")], batch_size=64), 1),  # tiny steps: one thread anyway
    (tiny_model([ir.GRU(64, bidirectional=True), ir.Dense(1, "sigmoid")], shape=(12, 3), batch_size=64), 1),  # time loop
    (tiny_model([ir.SimpleRNN(128), ir.Dense(1, "sigmoid")], shape=(12, 3), batch_size=64), 1),  # time loop
], ids=["lstm", "seq2seq", "small-batch", "bf16", "recurrent-dropout", "dropout-layer", "fused-dropout", "tiny",
        "bidirectional", "simple-rnn"])
def test_where_batches_are_sharded(two_threads: None, model: ir.Model, shards: int) -> None:
    module = build_module(model)
    assert shard_count(model, module, CPU) == shards
    assert shard_count(model, module, torch.device("cuda")) == 1


@pytest.mark.parametrize("threads", [1, 8])
def test_one_thread_or_a_large_machine_keeps_the_ordinary_step(threads: int) -> None:
    torch.set_num_threads(threads)
    model = lstm_model(batch_size=MIN_ROWS * 8)
    assert shard_count(model, build_module(model), CPU) == 1


def batch_for(model: ir.Model, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, *model.input.shape)).astype(np.float32)  # type: ignore[arg-type]
    units = model.nodes[-1].output_shape[-1]
    if model.loss.type == "mse":
        y = rng.normal(size=(n, *model.nodes[-1].output_shape)).astype(np.float32)  # type: ignore[arg-type]
    else:
        y = rng.integers(0, units, n).astype(np.int64)
    data = DeviceData.of(model, from_arrays(model, x, y), CPU)
    return data.x, data.y


@pytest.mark.parametrize("shards", [2, 3, 4])
@pytest.mark.parametrize("rows", [64, 61, 3, 1])  # even shards; last batches that do not divide, or fewer rows than shards
def test_a_sharded_step_gives_the_batch_gradients(shards: int, rows: int) -> None:
    model = lstm_model()
    trainer = Trainer(model)
    module, objective = trainer.module, trainer.objective
    x, y = batch_for(model)
    x, y = x[:rows], y[:rows]

    def forward(part: slice) -> tuple[torch.Tensor, torch.Tensor]:
        output = module(x[part], None, logits=objective.fused, trusted=True)
        return output, objective(output, y[part])

    module.train()
    output, loss = forward(slice(0, rows))
    loss.backward()
    expected = {name: p.grad.clone() for name, p in module.named_parameters()}  # type: ignore[union-attr]
    module.zero_grad(set_to_none=True)
    sharded_output, sharded_loss = ShardedStep(module, shards)(forward, 0, rows)
    assert float(sharded_loss) == pytest.approx(float(loss.detach()), rel=1e-6)
    torch.testing.assert_close(sharded_output, output.detach(), rtol=1e-5, atol=1e-6)
    for name, p in module.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def train_two_epochs(model: ir.Model, shards: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    trainer = Trainer(model)
    trainer.shards = shards
    x, y = batch_for(model, 256)
    data = DeviceData(x, y, None, None)
    losses = [trainer.train_epoch(epoch, data, 0.01)["loss"] for epoch in (1, 2)]
    return losses, {k: v.clone() for k, v in trainer.module.state_dict().items()}


def test_sharded_training_is_deterministic_and_tracks_the_ordinary_step() -> None:
    model = lstm_model()
    first, again, ordinary = train_two_epochs(model, 2), train_two_epochs(model, 2), train_two_epochs(model, 1)
    assert first[0] == again[0]  # bit-identical: gradients are summed in shard order, not finishing order
    for name, value in first[1].items():
        assert torch.equal(value, again[1][name]), name
        torch.testing.assert_close(value, ordinary[1][name], rtol=1e-3, atol=1e-4, msg=name)  # rounding apart
    assert first[0] == pytest.approx(ordinary[0], rel=1e-4)


def test_sharded_training_with_dropout_is_deterministic() -> None:
    """Each shard drops with a generator seeded from the global stream on the calling
    thread, so racing threads cannot reorder the masks."""
    model = tiny_model([ir.LSTM(64, dropout=0.3), ir.Dropout(0.2), ir.Dense(5, "softmax")], shape=(12, 3),
                       loss="sparse_categorical_crossentropy", batch_size=64)
    runs = [train_two_epochs(model, 3) for _ in range(3)]
    for losses, weights in runs[1:]:
        assert losses == runs[0][0]
        for name, value in weights.items():
            assert torch.equal(value, runs[0][1][name]), name
    assert runs[0][0] != train_two_epochs(model, 1)[0]  # the masks differ from the ordinary step's


def test_dropout_draws_as_torch_does_unless_a_thread_generator_is_set() -> None:
    x = torch.ones(64, 32)
    ours, theirs = Dropout(0.25).train(), torch.nn.Dropout(0.25).train()
    torch.manual_seed(5)
    a = ours(x)
    torch.manual_seed(5)
    assert torch.equal(a, theirs(x))  # the same call on the global generator: the same mask
    with drawing_from(torch.Generator().manual_seed(1)):
        b = ours(x)
    with drawing_from(torch.Generator().manual_seed(1)):
        assert torch.equal(b, ours(x))
    assert not torch.equal(a, b)
    assert set(b.unique().tolist()) <= {0.0, float(torch.tensor(1 / 0.75))}  # inverted dropout, float32
    assert torch.equal(ours.eval()(x), x)


def test_the_trainer_shards_by_itself_and_restores_the_thread_setting(two_threads: None) -> None:
    model = lstm_model()
    trainer = Trainer(model)
    assert trainer.shards == 2
    x, y = batch_for(model, 128)
    logs = trainer.train_epoch(1, DeviceData(x, y, None, None), 0.01)
    assert np.isfinite(logs["loss"])
    assert torch.get_num_threads() == 2


def test_a_resumed_sharded_run_with_dropout_continues_exactly() -> None:
    """The shards' seeds come from torch's global stream, which the checkpoint keeps."""
    model = tiny_model([ir.LSTM(64, dropout=0.3), ir.Dense(5, "softmax")], shape=(12, 3),
                       loss="sparse_categorical_crossentropy", batch_size=64)
    x, y = batch_for(model, 256)
    data = DeviceData(x, y, None, None)
    whole = Trainer(model)
    whole.shards = 2
    for epoch in (1, 2):
        whole.train_epoch(epoch, data, 0.01)
    first = Trainer(model)
    first.shards = 2
    first.train_epoch(1, data, 0.01)
    first.epoch = 1
    state = first.state_dict()
    resumed = Trainer(model)
    resumed.shards = 2
    resumed.load_state_dict(state)
    resumed.train_epoch(2, data, 0.01)
    for name, value in whole.module.state_dict().items():
        assert torch.equal(resumed.module.state_dict()[name], value), name


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["lstm", "gru"]),
    sequences=st.booleans(),
    variable=st.booleans(),
    rows=st.integers(1, 40),
    shards=st.integers(2, 4),
)
def test_any_split_gives_the_batch_gradients(kind: str, sequences: bool, variable: bool, rows: int, shards: int) -> None:
    """Whatever the layer, output kind, lengths, batch size and shard count."""
    layer = (ir.LSTM if kind == "lstm" else ir.GRU)(16, return_sequences=sequences)
    shape = (None, 3) if variable else (7, 3)
    model = tiny_model([layer, ir.Dense(2)], shape=shape, loss="mse", batch_size=64)
    torch.manual_seed(rows)
    trainer = Trainer(model)
    module, objective = trainer.module, trainer.objective
    x = torch.randn(rows, 7, 3)
    lengths = torch.randint(1, 8, (rows,)) if variable else None
    y = torch.randn(rows, 7, 2) if sequences else torch.randn(rows, 2)

    def forward(part: slice) -> tuple[torch.Tensor, torch.Tensor]:
        output = module(x[part], None if lengths is None else lengths[part], trusted=True)
        if sequences and lengths is not None:  # the masked loss is not sharded; compare on whole steps
            output = output * (torch.arange(7)[None, :, None] < lengths[part][:, None, None])
        return output, objective(output, y[part])

    module.train()
    module.zero_grad(set_to_none=True)
    loss = forward(slice(0, rows))[1]
    loss.backward()
    expected = {name: p.grad.clone() for name, p in module.named_parameters()}  # type: ignore[union-attr]
    module.zero_grad(set_to_none=True)
    _, sharded_loss = ShardedStep(module, shards)(forward, 0, rows)
    assert float(sharded_loss) == pytest.approx(float(loss.detach()), rel=1e-5, abs=1e-7)
    for name, p in module.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)
