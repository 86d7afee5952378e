"""`training.tbptt: K`: chunks of K steps with the state carried across, against one pass
and against a truncated-backpropagation loop written here in plain torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tiny_models import tiny_model

from rnnc import ir
from rnnc.data import from_arrays
from rnnc.errors import SpecError
from rnnc.spec import load_model
from rnnc_torch.model import build_module
from rnnc_torch.tbptt import chunk_lengths
from rnnc_torch.trainer import Trainer

CHAINS = [
    ("lstm", [ir.LSTM(5, return_sequences=True), ir.Dense(2)]),
    ("gru", [ir.GRU(5, return_sequences=True), ir.Dense(2)]),
    ("simple_rnn", [ir.SimpleRNN(5, return_sequences=True), ir.Dense(2)]),
    ("relu_rnn", [ir.SimpleRNN(5, activation="relu", return_sequences=True), ir.Dense(2)]),
    ("stacked_fused", [ir.GRU(4, return_sequences=True), ir.GRU(4, return_sequences=True), ir.Dense(2)]),
    ("stacked_mixed", [ir.LSTM(4, return_sequences=True), ir.LayerNorm(), ir.Conv1D(3, 1, activation="tanh"),
                       ir.SimpleRNN(3, return_sequences=True), ir.Dropout(0.3), ir.Dense(2)]),
]


def chunked_forward(module: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor | None, size: int) -> torch.Tensor:
    state: dict = {}
    outs = []
    for begin in range(0, x.shape[1], size):
        end = min(begin + size, x.shape[1])
        out, state = module(x[:, begin:end], chunk_lengths(lengths, begin, end), state=state)
        outs.append(out)
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize(("name", "layers"), CHAINS, ids=[c[0] for c in CHAINS])
@pytest.mark.parametrize("size", [1, 3, 7, 40])
def test_chunks_with_the_state_carried_give_the_one_pass_outputs(name: str, layers: list, size: int) -> None:
    model = tiny_model(layers, shape=(None, 3), loss="mse")
    torch.manual_seed(0)
    module = build_module(model).eval()
    x = torch.randn(4, 17, 3)
    lengths = torch.tensor([17, 5, 0, 11])
    for row, length in enumerate(lengths.tolist()):
        x[row, length:] = 1e4  # junk padding must not reach any real step
    with torch.no_grad():
        whole = module(x, lengths)
        chunked = chunked_forward(module, x, lengths, size)
        full_length = chunked_forward(module, x[:, :13], None, size)
        np.testing.assert_allclose(chunked.numpy(), whole.numpy(), atol=1e-6)
        # one pass of a small simple RNN runs in numpy (cpu/small_loop.py), the chunks in torch's
        # module: float32 rounding, relative, on the relu rows' outputs of ~1e3
        np.testing.assert_allclose(full_length.numpy(), module(x[:, :13]).numpy(), rtol=1e-6, atol=1e-6)
    assert (chunked[2] == 0).all() and (chunked[1, 5:] == 0).all()  # no real step: zeros, as in one pass


def sequence_data(n: int = 24, steps: int = 12, seed: int = 0, lengths: bool = True):
    """Per-step targets: the running sum of the first feature, scaled."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, 3)).astype(np.float32)
    y = (np.cumsum(x[:, :, :1], axis=1) / 3).astype(np.float32)
    size = rng.integers(1, steps + 1, size=n) if lengths else None
    return x, y, size


def trained(model: ir.Model, x, y, lengths) -> Trainer:
    trainer = Trainer(model)
    trainer.run(from_arrays(model, x, y, lengths), progress=False)
    return trainer


def weights(trainer: Trainer) -> dict[str, np.ndarray]:
    return trainer.module.ir_state()


SEQUENCE = [ir.LSTM(6, return_sequences=True), ir.GRU(6, return_sequences=True), ir.Dense(1)]


