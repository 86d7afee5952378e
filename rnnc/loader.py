"""Reading YAML as data, keeping the source position of every key and value.

The loader composes the YAML node tree with PyYAML's safe machinery and builds plain
dicts, lists and scalars from it itself, so that it can record where each key and each
value stands, refuse duplicate keys, refuse any tag that would build an object, and
bound the work an alias bomb or a deeply nested document can cause. A spec is data,
never code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import JsonPath, Problem, SpecError, format_path

MAX_BYTES = 1 << 20  # specs are small; a bigger file is a mistake or an attack
MAX_NODES = 100_000  # after alias expansion: "billion laughs" stops here
MAX_DEPTH = 64
_TOO_LARGE = "integer out of range: a spec takes integers from -2**63 to 2**63-1"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader, plus YAML 1.2 floats: `lr: 1e-3` is a number, not the string
    '1e-3' that YAML 1.1 makes of an exponent without a dot (a subclass, so PyYAML's
    own loaders stay as they are)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)

_SAFE_TAGS = {
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary")
}
BOM = "\ufeff"  # editors on Windows start UTF-8 files with it; it is no part of the spec


@dataclass(frozen=True)
class Position:
    origin: str  # file name, or an override like "--set layers.0.units=64"
    line: int | None  # 1-based
    column: int | None


@dataclass
class Document:
    """A loaded spec: plain data plus where every value (and mapping key) came from."""

    data: Any
    origin: str
    values: dict[JsonPath, Position] = field(default_factory=dict)
    keys: dict[JsonPath, Position] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # found while loading; reported with the rest

    def where(self, path: JsonPath, *, key: bool = False) -> Position:
        """The position of the value at `path` (or its key), else of its nearest ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        if path in self.values:
            return self.values[path]
        while path:
            path = path[:-1]
            if path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
        return Position(self.origin, None, None)

    def problem(self, path: JsonPath, message: str, *, key: bool = False, at: JsonPath | None = None) -> Problem:
        """A problem about `path`, placed at `at` (default: `path` itself).

        A whole layer is labelled with its type: `layers[2] (dense)`.
        """
        pos = self.where(path if at is None else at, key=key)
        label = format_path(path)
        if len(path) == 2 and path[0] == "layers" and isinstance(self.data, dict):
            layer = _get(self.data, path)
            if isinstance(layer, dict) and isinstance(layer.get("type"), str):
                label += f" ({layer['type']})"
        return Problem(pos.origin, pos.line, pos.column, label, message, path)


