"""The benchmark workloads: each an rnnc IR model, its synthetic data, and the same
network written by hand in PyTorch (and, in keras_peer.py, in Keras).

    a  seed     SimpleRNN(32) over [10, 1] -> dense(1, sigmoid); binary CE; batch 32
    b  lstm     LSTM(128) over [100, 16] -> dense(10, softmax); sparse CE; batch 64
    c  text     embedding(5000, 64, mask_zero) -> bidirectional GRU(64), sequences ->
                bidirectional GRU(64) -> dense(4, softmax); token ids of 10 to 100 real
                steps, zero-padded to 100; sparse CE; batch 64
    d  seq2seq  LSTM(64) -> LSTM(64), both returning sequences, over [50, 8] ->
                dense(8) at every step; MSE; batch 32

The hand-written modules are what an engineer would write: torch's recurrent modules
(multi-layer where the layers stack, `pack_padded_sequence` for variable lengths), a
linear head, the loss on logits. `load_ir_weights` copies rnnc's weights (IR names,
PyTorch layout) into them, so every system computes the same function. `KERAS` says the
same networks in the plain terms keras_peer.py builds Keras models from (no rnnc there).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from rnnc import ir
from rnnc.shapes import infer_nodes

VOCAB, TEXT_STEPS, TEXT_MIN = 5000, 100, 10


@dataclass(frozen=True)
class Workload:
    key: str
    name: str
    title: str
    input: ir.Input
    layers: tuple[ir.Layer, ...]
    loss: str
    batch: int
    samples: int  # per training epoch

    def model(self, metrics: tuple[str, ...] = ()) -> ir.Model:
        nodes, problems = infer_nodes(self.input, list(self.layers))
        assert not problems, problems
        return ir.Model(
            name=f"bench-{self.name}", input=self.input, nodes=tuple(nodes), loss=ir.Loss(self.loss),  # type: ignore[arg-type]
            optimizer=ir.Optimizer("adam"), metrics=metrics,
            training=ir.Training(epochs=1_000_000, batch_size=self.batch, seed=0),
        )

    def data(self, samples: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """`(x, y)`; token ids are zero past each sequence's length (mask_zero)."""
        n = samples or self.samples
        rng = np.random.default_rng(seed)
        match self.key:
            case "a":
                x = rng.normal(size=(n, 10, 1)).astype(np.float32)
                return x, (x.sum(axis=(1, 2)) > 0).astype(np.float32)
            case "b":
                return rng.normal(size=(n, 100, 16)).astype(np.float32), rng.integers(0, 10, size=n)
            case "c":
                lengths = rng.integers(TEXT_MIN, TEXT_STEPS + 1, size=n)
                ids = rng.integers(1, VOCAB, size=(n, TEXT_STEPS))
                ids[np.arange(TEXT_STEPS)[None, :] >= lengths[:, None]] = 0
                return ids, rng.integers(0, 4, size=n)
            case "d":
                x = rng.normal(size=(n, 50, 8)).astype(np.float32)
                return x, (np.cumsum(x, axis=1) / np.sqrt(np.arange(1, 51))[None, :, None]).astype(np.float32)
        raise AssertionError(self.key)

    def lengths(self, x: np.ndarray) -> np.ndarray | None:
        """Each sequence's real steps (mask_zero: after its last non-zero id)."""
        if self.input.dtype != "int64":
            return None
        return ((x != 0) * np.arange(1, x.shape[1] + 1)).max(axis=1)

    def real_steps(self) -> float:
        """The mean number of real steps per sequence (what FLOPs are counted over)."""
        if self.key == "c":
            return (TEXT_MIN + TEXT_STEPS) / 2
        steps = self.input.shape[0]
        assert isinstance(steps, int)
        return float(steps)

    def replace(self, **changes: object) -> Workload:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


WORKLOADS = {
    "a": Workload("a", "seed", "seed: SimpleRNN(32) [10, 1], dense(1) sigmoid, batch 32", ir.Input((10, 1)),
                  (ir.SimpleRNN(32), ir.Dense(1, "sigmoid")), "binary_crossentropy", 32, 8192),
    "b": Workload("b", "lstm", "LSTM(128) [100, 16], dense(10) softmax, batch 64", ir.Input((100, 16)),
                  (ir.LSTM(128), ir.Dense(10, "softmax")), "sparse_categorical_crossentropy", 64, 1024),
    "c": Workload("c", "text", "text: embedding(5000, 64), 2x bidirectional GRU(64), variable length 10-100, batch 64",
                  ir.Input((None,), "int64"),
                  (ir.Embedding(VOCAB, 64, mask_zero=True), ir.GRU(64, return_sequences=True, bidirectional=True),
                   ir.GRU(64, bidirectional=True), ir.Dense(4, "softmax")), "sparse_categorical_crossentropy", 64, 1024),
    "d": Workload("d", "seq2seq", "seq2seq: 2x LSTM(64) sequences [50, 8], dense(8) per step, batch 32", ir.Input((50, 8)),
                  (ir.LSTM(64, return_sequences=True), ir.LSTM(64, return_sequences=True), ir.Dense(8)), "mse", 32, 2048),
}

