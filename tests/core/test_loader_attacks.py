"""Hostile or broken spec files: each is refused quickly with a clean `SpecError`.

The loader must never build objects from tags, never expand an alias bomb, never
recurse into absurd nesting, and never read a huge or binary file as a spec.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnc.errors import SpecError
from rnnc.spec import load_model

ROOT = Path(__file__).resolve().parents[2]

VALID = b"""\
rnnc: 1
name: ok
input: {shape: [10, 1]}
layers: [{type: gru, units: 4}, {type: dense, units: 1}]
loss: mse
optimizer: sgd
"""
LAUGHS = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)

# (id, file bytes, expected lines, with FILE for the path)
ATTACKS = [
    ("python_object_apply", b"!!python/object/apply:os.system ['touch PWNED']\n",
     ["FILE:1:1: tag '!!python/object/apply:os.system' is not allowed: a spec is data, never code"]),
    ("python_object_new_inside_a_spec", VALID.replace(b"name: ok", b"name: !!python/object/new:os.system ['touch PWNED']"),
     ["FILE:2:7: name: tag '!!python/object/new:os.system' is not allowed: a spec is data, never code"]),
    ("billion_laughs", LAUGHS.encode(),
     ["FILE: refused: the document expands to more than 100000 nodes (alias bomb?)"]),
    ("deep_flow_nesting", b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
     ["FILE:1:1003: invalid YAML: while increasing flow level exceeded maximum nesting depth"]),
    ("deep_block_nesting", "".join("  " * i + "a:\n" for i in range(1000)).encode(),
     ["FILE: refused: nesting deeper than 64 levels"]),
    ("two_megabytes", b"description: " + b"x" * (2 << 20) + b"\n",
     ["FILE: file is larger than 1048576 bytes, the limit for a spec"]),
    ("binary", bytes(range(256)) * 4, ["FILE: not a text file (it contains NUL bytes)"]),
    ("not_utf8", b"name: caf\xe9\n", ["FILE: not UTF-8 text (byte 9)"]),
    ("empty", b"", ["FILE: the spec is empty"]),
    ("only_whitespace", b"\n\n   \n", ["FILE: the spec is empty"]),
    ("several_documents", b"rnnc: 1\n---\nrnnc: 1\n---\nrnnc: 1\n",
     ["FILE:2:1: invalid YAML: several YAML documents in one file; a spec is one document"]),
]


@pytest.mark.parametrize(("raw", "expected"), [row[1:] for row in ATTACKS], ids=[row[0] for row in ATTACKS])
def test_hostile_file_is_refused_quickly(tmp_path: Path, raw: bytes, expected: list[str]) -> None:
    spec = tmp_path / "attack.yaml"
    spec.write_bytes(raw)
    start = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        load_model(spec)
    elapsed = time.perf_counter() - start
    assert caught.value.lines() == [line.replace("FILE", str(spec)) for line in expected]
    assert elapsed < 1.0
    assert not (tmp_path / "PWNED").exists()


def test_a_directory_is_not_a_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_model(tmp_path)
    assert caught.value.lines() == [f"{tmp_path}: is a directory, not a spec file"]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_model(tmp_path / "nope.yaml")
    assert caught.value.lines() == [f"{tmp_path / 'nope.yaml'}: no such file"]


def test_a_utf8_bom_is_accepted(tmp_path: Path, specs_with_data: dict[str, Path]) -> None:
    spec = specs_with_data["seed_binary"]
    spec.write_bytes(b"\xef\xbb\xbf" + spec.read_bytes())
    assert load_model(spec).name == "seed-binary"


def test_a_sparse_three_gigabyte_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    spec = tmp_path / "huge.yaml"
    with open(spec, "wb") as handle:
        handle.write(VALID)
        handle.truncate(3 * 2**30)  # sparse: no disk used, but stat and read see 3 GiB
    start = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        load_model(spec)
    assert time.perf_counter() - start < 1.0
    assert caught.value.lines() == [f"{spec}: file is larger than 1048576 bytes, the limit for a spec"]


# Each attack again, in a child process whose address space is capped at 1 GiB: an
# attack that made the loader build the expanded document, or recurse without bound,
# would die there with MemoryError or a crash instead of the refusal.
BOUNDED = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from rnnc.errors import SpecError
from rnnc.spec import load_model
out = {}
for path in sys.argv[1:]:
    start = time.perf_counter()
    try:
        load_model(path)
        out[path] = ["accepted"]
    except SpecError as err:
        out[path] = err.lines()
    out[path].append(time.perf_counter() - start)
print(json.dumps(out))
"""


def test_attacks_are_refused_within_a_one_gibibyte_address_space(tmp_path: Path) -> None:
    files = {}
    for name, raw, expected in ATTACKS:
        files[name] = (tmp_path / f"{name}.yaml", expected)
        files[name][0].write_bytes(raw)
    sparse = tmp_path / "sparse.yaml"
    with open(sparse, "wb") as handle:
        handle.truncate(3 * 2**30)
    files["sparse"] = (sparse, ["FILE: file is larger than 1048576 bytes, the limit for a spec"])
    child = subprocess.run([sys.executable, "-c", BOUNDED, *(str(p) for p, _ in files.values())],
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert child.returncode == 0, child.stderr
    results = json.loads(child.stdout)
    for name, (path, expected) in files.items():
        *lines, elapsed = results[str(path)]
        assert lines == [line.replace("FILE", str(path)) for line in expected], name
        assert elapsed < 1.0, name
