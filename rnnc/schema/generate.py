"""spec-v1.json generated from the definitions: the layer kinds' and the other sections'.

`spec_schema()` builds the JSON Schema: each layer kind's branch from its dataclass in
`rnnc.layers` (a setting's type from its annotation; its default, shared range and
description from its `setting()`; required when it has no default), the shared
ranges from `rnnc.layers.base.RANGES`, and the other sections from
`rnnc.schema.sections`. `python -m rnnc.schema --write` refreshes the shipped file
(which editors read) and `--check` says whether it is stale, as a test does.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from .. import layers
from ..layers.base import RANGES, LayerKind
from . import sections

_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def _type_of(annotation: Any) -> dict[str, Any]:
    """JSON Schema's word for a setting's Python type: integer, number, an enum..."""
    if typing.get_origin(annotation) is typing.Literal:
        return {"enum": list(typing.get_args(annotation))}
    if typing.get_origin(annotation) is typing.Union:  # `X | None`: a setting that may be absent (None)
        (present,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _type_of(present)
    assert not isinstance(annotation, types.UnionType), f"a setting takes one type, got {annotation}"
    return {"type": _JSON_TYPES[annotation]}


def _order(cls: type) -> list[dataclasses.Field[Any]]:
    """Required settings first, then the kind's own, then those it shares with its
    family: simple_rnn reads units, activation, then what every recurrent kind takes."""
    fields = dataclasses.fields(cls)
    own = set(vars(cls).get("__annotations__", {}))
    required = [f for f in fields if f.default is dataclasses.MISSING]
    rest = [f for f in fields if f.default is not dataclasses.MISSING]
    return required + [f for f in rest if f.name in own] + [f for f in rest if f.name not in own]


def _setting(field: dataclasses.Field[Any], annotation: Any) -> dict[str, Any]:
    meta = field.metadata["setting"]
    prop = {"$ref": f"#/$defs/{meta['shared']}"} if meta["shared"] else _type_of(annotation)
    prop.update(meta["bounds"])
    if field.default is not dataclasses.MISSING and field.default is not None:
        prop["default"] = field.default
    if meta["description"]:
        prop["description"] = meta["description"]
    return prop


_NAME = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}
# What every layer of a graph (spec version 2) may say besides its settings.
_WIRING = {
    "name": {**_NAME, "description": "How inputs:, outputs: and other layers refer to this layer."},
    "input": {"description": "An input or an earlier layer (a list for merges); default: the layer before.",
              "anyOf": [{"type": "string"}, {"type": "array", "minItems": 2, "items": {"type": "string"}}]},
}
_INITIAL_STATE = {"type": "string",
                  "description": "NAME.state: the final state of an earlier recurrent layer of the same kind and size."}


def layer_schema(cls: type[LayerKind], version: int = 1) -> dict[str, Any]:
    """The `$defs` entry of one layer kind (with the graph's wiring in version 2)."""
    hints = typing.get_type_hints(cls)
    fields = _order(cls)
    schema: dict[str, Any] = {}
    if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):  # not dataclass's made-up signature
        schema["description"] = " ".join(cls.__doc__.split())
    schema["type"] = "object"
    schema["required"] = ["type", *(f.name for f in fields if f.default is dataclasses.MISSING)]
    schema["additionalProperties"] = False
    schema["properties"] = {"type": True, **{f.name: _setting(f, hints[f.name]) for f in fields}}
    if version == 2:
        schema["properties"].update(_WIRING)
        if issubclass(cls, layers.Recurrent):
            schema["properties"]["initial_state"] = _INITIAL_STATE
    return schema


def _def_name(cls: type[LayerKind]) -> str:
    return cls.schema_name or cls.kind


def _layer_defs(version: int = 1) -> dict[str, Any]:
    kinds = layers.LAYER_KINDS if version == 1 else layers.ALL_KINDS
    branches = [
        {"if": {"properties": {"type": {"const": kind}}, "required": ["type"]}, "then": {"$ref": f"#/$defs/{_def_name(cls)}"}}
        for kind, cls in kinds.items()
    ]
    layer = {"type": "object", "required": ["type"], "properties": {"type": {"enum": list(kinds)}}, "allOf": branches}
    return {"layer": layer, **{_def_name(cls): layer_schema(cls, version) for cls in kinds.values()}}


