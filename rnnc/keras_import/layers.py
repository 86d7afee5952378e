"""One Keras layer -> one rnnc layer: its settings and its weights in rnnc's layout.

Each mapped Keras class has a function here that reads the layer's config, refuses
what rnnc cannot compute the same way (with the config key and the reason), notes
what only training would miss (regularisers, constraints), and converts the weights:
Keras kernels are `[in, out]` with the gates side by side (LSTM i,f,c,o; GRU z,r,h),
rnnc's are PyTorch's `[out, in]` with the gates stacked (LSTM i,f,g,o; GRU r,z,n), a
Keras recurrent layer's one bias becomes `bias_ih` beside a zero `bias_hh`, and a
reset-after GRU's bias `[2, 3u]` is the two. The Keras options a layer kind of rnnc
has (`recurrent_activation`, `reset_after`, `recurrent_dropout`, `merge_mode`) map
when the kind declares them; otherwise they are refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnc.layers import ALL_KINDS
from rnnc.layers.base import ACTIVATIONS

ACTIVATION_NAMES = {"swish": "silu", None: "linear"} | {name: name for name in ACTIVATIONS}
# Settings that change how a model trains but not what it computes: not carried, said so.
TRAINING_ONLY = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "activity_regularizer",
                 "embeddings_regularizer", "beta_regularizer", "gamma_regularizer", "kernel_constraint",
                 "recurrent_constraint", "bias_constraint", "embeddings_constraint", "beta_constraint",
                 "gamma_constraint")


@dataclass
class Mapped:
    """An rnnc layer: its `type` and settings, and its weights by parameter name
    (`weight_ih`, `bias`...), without the `layers.<i>.` prefix."""

    settings: dict[str, Any]
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Layer:
    """A Keras layer to map, with what the mapping reports back."""

    class_name: str
    config: dict[str, Any]
    path: str  # where its config sits in the file, e.g. "config.layers[2].config"
    arrays: list[np.ndarray]
    keras_version: str = "3"
    refusals: list[tuple[str, str]] = field(default_factory=list)  # (JSON path, reason)
    notes: list[str] = field(default_factory=list)

    def refuse(self, key: str, reason: str) -> None:
        self.refusals.append((f"{self.path}.{key}" if key else self.path, reason))

    def get(self, key: str, default: Any = None) -> Any:
        return self.config.get(key, default)

    def expect(self, key: str, allowed: Any, reason: str) -> None:
        """Refuse `key` unless its value (absent: allowed) is `allowed` (a value or a tuple)."""
        value = self.config.get(key, allowed if not isinstance(allowed, tuple) else allowed[0])
        if value not in (allowed if isinstance(allowed, tuple) else (allowed,)):
            self.refuse(key, f"{value!r}: {reason}")

    def activation(self, key: str = "activation", default: str = "linear") -> str:
        value = self.config.get(key, default)
        if isinstance(value, dict):  # a serialised function: {"class_name": "function", "config": "relu"}
            value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
        if value == "hard_sigmoid" and self.keras_version.startswith("2"):
            self.refuse(key, "Keras 2's hard_sigmoid is 0.2x + 0.5; rnnc's is Keras 3's relu6(x + 3) / 6")
            return "hard_sigmoid"
        name = ACTIVATION_NAMES.get(value)
        if name is None:
            self.refuse(key, f"{value!r}: no rnnc activation of that name ({', '.join(ACTIVATIONS)})")
            return "linear"
        return name

    def arrays_count(self, expected: int) -> bool:
        if len(self.arrays) != expected:
            self.refuse("", f"{self.class_name} '{self.get('name')}': expected {expected} weight arrays, "
                            f"the file holds {len(self.arrays)}")
            return False
        return True

    def note_training_only(self) -> None:
        for key in TRAINING_ONLY:
            if self.config.get(key) is not None:
                self.notes.append(f"{self.path}.{key}: not carried (rnnc has none); predictions are unaffected")


def has_setting(kind: str, name: str) -> bool:
    return any(f.name == name for f in dataclasses.fields(ALL_KINDS[kind]))  # type: ignore[arg-type]


def _t(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, dtype=np.float32).T)


def _gru_order(array: np.ndarray, units: int) -> np.ndarray:
    """Keras's GRU gates z, r, h on the last axis -> rnnc's r, z, n."""
    z, r, h = (array[..., i * units:(i + 1) * units] for i in range(3))
    return np.concatenate([r, z, h], axis=-1)


RECURRENT = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}


def recurrent(layer: Layer, inner: bool = False) -> Mapped:
    """SimpleRNN, LSTM, GRU (`inner`: the layer a Bidirectional wraps, whose own
    go_backwards the wrapper sets)."""
    kind = RECURRENT[layer.class_name]
    units = int(layer.get("units"))
    settings: dict[str, Any] = {"type": kind, "units": units}
    for key, reason in (("stateful", "rnnc carries state between chunks of one sequence (export.streaming), "
                                      "not between batches"),
                        ("return_state", "a layer's state is NAME.state in a spec version 2 graph, "
                                         "read by initial_state; import keeps layers with one output"),
                        ("time_major", "rnnc's sequences are batch-major")):
        layer.expect(key, (False, None), reason)
    if not inner:
        layer.expect("go_backwards", (False, None), "rnnc reads a sequence backwards only inside a bidirectional layer")
    if kind == "simple_rnn":
        activation = layer.activation(default="tanh")
        if activation not in ("tanh", "relu"):
            layer.refuse("activation", f"{activation!r}: rnnc's simple_rnn takes tanh or relu")
        elif activation != "tanh":
            settings["activation"] = activation
    else:
        if layer.activation(default="tanh") != "tanh":
            layer.refuse("activation", f"{layer.get('activation')!r}: rnnc's {kind} uses tanh")
        gates = layer.activation("recurrent_activation", "sigmoid")
        if gates != "sigmoid":
            if has_setting(kind, "recurrent_activation") and gates == "hard_sigmoid":
                settings["recurrent_activation"] = gates
            else:
                layer.refuse("recurrent_activation", f"{gates!r}: rnnc's {kind} gates use sigmoid"
                             + (" or hard_sigmoid" if has_setting(kind, "recurrent_activation") else ""))
    reset_after = bool(layer.get("reset_after", True)) if kind == "gru" else True
    if not reset_after:
        if has_setting("gru", "reset_after"):
            settings["reset_after"] = False
        else:
            layer.refuse("reset_after", "False: rnnc's gru applies the reset gate after the recurrent matmul "
                                        "(reset_after: true, Keras 3's default)")
    if float(layer.get("dropout") or 0):
        settings["dropout"] = float(layer.get("dropout"))
    if float(layer.get("recurrent_dropout") or 0):
        if has_setting(kind, "recurrent_dropout"):
            settings["recurrent_dropout"] = float(layer.get("recurrent_dropout"))
        else:
            layer.refuse("recurrent_dropout", "rnnc drops no recurrent state (dropout drops the inputs)")
    if settings.get("return_sequences") is None and layer.get("return_sequences"):
        settings["return_sequences"] = True
    use_bias = layer.get("use_bias", True)
    if not use_bias:
        settings["use_bias"] = False
    layer.note_training_only()
    return Mapped(settings, recurrent_weights(kind, units, layer.arrays, use_bias, reset_after) if layer.arrays_count(
        3 if use_bias else 2) else {})


def recurrent_weights(kind: str, units: int, arrays: list[np.ndarray], use_bias: bool, reset_after: bool,
                      suffix: str = "") -> dict[str, np.ndarray]:
    """One direction's Keras kernel, recurrent kernel (and bias) in rnnc's names and layout."""
    kernel, recurrent_kernel = arrays[0], arrays[1]
    order: Callable[[np.ndarray], np.ndarray] = (lambda a: _gru_order(a, units)) if kind == "gru" else (lambda a: a)
    out = {f"weight_ih{suffix}": _t(order(kernel)), f"weight_hh{suffix}": _t(order(recurrent_kernel))}
    if use_bias:
        bias = np.asarray(arrays[2], dtype=np.float32)
        if kind == "gru" and reset_after:
            out[f"bias_ih{suffix}"] = order(bias[0]).copy()
            out[f"bias_hh{suffix}"] = order(bias[1]).copy()
        elif kind == "gru":
            out[f"bias_ih{suffix}"] = order(bias.reshape(-1)).copy()
        else:
            out[f"bias_ih{suffix}"] = bias.reshape(-1).copy()
            out[f"bias_hh{suffix}"] = np.zeros_like(out[f"bias_ih{suffix}"])
    return out


def bidirectional(layer: Layer) -> Mapped:
    inner_config = layer.get("layer") or {}
    inner_class = inner_config.get("class_name")
    if inner_class not in RECURRENT:
        layer.refuse("layer.class_name", f"{inner_class!r}: rnnc's bidirectional layers are simple_rnn, lstm and gru")
        return Mapped({})
    config = inner_config.get("config", {})
    backward = (layer.get("backward_layer") or {}).get("config")
    if backward is not None:
        ignore = {"name", "go_backwards", "dtype", "trainable"}
        differ = sorted(k for k in set(config) | set(backward) if k not in ignore and config.get(k) != backward.get(k)
                        and not k.endswith("_initializer"))
        if differ:
            layer.refuse("backward_layer", f"its {', '.join(differ)} differ from the forward layer's; "
                                           "rnnc's two directions share their settings")
    half = len(layer.arrays) // 2
    inner = Layer(inner_class, config, f"{layer.path}.layer.config", layer.arrays[:half], layer.keras_version)
    mapped = recurrent(inner, inner=True)
    layer.refusals += inner.refusals
    layer.notes += inner.notes
    if inner.refusals:
        return Mapped({})
    mapped.settings["bidirectional"] = True
    merge = layer.get("merge_mode", "concat")
    if merge != "concat":
        if has_setting(mapped.settings["type"], "merge_mode") and merge in ("sum", "mul", "ave"):
            mapped.settings["merge_mode"] = merge
        else:
            layer.refuse("merge_mode", f"{merge!r}: rnnc joins the two directions by concatenation")
    kind, units = mapped.settings["type"], mapped.settings["units"]
    use_bias = mapped.settings.get("use_bias", True)
    mapped.weights.update(recurrent_weights(kind, units, layer.arrays[half:], use_bias,
                                            mapped.settings.get("reset_after", True), suffix="_reverse"))
    return mapped


def dense(layer: Layer) -> Mapped:
    settings: dict[str, Any] = {"type": "dense", "units": int(layer.get("units"))}
    activation = layer.activation()
    if activation != "linear":
        settings["activation"] = activation
    use_bias = layer.get("use_bias", True)
    if not use_bias:
        settings["use_bias"] = False
    layer.note_training_only()
    if layer.get("lora_rank"):
        layer.refuse("lora_rank", "LoRA adapters are not imported")
    if not layer.arrays_count(2 if use_bias else 1):
        return Mapped(settings)
    weights = {"weight": _t(layer.arrays[0])}
    if use_bias:
        weights["bias"] = np.asarray(layer.arrays[1], dtype=np.float32)
    return Mapped(settings, weights)


def time_distributed(layer: Layer) -> Mapped:
    inner = layer.get("layer") or {}
    if inner.get("class_name") != "Dense":
        layer.refuse("layer.class_name", f"{inner.get('class_name')!r}: rnnc imports TimeDistributed(Dense) only "
                                         "(its dense applies per timestep already)")
        return Mapped({})
    wrapped = Layer("Dense", inner.get("config", {}), f"{layer.path}.layer.config", layer.arrays, layer.keras_version)
    mapped = dense(wrapped)
    layer.refusals += wrapped.refusals
    layer.notes += wrapped.notes
    return mapped


def embedding(layer: Layer) -> Mapped:
    settings: dict[str, Any] = {"type": "embedding", "vocab_size": int(layer.get("input_dim")),
                                "dim": int(layer.get("output_dim"))}
    if layer.get("mask_zero"):
        settings["mask_zero"] = True  # rnnc.keras_import makes it `anywhere` (Keras's) where the model allows
    layer.note_training_only()
    if not layer.arrays_count(1):
        return Mapped(settings)
    return Mapped(settings, {"weight": np.asarray(layer.arrays[0], dtype=np.float32)})


def conv1d(layer: Layer) -> Mapped:
    strides = layer.get("strides", [1])
    stride = int(strides[0] if isinstance(strides, list) else strides)
    kernel_size = layer.get("kernel_size")
    settings: dict[str, Any] = {"type": "conv1d", "filters": int(layer.get("filters")),
                                "kernel_size": int(kernel_size[0] if isinstance(kernel_size, list) else kernel_size)}
    if stride != 1:
        settings["stride"] = stride
    layer.expect("padding", ("same", "valid"), "rnnc's conv1d pads 'same' or 'valid'")
    if layer.get("padding", "valid") == "valid":
        settings["padding"] = "valid"
    dilation = layer.get("dilation_rate", [1])
    if (dilation[0] if isinstance(dilation, list) else dilation) != 1:
        layer.refuse("dilation_rate", f"{dilation!r}: rnnc's conv1d is not dilated")
    layer.expect("groups", (1, None), "rnnc's conv1d is not grouped")
    layer.expect("data_format", ("channels_last", None), "rnnc's sequences are [timesteps, features]")
    activation = layer.activation()
    if activation != "linear":
        settings["activation"] = activation
    use_bias = layer.get("use_bias", True)
    layer.note_training_only()
    if not layer.arrays_count(2 if use_bias else 1):
        return Mapped(settings)
    kernel = np.asarray(layer.arrays[0], dtype=np.float32)  # [k, in, filters]
    bias = np.asarray(layer.arrays[1], dtype=np.float32) if use_bias else np.zeros(kernel.shape[2], np.float32)
    if not use_bias:
        layer.notes.append(f"{layer.path}.use_bias: False imported as a zero bias, which training would move")
    return Mapped(settings, {"weight": np.ascontiguousarray(kernel.transpose(2, 1, 0)), "bias": bias})


def layer_norm(layer: Layer) -> Mapped:
    axis = layer.get("axis", -1)
    if axis not in (-1, [-1]):
        layer.refuse("axis", f"{axis!r}: rnnc normalises over the last axis (-1)")
    if layer.get("rms_scaling"):
        layer.refuse("rms_scaling", "rnnc's layer_norm subtracts the mean")
    settings: dict[str, Any] = {"type": "layer_norm", "eps": float(layer.get("epsilon", 1e-3))}
    center, scale = layer.get("center", True), layer.get("scale", True)
    layer.note_training_only()
    if not layer.arrays_count(int(center) + int(scale)):
        return Mapped(settings)
    arrays = list(layer.arrays)
    gamma = np.asarray(arrays.pop(0), np.float32) if scale else None
    beta = np.asarray(arrays.pop(0), np.float32) if center else None
    size = (gamma if gamma is not None else beta).shape[0] if (gamma is not None or beta is not None) else 0
    if not (center and scale):
        layer.notes.append(f"{layer.path}: center/scale off imported as fixed zeros/ones, which training would move")
    if size == 0:
        layer.refuse("", "a layer_norm without scale and center has no weights to size it by")
        return Mapped(settings)
    return Mapped(settings, {"weight": gamma if gamma is not None else np.ones(size, np.float32),
                             "bias": beta if beta is not None else np.zeros(size, np.float32)})


def normalization(layer: Layer) -> Mapped:
    axis = layer.get("axis", -1)
    if axis not in (-1, [-1]):
        layer.refuse("axis", f"{axis!r}: rnnc normalises each feature (axis -1)")
    if layer.get("invert"):
        layer.refuse("invert", "rnnc's normalization does not undo itself")
    if layer.get("mean") is not None and layer.get("variance") is not None:
        mean, variance = np.asarray(layer.get("mean"), np.float32), np.asarray(layer.get("variance"), np.float32)
    elif len(layer.arrays) >= 2:
        mean, variance = (np.asarray(a, np.float32) for a in layer.arrays[:2])
    else:
        layer.refuse("", "a Normalization without mean and variance (never adapted) has nothing to import")
        return Mapped({"type": "normalization"})
    return Mapped({"type": "normalization"}, {"mean": mean.reshape(-1).copy(), "variance": variance.reshape(-1).copy()})


def masking(layer: Layer) -> Mapped:
    return Mapped({"type": "masking", "mask_value": float(layer.get("mask_value", 0.0))})


def dropout(layer: Layer) -> Mapped:
    return Mapped({"type": "dropout", "rate": float(layer.get("rate"))})


def activation(layer: Layer) -> Mapped:
    return Mapped({"type": "activation", "activation": layer.activation()})


def pooling(layer: Layer) -> Mapped:
    if layer.get("keepdims"):
        layer.refuse("keepdims", "rnnc's pool gives one vector per sequence")
    layer.expect("data_format", ("channels_last", None), "rnnc's sequences are [timesteps, features]")
    mode = "mean" if layer.class_name == "GlobalAveragePooling1D" else "max"
    return Mapped({"type": "pool", "mode": mode})


def merge(layer: Layer) -> Mapped:
    if layer.class_name == "Concatenate" and layer.get("axis", -1) != -1:
        layer.refuse("axis", f"{layer.get('axis')!r}: rnnc concatenates on the last axis (-1)")
    return Mapped({"type": layer.class_name.lower()})


def repeat_vector(layer: Layer) -> Mapped:
    return Mapped({"type": "repeat_vector", "n": int(layer.get("n"))})


def attention(layer: Layer) -> Mapped:
    """Keras's Attention (dot, unscaled) and AdditiveAttention, which is rnnc's
    additive score with identity matrices (and its scale as `v`, ones without it)."""
    if layer.get("dropout"):
        layer.notes.append(f"{layer.path}.dropout: not carried (rnnc's attention drops no scores); "
                           "predictions are unaffected")
    if layer.class_name == "Attention":
        layer.expect("score_mode", "dot", "rnnc's dot score is Keras's 'dot'")
        if layer.get("use_scale"):
            layer.refuse("use_scale", "True: Keras learns one scalar; rnnc's scale: true divides by sqrt(d)")
        return Mapped({"type": "attention"})
    scale = {"scale": np.asarray(layer.arrays[0], np.float32).reshape(-1)} if layer.get("use_scale", True) and layer.arrays else {}
    return Mapped({"type": "attention", "score": "additive"}, scale)  # the graph sizes its identity weights


MAPPERS: dict[str, Callable[[Layer], Mapped]] = {
    "SimpleRNN": recurrent, "LSTM": recurrent, "GRU": recurrent, "Bidirectional": bidirectional,
    "Dense": dense, "TimeDistributed": time_distributed, "Embedding": embedding, "Conv1D": conv1d,
    "LayerNormalization": layer_norm, "Normalization": normalization, "Dropout": dropout,
    "Activation": activation, "GlobalAveragePooling1D": pooling, "GlobalMaxPooling1D": pooling,
    "Concatenate": merge, "Add": merge, "Average": merge, "Multiply": merge, "RepeatVector": repeat_vector,
    "Attention": attention, "AdditiveAttention": attention,
} | ({"Masking": masking} if "masking" in ALL_KINDS else {})
# Kinds rnnc lacks, and why, so that a refusal says more than "unknown".
NOT_MAPPED = {
    "Masking": "rnnc has no masking layer; pad at the end and give lengths, or use an embedding with mask_zero",
    "Flatten": "rnnc keeps the time axis; reduce it with a recurrent layer or a pool",
    "Reshape": "rnnc's layers keep their shapes' meaning; reshaping is not one of them",
    "Subtract": "rnnc merges with concatenate, add, multiply or average",
    "Maximum": "rnnc merges with concatenate, add, multiply or average",
    "Minimum": "rnnc merges with concatenate, add, multiply or average",
    "Dot": "rnnc merges with concatenate, add, multiply or average",
    "MultiHeadAttention": "rnnc's attention has one head (Attention or AdditiveAttention)",
    "BatchNormalization": "rnnc normalises with layer_norm or normalization",
    "Lambda": "a Lambda layer is Python code; a spec is data",
    "SpatialDropout1D": "rnnc's dropout drops values, not whole channels",
}