# The same networks for keras_peer.py: plain data, no rnnc or torch needed there.
KERAS = {
    "a": {"input": [10, 1], "layers": [["SimpleRNN", 32, {}], ["Dense", 1, {"activation": "sigmoid"}]], "loss": "binary_crossentropy"},
    "b": {"input": [100, 16], "layers": [["LSTM", 128, {}], ["Dense", 10, {"activation": "softmax"}]],
          "loss": "sparse_categorical_crossentropy"},
    "c": {"input": [None], "layers": [["Embedding", VOCAB, {"output_dim": 64, "mask_zero": True}],
                                      ["BiGRU", 64, {"return_sequences": True}], ["BiGRU", 64, {}],
                                      ["Dense", 4, {"activation": "softmax"}]], "loss": "sparse_categorical_crossentropy"},
    "d": {"input": [50, 8], "layers": [["LSTM", 64, {"return_sequences": True}], ["LSTM", 64, {"return_sequences": True}],
                                       ["Dense", 8, {}]], "loss": "mse"},
}


class HandWritten(nn.Module):
    """The workload's network as one would write it in PyTorch. `forward` returns
    logits (or the regression output); `predict` applies the final activation."""

    def __init__(self, work: Workload):
        super().__init__()
        self.key = work.key
        # (torch parameter name, rnnc IR name) pairs, for load_ir_weights
        self.names: list[tuple[str, str]] = []
        match work.key:
            case "a":
                self.rnn: nn.RNNBase = nn.RNN(1, 32, batch_first=True)
                self.head = nn.Linear(32, 1)
                self._map_rnn([0])
                self._map_linear(1)
            case "b":
                self.rnn = nn.LSTM(16, 128, batch_first=True)
                self.head = nn.Linear(128, 10)
                self._map_rnn([0])
                self._map_linear(1)
            case "c":
                self.embedding = nn.Embedding(VOCAB, 64, padding_idx=0)
                self.rnn = nn.GRU(64, 64, num_layers=2, bidirectional=True, batch_first=True)
                self.head = nn.Linear(128, 4)
                self.names.append(("embedding.weight", "layers.0.weight"))
                self._map_rnn([1, 2], bidirectional=True)
                self._map_linear(3)
            case "d":
                self.rnn = nn.LSTM(8, 64, num_layers=2, batch_first=True)
                self.head = nn.Linear(64, 8)
                self._map_rnn([0, 1])
                self._map_linear(2)

    def _map_rnn(self, indices: list[int], bidirectional: bool = False) -> None:
        for depth, index in enumerate(indices):
            for suffix in ("", "_reverse")[: 2 if bidirectional else 1]:
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    self.names.append((f"rnn.{name}_l{depth}{suffix}", f"layers.{index}.{name}{suffix}"))

    def _map_linear(self, index: int) -> None:
        self.names += [("head.weight", f"layers.{index}.weight"), ("head.bias", f"layers.{index}.bias")]

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if self.key == "c":
            assert lengths is not None
            packed = pack_padded_sequence(self.embedding(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, h_n = self.rnn(packed)
            return self.head(torch.cat([h_n[-2], h_n[-1]], dim=1))
        out, state = self.rnn(x)
        if self.key == "d":
            return self.head(out)
        h_n = state[0] if isinstance(state, tuple) else state
        return self.head(h_n[-1])

    def predict(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        y = self.forward(x, lengths)
        return torch.sigmoid(y) if self.key == "a" else y if self.key == "d" else torch.softmax(y, dim=-1)

    def load_ir_weights(self, weights: dict[str, np.ndarray]) -> HandWritten:
        params = dict(self.named_parameters())
        assert sorted(params) == sorted(name for name, _ in self.names), "the name map misses parameters"
        with torch.no_grad():
            for name, ir_name in self.names:
                params[name].copy_(torch.from_numpy(np.asarray(weights[ir_name], dtype=np.float32)))
        return self


def hand_loss(work: Workload) -> nn.Module:
    return {"a": nn.BCEWithLogitsLoss(), "b": nn.CrossEntropyLoss(), "c": nn.CrossEntropyLoss(), "d": nn.MSELoss()}[work.key]


def forward_flops(work: Workload) -> float:
    """Multiply-add FLOPs (2 per multiply-add) of one sample's forward pass, counted from
    the IR over the mean number of real steps: recurrent layers 2 * gates * units *
    (inputs + units) per step and direction, dense 2 * inputs * units (per step on
    sequences), conv1d 2 * kernel * inputs * filters per output step. Elementwise work
    (activations, gates) is left out; a training step counts 3x its forward pass."""
    steps = work.real_steps()
    total = 0.0
    for node in work.model().nodes:
        layer, features = node.layer, node.input_shape[-1]
        per_step = len(node.input_shape) == 3
        match layer:
            case ir.SimpleRNN() | ir.LSTM() | ir.GRU():
                assert isinstance(features, int)
                total += 2 * layer.gates * layer.units * (features + layer.units) * steps * layer.directions
            case ir.Dense():
                assert isinstance(features, int)
                total += 2 * features * layer.units * (steps if per_step else 1)
            case ir.Conv1D():
                assert isinstance(features, int)
                total += 2 * layer.kernel_size * features * layer.filters * steps / layer.stride
            case _:
                pass
    return total