def spec_schema(version: int = 1) -> dict[str, Any]:
    """The JSON Schema of spec format `version`, as shipped in spec-v<version>.json."""
    if version == 2:
        return _spec_schema_v2()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://rnnc.dev/schema/spec-v1.json",
        "title": "rnnc model spec, version 1",
        "description": "A recurrent neural network: its input, layers, loss, optimizer, metrics, training settings, data and export options. Cross-field rules (shapes, loss against output) are checked by `rnnc check`, not by this schema.",
        "type": "object",
        "required": ["rnnc", "name", "input", "layers", "loss", "optimizer"],
        "additionalProperties": False,
        "properties": {
            "$schema": {"type": "string", "description": "Where editors find this schema; ignored by rnnc."},
            "rnnc": {"const": 1, "description": "Spec format version."},
            "name": {"type": "string", "pattern": "^[a-z0-9_-]+$", "description": "Names the run and its artifacts."},
            "description": {"type": "string"},
            "input": {"$ref": "#/$defs/input"},
            "layers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/layer"}, "description": "Applied in order."},
            "loss": {"description": "A loss name, or a mapping with `type` and its settings.", "if": {"type": "string"},
                     "then": {"$ref": "#/$defs/lossName"}, "else": {"$ref": "#/$defs/lossMapping"}},
            "optimizer": {"description": "An optimizer name, or a mapping with `type` and its settings.",
                          "if": {"type": "string"},
                          "then": {"$ref": "#/$defs/optimizerName"}, "else": {"$ref": "#/$defs/optimizerMapping"}},
            "metrics": {"type": "array", "uniqueItems": True, "items": {"$ref": "#/$defs/metric"}, "default": []},
            "training": {"$ref": "#/$defs/training"},
            "data": {"$ref": "#/$defs/data"},
            "export": {"$ref": "#/$defs/export"},
        },
        "$defs": {
            **RANGES,
            "metric": sections.METRIC,
            "input": sections.INPUT,
            **_layer_defs(),
            **sections.LOSS,
            **sections.OPTIMIZER,
            **sections.TRAINING,
            "data": sections.DATA,
            "export": sections.EXPORT,
        },
    }
    return copy.deepcopy(schema)  # callers may edit theirs; the sections stay as written


def _spec_schema_v2() -> dict[str, Any]:
    """Version 2, graphs: named inputs, layers that name what they read, named outputs."""
    v1 = spec_schema(1)
    shared = {k: v1["properties"][k] for k in ("$schema", "name", "description", "optimizer", "training", "data", "export")}
    schema = {
        "$schema": v1["$schema"],
        "$id": "https://rnnc.dev/schema/spec-v2.json",
        "title": "rnnc model spec, version 2 (graphs)",
        "description": "A recurrent model as a graph: named inputs, layers that name what they read (the layer before, by "
                       "default), named outputs with a loss each. Names, shapes and cycles are checked by `rnnc check`, "
                       "not by this schema.",
        "type": "object",
        "required": ["rnnc", "name", "inputs", "layers", "outputs", "optimizer"],
        "additionalProperties": False,
        "properties": {
            "$schema": shared["$schema"],
            "rnnc": {"const": 2, "description": "Spec format version."},
            "name": shared["name"],
            "description": shared["description"],
            "inputs": {"type": "object", "minProperties": 1, "propertyNames": _NAME,
                       "additionalProperties": {"$ref": "#/$defs/input"},
                       "description": "Name -> shape and dtype. float [timesteps, features] or int64 [timesteps] is a "
                                      "sequence; float [features] static features; int64 [] one id per sample."},
            "layers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/layer"}},
            "outputs": {"type": "object", "minProperties": 1, "propertyNames": _NAME,
                        "additionalProperties": {"$ref": "#/$defs/output"},
                        "description": "A layer's name -> its loss, loss_weight and metrics."},
            "optimizer": shared["optimizer"],
            "training": shared["training"],
            "data": shared["data"],
            "export": shared["export"],
        },
        "$defs": {
            **{k: v for k, v in v1["$defs"].items() if k not in ("layer", *(_def_name(c) for c in layers.LAYER_KINDS.values()))},
            "input": sections.GRAPH_INPUT,
            **_layer_defs(2),
            "output": sections.OUTPUT,
        },
    }
    return copy.deepcopy(schema)


def render(value: Any, indent: int = 0, column: int = 0, width: int = 120) -> str:
    """JSON as people write it: a mapping or list on one line when it fits (from
    `column` on), else one entry per line, so the shipped file reads well in an editor."""
    flat = json.dumps(value, ensure_ascii=False)
    scalars = isinstance(value, list) and not any(isinstance(item, dict | list) for item in value)
    if column + len(flat) <= width or scalars or not isinstance(value, dict | list) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            head = f"{pad}{json.dumps(key)}: "
            items.append(head + render(item, indent + 2, len(head), width))
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + render(item, indent + 2, len(pad), width) for item in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


VERSIONS = (1, 2)


def shipped_path(version: int = 1) -> Path:
    return Path(str(resources.files(__package__).joinpath(f"spec-v{version}.json")))


def schema_text(version: int = 1) -> str:
    return render(spec_schema(version)) + "\n"
