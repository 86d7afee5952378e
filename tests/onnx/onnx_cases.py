"""The ONNX backend's test models, built by hand as IR (no YAML), and helpers to run them.

`CASES` is the parity matrix's table: every layer kind and option, each a small model
on a few features. Weights are uniform ±0.3 so saturating activations do not hide a
wrong gate order. `inputs` draws a batch (token ids zero past each length for
`mask_zero` models).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

import rnnc_onnx
from rnnc import ir
from rnnc.shapes import infer_nodes

FEATURES = 3
VOCAB = 11
BATCHES = (1, 3, 17)
STEPS = (1, 7, 50)


def make_model(
    layers: Sequence[ir.Layer],
    shape: tuple[int | None, ...] = (None, FEATURES),
    dtype: str = "float32",
    streaming: bool = False,
    opset: int = 21,
    loss: str = "mse",
    name: str = "test",
) -> ir.Model:
    input_ = ir.Input(shape=tuple(shape), dtype=dtype)  # type: ignore[arg-type]
    nodes, problems = infer_nodes(input_, list(layers))
    assert not problems, problems
    return ir.Model(
        name=name,
        input=input_,
        nodes=tuple(nodes),
        loss=ir.Loss(loss),  # type: ignore[arg-type]
        optimizer=ir.Optimizer("adam"),
        export=ir.Export(opset=opset, streaming=streaming),
        spec_hash="0" * 64,
    )


def random_weights(model: ir.Model, seed: int = 0, scale: float = 0.3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {p.name: rng.uniform(-scale, scale, p.shape).astype(np.float32) for p in model.params}


def session(model: ir.Model, weights: dict[str, np.ndarray]) -> ort.InferenceSession:
    return ort.InferenceSession(rnnc_onnx.lower(model, weights).SerializeToString(), providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Case:
    id: str
    layers: tuple[ir.Layer, ...]
    shape: tuple[int | None, ...] = (None, FEATURES)  # None: variable length, random lengths
    dtype: str = "float32"
    input_scale: float = 1.0  # wide inputs reach every region of an activation

    def model(self, **options: object) -> ir.Model:
        return make_model(self.layers, self.shape, self.dtype, **options)  # type: ignore[arg-type]

    @property
    def mask_zero(self) -> bool:
        return any(isinstance(layer, ir.Embedding) and layer.mask_zero for layer in self.layers)

    @property
    def min_steps(self) -> int:
        """A valid convolution needs a kernel's worth of steps."""
        valid = [layer.kernel_size for layer in self.layers if isinstance(layer, ir.Conv1D) and layer.padding == "valid"]
        return max(valid, default=1)


