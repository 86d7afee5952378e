"""What the loader makes of YAML values, and where it says each key and value stands."""

from __future__ import annotations

from typing import Any

import pytest

from rnnc.loader import Position, load_text

# (YAML value, Python value)
VALUES = [
    ("1e-3", 0.001),  # YAML 1.2 float; YAML 1.1 would read the string '1e-3'
    ("3E+2", 300.0),
    ("-2.5e-1", -0.25),
    ("1.0e5", 100000.0),
    (".5", 0.5),
    ("32", 32),
    ("32.0", 32.0),
    ("0x1f", 31),
    ("true", True),
    ("no", False),  # YAML 1.1 boolean, as PyYAML reads it
    ("null", None),
    ("~", None),
    ("'1e-3'", "1e-3"),
    ("e5", "e5"),
    ("1e", "1e"),
    ("[null, 3]", [None, 3]),
    ("{a: 1}", {"a": 1}),
    ("ünïcødé", "ünïcødé"),
]


@pytest.mark.parametrize(("text", "value"), VALUES, ids=[v[0] for v in VALUES])
def test_scalar_values(text: str, value: Any) -> None:
    doc = load_text(f"x: {text}\n")
    assert doc.data == {"x": value}
    assert type(doc.data["x"]) is type(value)
    assert doc.problems == []


def test_non_string_keys_become_strings() -> None:
    assert load_text("1: a\ntrue: b\n").data == {"1": "a", "true": "b"}


SPEC = """\
rnnc: 1
layers:
  - type: lstm
    units: 32
  - {type: dense, units: 1}
"""


@pytest.mark.parametrize(
    ("path", "key", "line", "column"),
    [
        (("rnnc",), True, 1, 1),
        (("rnnc",), False, 1, 7),
        (("layers",), True, 2, 1),
        (("layers",), False, 3, 3),
        (("layers", 0), False, 3, 5),
        (("layers", 0, "units"), True, 4, 5),
        (("layers", 0, "units"), False, 4, 12),
        (("layers", 1, "units"), True, 5, 19),
        (("layers", 1, "units"), False, 5, 26),
        (("layers", 1, "nothing", "here"), False, 5, 5),  # the nearest ancestor that exists
    ],
)
def test_positions_of_keys_and_values(path: tuple, key: bool, line: int, column: int) -> None:
    doc = load_text(SPEC, "spec.yaml")
    assert doc.where(path, key=key) == Position("spec.yaml", line, column)


BOM = b"\xef\xbb\xbf"

# (file bytes, the data, or the one line `rnnc check` prints): a BOM is never data and
# never in a message, and a byte offset counts it, as it is in the file
BOM_CASES = [
    (BOM + b"a: 1\n", {"a": 1}),
    (BOM + b"a: \xef\xbb\xbfb\n", {"a": "\ufeffb"}),  # inside a value it is a character like any other
    (BOM + b"a: \xff\n", "{f}: not UTF-8 text (byte 6)"),
    (b"a: \xff\n", "{f}: not UTF-8 text (byte 3)"),
    (BOM, "{f}: the spec is empty"),
    (BOM + b"a: [1\n", "{f}:2:1: invalid YAML: while parsing a flow sequence did not find expected ',' or ']'"),
]


@pytest.mark.parametrize(("raw", "want"), BOM_CASES, ids=range(len(BOM_CASES)))
def test_a_byte_order_mark_is_stripped(tmp_path: Any, raw: bytes, want: Any) -> None:
    from rnnc.errors import SpecError
    from rnnc.loader import load_file

    path = tmp_path / "spec.yaml"
    path.write_bytes(raw)
    if isinstance(want, dict):
        assert load_file(path).data == want
        assert load_text(raw.decode("utf-8")).data == want  # a BOM in text handed over directly too
        return
    with pytest.raises(SpecError) as refused:
        load_file(path)
    assert refused.value.lines() == [want.format(f=path)]