@pytest.mark.parametrize("size", [12, 50])
def test_chunks_as_long_as_the_data_train_bit_identically(size: int) -> None:
    x, y, lengths = sequence_data()
    plain = trained(tiny_model(SEQUENCE, shape=(None, 3), loss="mse", batch_size=8, epochs=2), x, y, lengths)
    chunked = trained(tiny_model(SEQUENCE, shape=(None, 3), loss="mse", batch_size=8, epochs=2, tbptt=size), x, y, lengths)
    for name, value in weights(plain).items():
        np.testing.assert_array_equal(weights(chunked)[name], value, err_msg=name)
    assert [e["loss"] for e in plain.history] == [e["loss"] for e in chunked.history]


def test_shorter_chunks_train_differently_and_deterministically() -> None:
    x, y, lengths = sequence_data()
    model = tiny_model(SEQUENCE, shape=(None, 3), loss="mse", batch_size=8, epochs=2, tbptt=4)
    first, again = trained(model, x, y, lengths), trained(model, x, y, lengths)
    plain = trained(tiny_model(SEQUENCE, shape=(None, 3), loss="mse", batch_size=8, epochs=2), x, y, lengths)
    name = "layers.0.weight_hh"
    np.testing.assert_array_equal(weights(first)[name], weights(again)[name])
    assert np.abs(weights(first)[name] - weights(plain)[name]).max() > 1e-3


@pytest.mark.parametrize("with_lengths", [False, True])
def test_the_logged_loss_is_the_mean_over_real_steps_as_in_one_pass(with_lengths: bool) -> None:
    x, y, lengths = sequence_data(n=20, lengths=with_lengths)  # 20 rows, batches of 8: a short last batch
    still = ir.Optimizer("sgd", lr=0.0)
    plain = trained(tiny_model(SEQUENCE, shape=(None, 3), loss="mse", batch_size=8, epochs=1, optimizer=still), x, y, lengths)
    chunked = trained(tiny_model(SEQUENCE, shape=(None, 3), loss="mse", batch_size=8, epochs=1, optimizer=still,
                                 tbptt=5), x, y, lengths)
    assert chunked.history[0]["loss"] == pytest.approx(plain.history[0]["loss"], rel=1e-6)


class Reference(torch.nn.Module):
    """LSTM then dense, written with torch's own modules: the test's independent model."""

    def __init__(self, weights: dict[str, np.ndarray]):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 6, batch_first=True)
        self.dense = torch.nn.Linear(6, 2)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(self.lstm, f"{name}_l0").copy_(torch.from_numpy(weights[f"layers.0.{name}"]))
            self.dense.weight.copy_(torch.from_numpy(weights["layers.1.weight"]))
            self.dense.bias.copy_(torch.from_numpy(weights["layers.1.bias"]))

    def forward(self, x, state):
        out, state = self.lstm(x, state)
        return self.dense(out), state


def reference_tbptt(ref: Reference, x: torch.Tensor, y: torch.Tensor, size: int, lr: float) -> None:
    """The classic loop (PyTorch's word-language-model example): detach, forward, step."""
    optimizer = torch.optim.SGD(ref.parameters(), lr=lr)
    state = None
    for begin in range(0, x.shape[1], size):
        if state is not None:
            state = tuple(s.detach() for s in state)
        optimizer.zero_grad()
        out, state = ref(x[:, begin : begin + size], state)
        torch.nn.functional.mse_loss(out, y[:, begin : begin + size]).backward()
        optimizer.step()


