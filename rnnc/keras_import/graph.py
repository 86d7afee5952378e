"""A Keras model's layers as a spec: a Sequential chain as version 1, a functional
model (or a chain with a graph-only kind) as version 2, with the weights named
`layers.<index>.<param>`.

A functional model's wiring is read from each layer's `inbound_nodes`: Keras 3's
`{"args": [...keras tensors...], "kwargs": {...}}` and Keras 2's
`[[name, node, tensor, kwargs], ...]`. Only positional arguments are data: the masks
Keras passes as keyword arguments (and the operations that compute them, such as
`NotEqual` after a `mask_zero` embedding) are left out, since rnnc derives masks from
lengths itself. Layers no output depends on are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .compile_settings import Compiled, compiled
from .layers import MAPPERS, NOT_MAPPED, Layer, Mapped
from .reader import KerasFile

Tensor = tuple[str, int, int]  # the layer that made it, that layer's call (node), which of its outputs


@dataclass
class Converted:
    """The spec (as a mapping, in the order it is written) and the weights file's arrays."""

    spec: dict[str, Any]
    weights: dict[str, np.ndarray]
    refusals: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def convert(keras: KerasFile, name: str) -> Converted:
    kind = keras.model["class_name"]
    config = keras.model["config"]
    out = Converted({}, {})
    if kind == "Sequential":
        _sequential(keras, config, name, out)
    elif kind in ("Functional", "Model"):
        _functional(keras, config, name, out)
    else:
        out.refusals.append(("class_name", f"{kind!r}: rnnc imports Sequential and functional models "
                                           "(a subclassed model's call is Python code)"))
    return out


def _input_of(config: dict[str, Any]) -> tuple[list[Any] | None, str]:
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    dtype = config.get("dtype", "float32")
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name", "float32")
    return (list(shape[1:]) if shape else None), ("int64" if str(dtype).startswith(("int", "uint")) else "float32")


def _input_entry(shape: list[Any], dtype: str) -> dict[str, Any]:
    return {"shape": shape, "dtype": dtype} if dtype == "int64" else {"shape": shape}


def _map(keras: KerasFile, entry: dict[str, Any], path: str, out: Converted) -> Mapped | None:
    class_name = entry.get("class_name", "")
    config = entry.get("config") or {}
    name = config.get("name") or entry.get("name", "")
    mapper = MAPPERS.get(class_name)
    if mapper is None:
        reason = NOT_MAPPED.get(class_name) or (
            "an operation written in Python, not a layer" if str(entry.get("module", "")).startswith("keras.src.ops")
            else "no rnnc layer kind computes it")
        out.refusals.append((f"{path}.class_name", f"{class_name!r}: {reason}"))
        return None
    layer = Layer(class_name, config, f"{path}.config", keras.weights.get(name, []),
                  keras.keras_version or ("2" if keras.format == "h5" else "3"))
    mapped = mapper(layer)
    out.refusals += layer.refusals
    out.notes += layer.notes
    return mapped


def _add_weights(out: Converted, index: int, mapped: Mapped) -> None:
    for param, array in mapped.weights.items():
        out.weights[f"layers.{index}.{param}"] = np.ascontiguousarray(array, dtype=np.float32)


def _final_activation(layers: list[dict[str, Any]]) -> str:
    for layer in reversed(layers):
        if layer["type"] == "dropout":
            continue
        return str(layer.get("activation", "linear")) if layer["type"] in ("dense", "activation", "conv1d") else "linear"
    return "linear"


def _sequential(keras: KerasFile, config: dict[str, Any], name: str, out: Converted) -> None:
    entries = list(config.get("layers") or [])
    shape, dtype = None, "float32"
    if entries and entries[0].get("class_name") == "InputLayer":
        shape, dtype = _input_of(entries[0].get("config") or {})
        start = 1
    else:
        start = 0
        if entries:
            first = entries[0].get("config") or {}
            shape, dtype = _input_of(first)
            if shape is None and isinstance(entries[0].get("build_config"), dict):
                shape = list(entries[0]["build_config"].get("input_shape", [None])[1:]) or None
    layers: list[dict[str, Any]] = []
    names: list[str] = []
    for i in range(start, len(entries)):
        mapped = _map(keras, entries[i], f"config.layers[{i}]", out)
        if mapped is None or not mapped.settings:
            continue
        _add_weights(out, len(layers), mapped)
        layers.append(mapped.settings)
        names.append(_identifier((entries[i].get("config") or {}).get("name", f"layer_{i}")))
    if shape is None:
        out.refusals.append(("config.layers[0]", "the model has no input shape (build it or start with keras.Input)"))
        return
    if layers and layers[0]["type"] == "embedding":
        dtype = "int64"
    _size_additive(out, layers, [])
    comp = compiled(keras.compile, _final_activation(layers))
    out.notes += comp.notes
    graph = any(layer["type"] in ("repeat_vector", "normalization", "attention", "concatenate") for layer in layers) \
        or (dtype == "float32" and len(shape) != 2) or (dtype == "int64" and len(shape) != 1)
    if not graph:
        out.spec = {"rnnc": 1, "name": name, "input": _input_entry(shape, dtype), "layers": layers,
                    "loss": comp.loss, "optimizer": comp.optimizer}
        if comp.metrics:
            out.spec["metrics"] = comp.metrics
    else:
        for layer, layer_name in zip(layers, names):
            layer["name"] = layer_name
        out.spec = {"rnnc": 2, "name": name, "inputs": {"x": _input_entry(shape, dtype)},
                    "layers": [{"name": l.pop("name"), **l} for l in layers],
                    "outputs": {names[-1]: _output(comp)} if names else {}, "optimizer": comp.optimizer}
    if comp.gradient_clip:
        out.spec["training"] = {"gradient_clip": comp.gradient_clip}


