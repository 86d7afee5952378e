"""The JSON Schema of spec format v1 and its checking.

The schema is generated from the definitions (`generate.spec_schema`: the layer kinds
of rnnc.layers, the sections of `sections`); `spec-v1.json` is its shipped copy for
editors, refreshed by `python -m rnnc.schema --write` and held to it by a test.

jsonschema's own messages are written for schema authors; `schema_problems` turns each
validation error into a message for spec authors ("expected an integer >= 1, got
'thirty-two'", "unknown setting 'unit' (did you mean 'units'?)") placed at the key or
value it is about. Cross-field rules live in `rnnc.validate`, not here.
"""

from __future__ import annotations

import contextvars
import functools
from typing import Any

from ..errors import Problem, did_you_mean
from ..loader import Document
from .generate import spec_schema


VERSIONS = (1, 2)
_version = contextvars.ContextVar("version", default=1)  # the schema whose `$ref`s messages resolve


@functools.cache
def load_schema(version: int = 1) -> dict[str, Any]:
    """The schema of spec format `version` (shared: do not edit the returned mapping)."""
    return spec_schema(version)


@functools.cache
def _validator(version: int = 1) -> Any:
    import jsonschema

    schema = load_schema(version)
    return jsonschema.Draft202012Validator(schema)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s, merging the referring schema's own keywords on top."""
    while "$ref" in schema:
        ref = schema["$ref"]
        target = load_schema(_version.get())
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _quote(values: list[Any]) -> str:
    return ", ".join(_show(v) if isinstance(v, bool) else f"'{v}'" for v in values)


def describe(schema: dict[str, Any]) -> str:
    """What a value must be, in words: 'an integer >= 1', 'one of 'tanh', 'relu''."""
    schema = _resolve(schema)
    if "enum" in schema:
        return f"one of {_quote(schema['enum'])}"
    if "const" in schema:
        return f"{schema['const']!r}"
    types = schema.get("type")
    names = {
        "integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
        "array": "a list", "object": "a mapping", "null": "null",
    }
    if isinstance(types, list):
        text = " or ".join(names[t] for t in types)
    else:
        text = names.get(types, "a value")
    bounds = []
    if "minimum" in schema:
        bounds.append(f">= {schema['minimum']}")
    if "exclusiveMinimum" in schema:
        bounds.append(f"> {schema['exclusiveMinimum']}")
    if "maximum" in schema:
        bounds.append(f"<= {schema['maximum']}")
    if "exclusiveMaximum" in schema:
        bounds.append(f"< {schema['exclusiveMaximum']}")
    if bounds:
        text += " " + " and ".join(bounds)
    return text


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _problems_for(error: Any, doc: Document) -> list[Problem]:
    path = tuple(error.absolute_path)
    value = error.instance
    match error.validator:
        case "additionalProperties":
            allowed = [k for k in _resolve(error.schema).get("properties", {}) if k != "$schema"]
            extra = [k for k in value if k not in allowed]
            kind = value.get("type") if path[:1] == ("layers",) else None
            return [
                doc.problem(path, f"unknown setting '{key}'{_setting_hint(kind, key) or did_you_mean(key, allowed) or _takes(value, allowed)}",
                            key=True, at=(*path, key))
                for key in extra
            ]
        case "required":
            missing = error.message.split("'")[1]
            return [doc.problem(path, f"missing required setting '{missing}'", key=True)]
        case "enum" if path and path[-1] == "type":
            options = error.validator_value
            layer = len(path) == 3 and path[0] == "layers"
            hint = (layer and _graph_kind_hint(value)) or (layer and _LAYER_TYPE_HINTS.get(_fold(value))) or did_you_mean(value, options)
            kind = "layer type" if layer else "type"
            return [doc.problem(path, f"unknown {kind} {_show(value)}{hint}; expected one of {_quote(options)}")]
        case "enum":
            hint = did_you_mean(value, error.validator_value) if isinstance(value, str) else ""
            return [doc.problem(path, f"expected {describe(error.schema)}, got {_show(value)}{hint}")]
        case "const" if path == ("rnnc",):
            return [doc.problem(path, f"unsupported spec version {_show(value)}; this rnnc reads versions 1 and 2")]
        case "pattern" if path == ("name",):
            return [doc.problem(path, f"expected lowercase letters, digits, '-' and '_', got {_show(value)}")]
        case "minItems" if error.validator_value == 1:
            return [doc.problem(path, "expected at least one entry, got an empty list")]
        case "minItems" | "maxItems":
            return [doc.problem(path, f"expected {describe(error.schema)} of {_length(error.schema)}, got {len(value)} entries")]
        case "uniqueItems":
            seen: set[str] = set()
            dupes = [v for v in value if repr(v) in seen or seen.add(repr(v))]
            return [doc.problem(path, f"duplicate entry {_show(dupes[0]) if dupes else ''}".rstrip())]
        case "minLength":
            return [doc.problem(path, "expected a non-empty string")]
        case _:
            return [doc.problem(path, f"expected {describe(error.schema)}, got {_show(value)}")]