def inputs(case: Case, batch: int, steps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """A batch for `case`; lengths in [min_steps, steps] when the input is variable-length.
    For `mask_zero` on fixed-length input the ids carry the padding (and empty rows)."""
    variable = case.shape[0] is None
    lengths = rng.integers(case.min_steps, steps + 1, size=batch).astype(np.int64) if variable else None
    if case.dtype == "int64":
        ids = rng.integers(1, VOCAB, size=(batch, steps)).astype(np.int64)
        if case.mask_zero and lengths is None:  # padding the model finds from the ids
            ids[rng.random((batch, steps)) < 0.2] = 0  # zeros inside a sequence are real steps
            ends = rng.integers(0, steps + 1, size=batch)
            ids[np.arange(steps)[None, :] >= ends[:, None]] = 0
        elif lengths is not None:
            ids[np.arange(steps)[None, :] >= lengths[:, None]] = 0
        return ids, lengths
    return (case.input_scale * rng.normal(size=(batch, steps, FEATURES))).astype(np.float32), lengths


R = ir.SimpleRNN
A = ir.Activation
F, V = (10, FEATURES), (None, FEATURES)  # fixed-length and variable-length inputs

CASES = [
    # recurrent kinds, one direction, last step
    Case("simple_rnn_tanh", (R(5),), F),
    Case("simple_rnn_relu", (R(5, activation="relu"),), F),
    Case("lstm", (ir.LSTM(5),), F),
    Case("gru", (ir.GRU(5),), F),
    # sequences out, per-step dense
    Case("lstm_seq_dense", (ir.LSTM(4, return_sequences=True), ir.Dense(2)), F),
    Case("gru_seq", (ir.GRU(4, return_sequences=True),), F),
    # bidirectional, both outputs
    Case("bi_simple_rnn", (R(4, bidirectional=True),), F),
    Case("bi_lstm_seq", (ir.LSTM(4, return_sequences=True, bidirectional=True),), F),
    Case("bi_gru", (ir.GRU(4, bidirectional=True),), F),
    Case("bi_relu_rnn_seq", (R(3, activation="relu", return_sequences=True, bidirectional=True),), F),
    # stacked (torch fuses the first two pairs)
    Case("stacked_lstm", (ir.LSTM(4, return_sequences=True), ir.LSTM(4)), F),
    Case("stacked_bi_gru", (ir.GRU(4, return_sequences=True, bidirectional=True), ir.GRU(4, bidirectional=True)), F),
    Case("stacked_mixed", (ir.GRU(5, return_sequences=True), ir.LSTM(3, return_sequences=True), R(2)), F),
    # no bias
    Case("no_bias", (ir.LSTM(4, use_bias=False, return_sequences=True), ir.GRU(3, use_bias=False), ir.Dense(2, use_bias=False)), F),
    Case("no_bias_rnn", (R(4, use_bias=False, bidirectional=True),), F),
    # variable length
    Case("var_lstm", (ir.LSTM(4),), V),
    Case("var_lstm_seq", (ir.LSTM(4, return_sequences=True),), V),
    Case("var_bi_gru", (ir.GRU(4, bidirectional=True),), V),
    Case("var_bi_lstm_seq_dense", (ir.LSTM(3, return_sequences=True, bidirectional=True), ir.Dense(2, "tanh")), V),
    Case("var_stacked", (R(4, return_sequences=True), ir.GRU(4, return_sequences=True), ir.LSTM(3)), V),
    # embeddings
    Case("embedding", (ir.Embedding(VOCAB, 4), ir.LSTM(3)), (10,), "int64"),
    Case("embedding_mask_zero", (ir.Embedding(VOCAB, 4, mask_zero=True), ir.GRU(3, return_sequences=True), ir.Dense(2)), (10,), "int64"),
    Case("embedding_mask_zero_pool", (ir.Embedding(VOCAB, 4, mask_zero=True), ir.LSTM(3, return_sequences=True), ir.Pool("max")), (10,), "int64"),
    Case("embedding_mask_zero_lengths", (ir.Embedding(VOCAB, 4, mask_zero=True), ir.Conv1D(3, 3, stride=2), ir.LSTM(3)), (None,), "int64"),
    Case("embedding_variable", (ir.Embedding(VOCAB, 4), ir.Pool("mean")), (None,), "int64"),
    # conv1d
    Case("conv_same", (ir.Conv1D(4, 3), ir.LSTM(3)), F),
    Case("conv_same_stride2", (ir.Conv1D(4, 3, stride=2), ir.GRU(3, return_sequences=True)), F),
    Case("conv_valid", (ir.Conv1D(4, 3, padding="valid", activation="relu"),), F),
    Case("conv_valid_stride2", (ir.Conv1D(4, 2, stride=2, padding="valid"), ir.Pool("max")), F),
    Case("var_conv_same", (ir.Conv1D(4, 5, activation="tanh"), ir.LSTM(3, return_sequences=True)), V),
    Case("var_conv_same_stride2", (ir.Conv1D(4, 4, stride=2), ir.GRU(3)), V),
    Case("var_conv_same_stride3_seq", (ir.Conv1D(3, 5, stride=3),), V),
    Case("var_conv_valid_stride2", (ir.Conv1D(4, 3, stride=2, padding="valid"), ir.LSTM(3)), V),
    # layer_norm, pool, dropout, activation layers
    Case("layer_norm", (ir.LSTM(4, return_sequences=True), ir.LayerNorm(), ir.Dropout(0.5), ir.Pool("last")), F),
    Case("var_layer_norm_seq", (ir.Dense(4), ir.LayerNorm(eps=1e-3), A("elu")), V),
    *[Case(f"pool_{mode}", (ir.Dense(4), ir.Pool(mode)), F) for mode in ("last", "mean", "max")],  # type: ignore[arg-type]
    *[Case(f"var_pool_{mode}", (ir.GRU(4, return_sequences=True), ir.Pool(mode)), V) for mode in ("last", "mean", "max")],  # type: ignore[arg-type]
    Case("lstm_dense_softmax", (ir.LSTM(6), ir.Dense(4, "softmax")), F),
    # every activation, on a per-step dense
    *[Case(f"activation_{name}", (ir.Dense(4, name),), F, input_scale=12.0) for name in ir.ACTIVATIONS],  # type: ignore[arg-type]
    *[Case(f"activation_layer_{name}", (ir.LSTM(4), A(name)), F) for name in ("softmax", "log_softmax", "hard_sigmoid")],  # type: ignore[arg-type]
]