def _output(comp: Compiled) -> dict[str, Any]:
    return {"loss": comp.loss, "metrics": comp.metrics} if comp.metrics else {"loss": comp.loss}


def _identifier(name: str) -> str:
    """A Keras name as a spec's name ([A-Za-z_][A-Za-z0-9_]*)."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", str(name))
    return cleaned if re.match(r"[A-Za-z_]", cleaned) else f"_{cleaned}"


def _tensors(value: Any) -> list[Tensor]:
    """The (layer, node, tensor) each Keras 3 keras tensor in `value` comes from, in order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = (value.get("config") or {}).get("keras_history") or []
            return [(str(history[0]), int(history[1]), int(history[2]))] if len(history) == 3 else []
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, list):
        return [t for v in value for t in _tensors(v)]
    return []


STATE_TENSORS = {"LSTM": 2, "GRU": 1, "SimpleRNN": 1}  # what return_state gives after the output: h (and c)


def _calls(entry: dict[str, Any]) -> list[tuple[list[Tensor], list[Tensor]]]:
    """Per call of the layer: the tensors of its positional arguments, and those of its
    `initial_state` (Keras 2 lists them after the input of a recurrent layer)."""
    calls = []
    for node in entry.get("inbound_nodes") or []:
        if isinstance(node, dict):  # Keras 3
            calls.append((_tensors(node.get("args", [])), _tensors((node.get("kwargs") or {}).get("initial_state"))))
        else:  # Keras 2: [[name, node, tensor, kwargs], ...]
            tensors = [(str(t[0]), int(t[1]), int(t[2])) for t in node]
            split = 1 if entry.get("class_name") in STATE_TENSORS else len(tensors)
            calls.append((tensors[:split], tensors[split:]))
    return calls


def _inbound(entry: dict[str, Any]) -> list[list[Tensor]]:
    """Per call of the layer, every tensor it reads."""
    return [args + states for args, states in _calls(entry)]


def _initial_state(entry: dict[str, Any], states: list[Tensor], by_name: dict[str, Any],
                   spec_names: dict[str, str]) -> str:
    """`NAME.state` for a recurrent layer started by another's return_state (Keras's
    `initial_state=[h, c]`), or "" when the states are not one such layer's, in order."""
    source = states[0][0]
    kind = (by_name.get(source, (0, {}))[1]).get("class_name")
    expected = [(source, 0, i + 1) for i in range(STATE_TENSORS.get(str(kind), 0))]
    if kind != entry.get("class_name") or states != expected or source not in spec_names:
        return ""
    return f"{spec_names[source]}.state"