def _get(data: Any, path: JsonPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


class _Builder:
    def __init__(self, origin: str):
        self.doc = Document(None, origin)
        self.problems = self.doc.problems
        self.nodes = 0
        # Scalars are built by PyYAML's safe constructor, which remembers every node it
        # built: one per document, so that memory goes with the document (one shared
        # constructor kept about 24 KiB per spec loaded, for the life of the process).
        self.scalars = yaml.constructor.SafeConstructor()

    def pos(self, node: yaml.Node) -> Position:
        mark = node.start_mark
        return Position(self.doc.origin, mark.line + 1, mark.column + 1)

    def fail(self, node: yaml.Node, path: JsonPath, message: str) -> None:
        p = self.pos(node)
        self.problems.append(Problem(p.origin, p.line, p.column, format_path(path), message, path))

    def build(self, node: yaml.Node, path: JsonPath, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig(f"the document expands to more than {MAX_NODES} nodes (alias bomb?)")
        if depth > MAX_DEPTH:
            raise _TooBig(f"nesting deeper than {MAX_DEPTH} levels")
        self.doc.values[path] = self.pos(node)
        if node.tag not in _SAFE_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            self.fail(node, path, f"tag '{tag}' is not allowed: a spec is data, never code")
            return None
        if isinstance(node, yaml.MappingNode):
            return self.build_mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        try:
            value = _construct_scalar(self.scalars, node)
        except _Unreadable as err:
            digits = node.value.lstrip("+-").replace("_", "")
            too_long = node.tag == "tag:yaml.org,2002:int" and digits.isdigit()  # past Python's 4300-digit limit
            self.fail(node, path, _TOO_LARGE if too_long else f"cannot read value: {err}")
            return None
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            self.fail(node, path, _TOO_LARGE)  # nothing in a spec needs more, and floats overflow
            return None
        return value

    def build_mapping(self, node: yaml.MappingNode, path: JsonPath, depth: int) -> dict:
        out: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.fail(key_node, path, "merge keys ('<<') are not supported in specs")
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SAFE_TAGS:
                self.fail(key_node, path, "mapping keys must be plain strings")
                continue
            try:
                key = _construct_scalar(self.scalars, key_node)
            except _Unreadable as err:
                self.fail(key_node, path, f"cannot read key: {err}")
                continue
            if not isinstance(key, str):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            child = (*path, key)
            if key in out:
                first = self.doc.keys[child]
                self.fail(key_node, child, f"duplicate key '{key}' (first defined at line {first.line})")
                continue
            self.doc.keys[child] = self.pos(key_node)
            out[key] = self.build(value_node, child, depth + 1)
        return out


class _TooBig(Exception):
    pass


class _Unreadable(Exception):
    pass


def _construct_scalar(scalars: yaml.constructor.SafeConstructor, node: yaml.ScalarNode) -> Any:
    """The value of a scalar node. PyYAML's constructors assume the text fits the tag, so
    an explicit tag on text that does not (`!!int ''`, `!!bool accuracy`, `!!timestamp x`)
    raises whatever the constructor trips on (IndexError, KeyError, AttributeError ...)."""
    try:
        return scalars.construct_object(node, deep=True)
    except Exception as err:  # noqa: BLE001 - any of them means "not a value of this tag"
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        detail = err.problem if isinstance(err, yaml.MarkedYAMLError) and err.problem else f"'{node.value}' is not a valid {tag}"
        raise _Unreadable(detail) from err


def _decode(raw: bytes, origin: str) -> str:
    if len(raw) > MAX_BYTES:
        raise SpecError([Problem(origin, None, None, "", f"file is larger than {MAX_BYTES} bytes, the limit for a spec")])
    if b"\0" in raw:
        raise SpecError([Problem(origin, None, None, "", "not a text file (it contains NUL bytes)")])
    start = len(BOM.encode()) if raw.startswith(BOM.encode()) else 0
    try:
        return raw[start:].decode("utf-8")
    except UnicodeDecodeError as err:  # the byte's offset in the file, BOM included
        raise SpecError([Problem(origin, None, None, "", f"not UTF-8 text (byte {start + err.start})")]) from None


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the event stream, before the recursive composer sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooBig(f"nesting deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_text(text: str, origin: str = "<spec>") -> Document:
    """Parse one YAML document into plain data with positions.

    Unreadable YAML raises `SpecError`; problems with single values (a refused tag, a
    duplicate key) are collected in `Document.problems` and reported with the rest.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:  # `--set` words undecodable as UTF-8 reach here as surrogates
        raise SpecError([Problem(origin, None, None, "", f"not UTF-8 text (character {err.start + 1} cannot be encoded)")]) from None
    text = text.removeprefix(BOM)
    builder = _Builder(origin)
    try:
        _check_depth(text)
        node = yaml.compose(text, Loader=_Loader)
        if node is None:
            raise SpecError([Problem(origin, None, None, "", "the spec is empty")])
        builder.doc.data = builder.build(node, (), 0)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = " ".join(str(part) for part in (err.context, err.problem) if part)
        if "expected a single document" in message:
            message = "several YAML documents in one file; a spec is one document"
        raise SpecError([Problem(origin, line, col, "", f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as err:
        raise SpecError([Problem(origin, None, None, "", f"invalid YAML: {err}")]) from None
    except _TooBig as err:
        raise SpecError([Problem(origin, None, None, "", f"refused: {err}")]) from None
    return builder.doc


def load_file(path: str | Path) -> Document:
    origin = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except IsADirectoryError:
        raise SpecError([Problem(origin, None, None, "", "is a directory, not a spec file")]) from None
    except FileNotFoundError:
        raise SpecError([Problem(origin, None, None, "", "no such file")]) from None
    except OSError as err:
        raise SpecError([Problem(origin, None, None, "", f"cannot read: {err.strerror or err}")]) from None
    return load_text(_decode(raw, origin), origin)