# Layer kinds and settings people bring from Keras and PyTorch that rnnc does not have
# under any name: what to write instead, or that it is not supported yet. Keys are
# folded (lowercase, no '_'), so `TimeDistributed` and `time_distributed` both match.
_LAYER_TYPE_HINTS = {
    "multiheadattention": " (rnnc's attention is single-head: type attention, in spec version 2)",
    "additiveattention": " (use type attention with score: additive, in spec version 2)",
    "timedistributed": " (not needed: dense is already applied per timestep on sequences)",
    "linear": " (use 'dense': rnnc's linear layer, activation linear by default)",
    "bidirectional": " (set bidirectional: true on the recurrent layer instead)",
    "flatten": " (not needed: a recurrent layer without return_sequences gives a vector; pool reduces a sequence)",
    "globalaveragepooling1d": " (use 'pool' with mode: mean)",
    "globalmaxpooling1d": " (use 'pool' with mode: max)",
}
_GATES = (" (lstm and gru use tanh, as Keras's default; their gates take recurrent_activation: sigmoid or "
          "hard_sigmoid; only simple_rnn takes an activation)")
_SETTING_HINTS = {
    (None, "recurrentactivation"): " (a simple_rnn has no gates: recurrent_activation is lstm's and gru's)",
    ("lstm", "activation"): _GATES,
    ("gru", "activation"): _GATES,
    (None, "stateful"): " (to carry state between calls at inference, set export.streaming: true)",
}


def _graph_kind_hint(kind: Any) -> str:
    from ..layers import GRAPH_KINDS

    if _version.get() == 1 and isinstance(kind, str) and kind in GRAPH_KINDS:
        return f" ({kind} is a layer of spec version 2, graphs: write rnnc: 2, inputs: and outputs:)"
    return ""


def _fold(word: Any) -> str:
    return str(word).lower().replace("_", "")


def _setting_hint(kind: Any, key: str) -> str:
    return _SETTING_HINTS.get((kind, _fold(key))) or _SETTING_HINTS.get((None, _fold(key)), "")


def _takes(value: dict[str, Any], allowed: list[str]) -> str:
    """`; sgd takes lr, momentum, ...`: what a typed section (layer, optimizer, schedule) accepts."""
    kind = value.get("type")
    settings = [k for k in allowed if k != "type"]
    if not isinstance(kind, str) or not settings:
        return ""
    return f"; {kind} takes {', '.join(settings)}"


def _length(schema: dict[str, Any]) -> str:
    lo, hi = schema.get("minItems"), schema.get("maxItems")
    if lo == hi:
        return f"{lo} entries"
    if hi is None:
        return f"at least {lo} entries"
    return f"{lo} to {hi} entries"


def _leaves(errors: Any) -> Any:
    """The most specific errors: if/then and allOf wrap the ones users need to see."""
    for error in errors:
        if error.validator in ("allOf", "anyOf", "oneOf") and error.context:
            yield from _leaves(error.context)
        else:
            yield error


def schema_problems(doc: Document) -> list[Problem]:
    """Every schema violation in the document, as spec-author messages."""
    problems: list[Problem] = []
    version = doc.data.get("rnnc") if isinstance(doc.data, dict) else 1
    version = version if version in VERSIONS and not isinstance(version, bool) else 1
    token = _version.set(version)
    try:
        for error in _leaves(_validator(version).iter_errors(doc.data)):
            problems.extend(_problems_for(error, doc))
    finally:
        _version.reset(token)
    unique = {(p.origin, p.line, p.column, p.path, p.message): p for p in problems}
    return list(unique.values())