def test_one_batch_matches_a_hand_written_tbptt_loop_and_not_full_backpropagation() -> None:
    x, y, _ = sequence_data(n=6, steps=10, lengths=False)
    y = np.concatenate([y, -y], axis=-1)
    model = tiny_model([ir.LSTM(6, return_sequences=True), ir.Dense(2)], shape=(10, 3), loss="mse",
                       optimizer=ir.Optimizer("sgd", lr=0.5), batch_size=6, epochs=1, shuffle=False, tbptt=4)
    trainer = Trainer(model)
    start = weights(trainer)
    trainer.run(from_arrays(model, x, y), progress=False)
    chunked = Reference(start)
    reference_tbptt(chunked, torch.from_numpy(x), torch.from_numpy(y), 4, lr=0.5)
    full = Reference(start)
    reference_tbptt(full, torch.from_numpy(x), torch.from_numpy(y), 10, lr=0.5)  # one chunk: full backpropagation
    got = weights(trainer)
    for name, want, other in [("layers.0.weight_hh", chunked.lstm.weight_hh_l0, full.lstm.weight_hh_l0),
                              ("layers.0.weight_ih", chunked.lstm.weight_ih_l0, full.lstm.weight_ih_l0),
                              ("layers.1.weight", chunked.dense.weight, full.dense.weight)]:
        np.testing.assert_allclose(got[name], want.detach().numpy(), atol=1e-6, err_msg=name)
        assert np.abs(got[name] - other.detach().numpy()).max() > 1e-4, name


def spec_file(folder: Path, layers: list[dict], **training) -> Path:
    spec = {"rnnc": 1, "name": "long", "input": {"shape": [None, 2]}, "layers": layers, "loss": "mse",
            "optimizer": "adam", "training": {"tbptt": 5, **training}}
    path = folder / "long.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


RECURRENT = {"type": "gru", "units": 4, "return_sequences": True}
DENSE = {"type": "dense", "units": 1}
REFUSED = [
    ("bidirectional", [{**RECURRENT, "bidirectional": True}, DENSE],
     ["8:3: layers[0] (gru): training.tbptt (5) trains chunk by chunk, and a bidirectional layer needs the whole "
      "sequence, so it cannot stream: drop training.tbptt, or change this layer"]),
    ("not_per_step", [RECURRENT, {"type": "lstm", "units": 3, "return_sequences": False}, DENSE],
     ["13:21: layers[1].return_sequences: returns one vector per sequence, so the output is not one per step and the "
      "chunks of training.tbptt (5) before the last would have nothing to learn from: set return_sequences: true, "
      "or drop training.tbptt"]),
    ("pool_and_wide_conv", [{"type": "conv1d", "filters": 3, "kernel_size": 3}, RECURRENT, {"type": "pool", "mode": "last"}, DENSE],
     ["8:3: layers[0] (conv1d): training.tbptt (5) trains chunk by chunk, and a conv1d wider than one step sees across "
      "chunk borders, so it cannot stream: drop training.tbptt, or change this layer",
      "14:3: layers[2] (pool): turns each sequence into one vector ([time, 4] -> [4]), so the output is not one per "
      "step and the chunks of training.tbptt (5) before the last would have nothing to learn from: keep the time "
      "axis, or drop training.tbptt"]),
]


@pytest.mark.parametrize(("name", "layers", "expected"), REFUSED, ids=[c[0] for c in REFUSED])
def test_tbptt_is_refused_where_chunks_mean_nothing(tmp_path: Path, name: str, layers: list, expected: list[str]) -> None:
    spec = spec_file(tmp_path, layers)
    with pytest.raises(SpecError) as caught:
        load_model(spec)
    assert caught.value.lines() == [f"{spec}:{line}" for line in expected]


def test_chunks_longer_than_every_sequence_are_fine(tmp_path: Path) -> None:
    model = load_model(spec_file(tmp_path, [RECURRENT, {"type": "conv1d", "filters": 2, "kernel_size": 1}, DENSE], tbptt=10_000))
    assert model.training.tbptt == 10_000