def _endpoints(value: Any) -> list[Tensor]:
    """`input_layers` / `output_layers`: [name, node, tensor], or a list (or dict) of them."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in _endpoints(v)]
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [(value[0], int(value[1]), int(value[2]))]
    if isinstance(value, list):
        return [t for v in value for t in _endpoints(v)]
    return []


def _functional(keras: KerasFile, config: dict[str, Any], name: str, out: Converted) -> None:
    entries = list(config.get("layers") or [])
    by_name = {str(e.get("name") or (e.get("config") or {}).get("name")): (i, e) for i, e in enumerate(entries)}
    outputs = _endpoints(config.get("output_layers"))
    needed: set[str] = set()
    stack = [o[0] for o in outputs]
    while stack:
        current = stack.pop()
        if current in needed or current not in by_name:
            continue
        needed.add(current)
        for call in _inbound(by_name[current][1]):
            stack += [t[0] for t in call]
    state_givers = {t[0] for n in needed for _, states in _calls(by_name[n][1])[:1] for t in states}
    inputs: dict[str, Any] = {}
    layers: list[dict[str, Any]] = []
    spec_names: dict[str, str] = {}
    for i, entry in enumerate(entries):
        keras_name = str(entry.get("name") or (entry.get("config") or {}).get("name"))
        if keras_name not in needed:
            continue
        path = f"config.layers[{i}]"
        if entry.get("class_name") == "InputLayer":
            shape, dtype = _input_of(entry.get("config") or {})
            spec_names[keras_name] = _identifier(keras_name)
            inputs[spec_names[keras_name]] = _input_entry(shape or [], dtype)
            continue
        calls = _inbound(entry)
        if len(calls) != 1:
            out.refusals.append((f"{path}.inbound_nodes", f"layer '{keras_name}' is called {len(calls)} times; "
                                 "rnnc's layers own their weights (no sharing)"))
            continue
        sources, states = _calls(entry)[0]
        if any(node or tensor for _, node, tensor in sources):
            out.refusals.append((f"{path}.inbound_nodes", "reads a second output of a layer (return_state, a "
                                 "shared layer); rnnc's layers have one output (a state starts another recurrent "
                                 "layer only: initial_state)"))
            continue
        initial = _initial_state(entry, states, by_name, spec_names) if states else ""
        if states and not initial:
            out.refusals.append((f"{path}.inbound_nodes", "initial_state must be the whole state (h, and c for an "
                                 "LSTM) of one earlier layer of the same kind, in order"))
            continue
        if keras_name in state_givers and (entry.get("config") or {}).get("return_state"):
            entry = {**entry, "config": {**entry["config"], "return_state": False}}  # read as NAME.state
        mapped = _map(keras, entry, path, out)
        if mapped is None or not mapped.settings:
            continue
        settings = dict(mapped.settings)
        if initial:
            settings["initial_state"] = initial
        reads = [spec_names.get(s[0], _identifier(s[0])) for s in sources]
        if settings["type"] == "attention":
            if len(reads) == 3 and reads[2] != reads[1]:
                out.refusals.append((f"{path}.inbound_nodes", "a key other than the value; rnnc's attention "
                                     "scores the value itself"))
            if len(reads) < 2:
                out.refusals.append((f"{path}.inbound_nodes", "attention needs [query, value]"))
                continue
            layer = {"name": _identifier(keras_name), **settings, "input": reads[1], "query": reads[0]}
        else:
            layer = {"name": _identifier(keras_name), **settings, "input": reads[0] if len(reads) == 1 else reads}
        _add_weights(out, len(layers), mapped)
        layers.append(layer)
        spec_names[keras_name] = layer["name"]
        if settings["type"] == "embedding" and reads[0] in inputs:
            inputs[reads[0]]["dtype"] = "int64"  # Keras embeds float inputs too
    _size_additive(out, layers, list(inputs))
    spec_outputs: dict[str, Any] = {}
    losses = (keras.compile or {}).get("loss")
    for k, (out_name, _, _) in enumerate(outputs):
        if out_name not in spec_names or out_name not in by_name or out_name in {n for n in inputs}:
            continue
        per_output = dict(keras.compile) if keras.compile else None
        if per_output is not None and isinstance(losses, dict):
            per_output["loss"] = losses.get(out_name)
        elif per_output is not None and isinstance(losses, list):
            per_output["loss"] = losses[k] if k < len(losses) else None
        layer = next(l for l in layers if l["name"] == spec_names[out_name])
        comp = compiled(per_output, _final_activation([layer]))
        out.notes += [n for n in comp.notes if n not in out.notes]
        spec_outputs[spec_names[out_name]] = _output(comp)
        optimizer, clip = comp.optimizer, comp.gradient_clip
    if not spec_outputs:
        out.refusals.append(("config.output_layers", "no output is a layer rnnc imports"))
        return
    out.spec = {"rnnc": 2, "name": name, "inputs": inputs, "layers": layers, "outputs": spec_outputs,
                "optimizer": optimizer}
    if clip:
        out.spec["training"] = {"gradient_clip": clip}


def _size_additive(out: Converted, layers: list[dict[str, Any]], inputs: list[str]) -> None:
    """Keras's AdditiveAttention has no projections: rnnc's additive score with identity
    matrices of the value's size, and its scale (ones without one) as `v`."""
    for index, layer in enumerate(layers):
        if layer.get("score") != "additive" or "units" in layer:
            continue
        size = _size_of(out, layers, layer.get("input"), index)
        if size is None:
            out.refusals.append((f"layers[{index}]", "AdditiveAttention's size cannot be read from the layer before it"))
            continue
        layer["units"] = size
        eye = np.eye(size, dtype=np.float32)
        scale = out.weights.pop(f"layers.{index}.scale", None)
        out.weights[f"layers.{index}.weight_query"] = eye
        out.weights[f"layers.{index}.weight_value"] = eye.copy()
        out.weights[f"layers.{index}.v"] = scale if scale is not None else np.ones(size, np.float32)


def _size_of(out: Converted, layers: list[dict[str, Any]], name: Any, index: int) -> int | None:
    for i in range(index - 1, -1, -1):
        layer = layers[i]
        if name is not None and layer.get("name") != name:
            continue
        for param in ("weight_hh", "weight"):
            w = out.weights.get(f"layers.{i}.{param}")
            if w is not None:
                units = w.shape[1] if param == "weight_hh" or layer["type"] == "embedding" else w.shape[0]
                return units * (2 if layer.get("bidirectional") and layer.get("merge_mode", "concat") == "concat" else 1)
        return None
    return None