def test_rnnc_train_with_tbptt_then_the_streaming_export_serves_it_chunk_by_chunk(tmp_path: Path) -> None:
    pytest.importorskip("rnnc_onnx")
    from rnnc.artifacts import load_weights
    from rnnc.cli import main
    from rnnc.runtime import Predictor

    x, y, lengths = sequence_data(n=32, steps=14)
    np.savez(tmp_path / "train.npz", x=x, y=y, lengths=lengths)
    spec = tmp_path / "long.yaml"
    spec.write_text(yaml.safe_dump({
        "rnnc": 1, "name": "long", "input": {"shape": [None, 3]},
        "layers": [{"type": "lstm", "units": 6, "return_sequences": True}, {"type": "gru", "units": 5, "return_sequences": True},
                   {"type": "dense", "units": 1}],
        "loss": "mse", "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 2, "batch_size": 8, "seed": 1, "tbptt": 4}, "data": {"train": "train.npz"},
    }, sort_keys=False))
    run = tmp_path / "run"
    assert main(["train", str(spec), "-o", str(run), "--device", "cpu", "--no-progress", "--set", "export.streaming=true"]) == 0
    model = load_model(run / "spec.yaml")
    assert model.training.tbptt == 4 and model.export.streaming
    module = build_module(model).eval()
    module.load_ir_state(load_weights(run / "weights.safetensors", model))
    stream = Predictor(run / "model.onnx").stream()
    chunks = []
    for begin in range(0, 14, 4):
        end = min(begin + 4, 14)
        chunks.append(stream.step(x[:, begin:end], np.clip(lengths - begin, 0, end - begin).astype(np.int64)))
    with torch.no_grad():
        want = chunked_forward(module, torch.from_numpy(x), torch.from_numpy(lengths), 4).numpy()
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), want, atol=1e-5)


def test_two_workers_run_the_same_chunks_when_their_batches_differ_in_length(tmp_path: Path) -> None:
    """Without agreeing on each batch's longest sequence, a rank with shorter sequences
    would run fewer chunks, and DDP's gradient reductions would not pair up (a hang or
    gloo's 'collective mismatch')."""
    import json
    import os
    import subprocess
    import sys

    x, y, lengths = sequence_data(n=32, steps=20)
    lengths[::2] = 3  # the ranks take alternate rows: one gets only short sequences
    np.savez(tmp_path / "train.npz", x=x, y=y, lengths=lengths)
    spec = tmp_path / "long.yaml"
    spec.write_text(yaml.safe_dump({
        "rnnc": 1, "name": "long", "input": {"shape": [None, 3]},
        "layers": [{"type": "gru", "units": 4, "return_sequences": True}, {"type": "dense", "units": 1}],
        "loss": "mse", "optimizer": "adam", "training": {"epochs": 2, "batch_size": 8, "shuffle": False, "tbptt": 4},
        "data": {"train": "train.npz"},
    }, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RNNC_DIST_TIMEOUT": "60"}
    done = subprocess.run([sys.executable, "-m", "rnnc", "train", str(spec), "-o", str(tmp_path / "run"), "--device", "cpu",
                           "--no-progress", "--nproc", "2"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    logs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in logs] == [1, 2] and all(np.isfinite(e["loss"]) for e in logs)


def test_a_resumed_tbptt_run_ends_as_the_uninterrupted_one(tmp_path: Path) -> None:
    from rnnc_torch.checkpoint import load_checkpoint, save_checkpoint

    x, y, lengths = sequence_data()
    layers = [ir.GRU(6, return_sequences=True, dropout=0.2), ir.Dropout(0.2), ir.Dense(1)]
    model = tiny_model(layers, shape=(None, 3), loss="mse", batch_size=8, epochs=3, seed=4, tbptt=5)
    data = from_arrays(model, x, y, lengths)
    path = tmp_path / "checkpoint.pt"

    def keep_epoch_1(trainer: Trainer, logs: dict) -> None:
        if logs["epoch"] == 1:
            save_checkpoint(path, trainer.state_dict(), "fp")

    whole = Trainer(model)
    whole.run(data, progress=False, hooks=[keep_epoch_1])
    torch.manual_seed(99)  # the checkpoint restores the dropout stream, whatever it holds now
    resumed = Trainer(model)
    resumed.load_state_dict(load_checkpoint(path, "fp"))
    resumed.run(data, progress=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    for name, value in whole.module.ir_state().items():
        np.testing.assert_array_equal(resumed.module.ir_state()[name], value, err_msg=name)
