"""Property: whatever a spec file holds, `rnnc check` ends in a model or a `SpecError`.

Every spec in `specs/` is mutated at random (keys dropped, renamed or retyped, values
out of range, nested in lists, unicode, huge numbers, random YAML text, random
`--set` overrides) and compiled in-process. Any other exception (KeyError, TypeError,
RecursionError, an assertion) is a bug, and every error line must say where it points:
`origin:line:col: ` or `--set ...: `. A second generator writes schema-valid specs from
random layer stacks, inputs, losses and settings, to reach the shape and semantic rules.
Data paths resolve against a folder of empty placeholder files, so the test does not
depend on `specs/data/`. A third generator writes YAML text from a YAML-ish grammar
(anchors, tags, block scalars, flow collections, directives, bad indentation).
Version 2's graphs have their own generators: random DAGs of every kind (merges,
attention, repeat_vector, initial_state, several outputs, feedback) that must compile,
and mutations of them and of specs/graphs/. The generators live in
`spec_generators.py` and `graph_generators.py` beside this file.

CI runs 4,650 fixed examples (1,050 of them graphs). The long run (docs/reliability.md)
draws 100,000 new ones: `RNNC_FUZZ_RANDOM=1 RNNC_FUZZ_EXAMPLES=100000 pytest tests/core/test_spec_fuzz.py`.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from graph_generators import GRAPH_BASES, mutated_graphs, valid_graphs
from spec_generators import BASES, dump, mutated_specs, paths, valid_specs, values, yaml_documents

from rnnc import ir
from rnnc.errors import SpecError
from rnnc.spec import model_from_text

ORIGIN = "spec.yaml"
PLACED = re.compile(rf"^{re.escape(ORIGIN)}:\d+:\d+: \S")
OVERRIDE = re.compile(r"^--set .*?: \S")
# problems about the file as a whole, which have no line to point at
WHOLE_FILE = re.compile(rf"^{re.escape(ORIGIN)}: (the spec is empty|refused: |invalid YAML: |not UTF-8 text )")
# CI runs the same examples every time; RNNC_FUZZ_RANDOM=1 explores new ones.
SETTINGS = settings(
    deadline=None, derandomize=not os.environ.get("RNNC_FUZZ_RANDOM"), database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
# The examples CI runs, per test; RNNC_FUZZ_EXAMPLES=100000 scales them to that total
# (the long run recorded in docs/reliability.md).
CI_EXAMPLES = {"mutated": 1500, "text_edits": 400, "overrides": 400, "valid": 600, "data_paths": 100, "yaml_text": 600,
               "graphs_valid": 300, "graphs_mutated": 600, "graphs_text_edits": 150}


def examples(test: str) -> int:
    total = int(os.environ.get("RNNC_FUZZ_EXAMPLES") or 0)
    if not total:
        return CI_EXAMPLES[test]
    return max(1, round(CI_EXAMPLES[test] * total / sum(CI_EXAMPLES.values())))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with an empty file wherever a ready spec's data goes."""
    folder = tmp_path_factory.mktemp("data")
    for spec in BASES.values():
        for role in ("train", "validation", "test"):
            if role in spec.get("data", {}):
                (folder / spec["data"][role]).parent.mkdir(parents=True, exist_ok=True)
                (folder / spec["data"][role]).touch()
    return folder


def check_compiles_or_reports(text: str, base: Path, overrides: list[str] = ()) -> ir.Model | None:
    try:
        model = model_from_text(text, ORIGIN, base, overrides)
    except SpecError as err:
        assert err.lines(), "a SpecError without problems"
        for line in err.lines():
            assert PLACED.match(line) or OVERRIDE.match(line) or WHOLE_FILE.match(line), line
            assert "\n" not in line
        return None
    assert isinstance(model, ir.Model)
    assert model.param_count == sum(p.size for p in model.params)
    return model


def test_the_ready_specs_are_valid_against_the_placeholders(base: Path) -> None:
    for spec in BASES.values():
        assert check_compiles_or_reports(dump(spec), base) is not None


@settings(SETTINGS, max_examples=examples("mutated"))
@given(data=mutated_specs())
def test_mutated_specs_compile_or_raise_spec_error(base: Path, data: Any) -> None:
    check_compiles_or_reports(dump(data), base)


@settings(SETTINGS, max_examples=examples("text_edits"))
@given(name=st.sampled_from(sorted(BASES)), draw=st.data())
def test_random_text_edits_compile_or_raise_spec_error(base: Path, name: str, draw: st.DataObject) -> None:
    text = dump(BASES[name])
    for _ in range(draw.draw(st.integers(min_value=1, max_value=3))):
        at = draw.draw(st.integers(min_value=0, max_value=len(text)))
        cut = draw.draw(st.integers(min_value=0, max_value=20))
        insert = draw.draw(st.text(max_size=10) | st.sampled_from(["\n", ": ", "- ", "[", "{", "&a ", "*a", "!!str ", "\t", "---\n", "? "]))
        text = text[:at] + insert + text[at + cut :]
    check_compiles_or_reports(text, base)


@settings(SETTINGS, max_examples=examples("overrides"))
@given(name=st.sampled_from(sorted(BASES)), draw=st.data())
def test_random_overrides_compile_or_raise_spec_error(base: Path, name: str, draw: st.DataObject) -> None:
    known = [".".join(map(str, p)) for p in paths(BASES[name]) if p]
    keys = st.sampled_from(known) | st.text(alphabet="abcdeilnrstuy_.0123456789-", max_size=20)
    raw_values = st.text(max_size=12) | values.map(lambda v: yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix("..."))
    overrides = draw.draw(st.lists(st.builds(lambda k, v: f"{k}={v}", keys, raw_values) | st.text(max_size=15), max_size=3))
    check_compiles_or_reports(dump(BASES[name]), base, overrides)


# --- schema-valid specs, to reach the shape and semantic rules ----------------------


@settings(SETTINGS, max_examples=examples("valid"))
@given(spec=valid_specs())
def test_valid_specs_compile_or_break_only_semantic_rules(base: Path, spec: dict[str, Any]) -> None:
    model = check_compiles_or_reports(dump(spec), base)
    if model is None:
        return
    assert len(model.nodes) == len(spec["layers"])
    for before, after in zip(model.nodes, model.nodes[1:]):
        assert after.input_shape == before.output_shape
    assert model.nodes[0].input_shape == model.input.tensor_shape


@settings(SETTINGS, max_examples=examples("data_paths"))
@given(name=st.sampled_from(sorted(BASES)), role=st.sampled_from(["train", "validation", "test"]), value=values)
def test_mutations_of_data_paths(base: Path, name: str, role: str, value: Any) -> None:
    data = copy.deepcopy(BASES[name])
    data.setdefault("data", {})[role] = value
    check_compiles_or_reports(dump(data), base)


# --- random YAML documents, written from a YAML-ish text grammar ----------------------


@settings(SETTINGS, max_examples=examples("yaml_text"))
@given(text=yaml_documents())
def test_random_yaml_documents_compile_or_raise_spec_error(base: Path, text: str) -> None:
    check_compiles_or_reports(text, base)


# --- spec version 2: graphs ---------------------------------------------------------------


def test_the_ready_graphs_are_valid() -> None:
    assert GRAPH_BASES
    for spec in GRAPH_BASES.values():
        model_from_text(dump(spec), ORIGIN)


@settings(SETTINGS, max_examples=examples("graphs_valid"))
@given(spec=valid_graphs())
def test_valid_graphs_compile(base: Path, spec: dict[str, Any]) -> None:
    try:
        model = model_from_text(dump(spec), ORIGIN, base)
    except SpecError as err:
        pytest.fail("a valid graph was refused:\n" + "\n".join(err.lines()) + "\n" + dump(spec))
    assert len(model.nodes) == len(spec["layers"])
    assert [o.name for o in model.outputs] == list(spec["outputs"])
    assert model.param_count == sum(p.size for p in model.params)
    shapes = {inp.name: inp.tensor_shape for inp in model.inputs} | {n.key: n.output_shape for n in model.nodes}
    for node in model.nodes:
        assert node.input_shapes == tuple(shapes[s] for s in node.sources)
        assert node.input_shape == node.input_shapes[0]


@settings(SETTINGS, max_examples=examples("graphs_mutated"))
@given(data=mutated_graphs())
def test_mutated_graphs_compile_or_raise_spec_error(base: Path, data: Any) -> None:
    check_compiles_or_reports(dump(data), base)


@settings(SETTINGS, max_examples=examples("graphs_text_edits"))
@given(spec=valid_graphs(), draw=st.data())
def test_random_text_edits_of_graphs_compile_or_raise_spec_error(base: Path, spec: dict[str, Any], draw: st.DataObject) -> None:
    text = dump(spec)
    for _ in range(draw.draw(st.integers(min_value=1, max_value=3))):
        at = draw.draw(st.integers(min_value=0, max_value=len(text)))
        cut = draw.draw(st.integers(min_value=0, max_value=20))
        insert = draw.draw(st.text(max_size=10) | st.sampled_from(["\n", ": ", "- ", "[", "{", ".state", "input: ", "layers[0]"]))
        text = text[:at] + insert + text[at + cut :]
    check_compiles_or_reports(text, base)


# --- what the fuzzer found, kept as plain cases ----------------------------------------
# (spec text, overrides, the lines' endings); "SPEC" stands for a ready spec's text and
# "NUL" for it with a NUL character in a data path.

FOUND = [
    ("- !!int ''\n", [], ["spec.yaml:1:1: expected a mapping, got a list", "spec.yaml:1:3: [0]: cannot read value: '' is not a valid !!int"]),
    ("- !!float ''\n", [], ["spec.yaml:1:1: expected a mapping, got a list", "spec.yaml:1:3: [0]: cannot read value: '' is not a valid !!float"]),
    ("- !!bool accuracy\n", [], ["spec.yaml:1:1: expected a mapping, got a list", "spec.yaml:1:3: [0]: cannot read value: 'accuracy' is not a valid !!bool"]),
    ("!!int '': 3\n", [], ["spec.yaml:1:1: cannot read key: '' is not a valid !!int"]),
    ("a: !!timestamp x\n", [], None),
    ("NUL", [], ["data.train: a file name cannot contain a NUL character"]),
    ("SPEC", ["layers.0={activation: 9223372036854775808}"],
     ["--set layers.0={activation: 9223372036854775808}: layers.0.activation: integer out of range: a spec takes integers from -2**63 to 2**63-1"]),
    ("SPEC", ["layers.0.units={activation: 9223372036854775808}"], None),
    ("SPEC", ["input={shape: 9223372036854775808}"], None),
    ("activation: |\n  \ud800\n", [], ["spec.yaml: not UTF-8 text (character 17 cannot be encoded)"]),
    ("SPEC", ["²=1", "layers.²=1"], ["--set ²=1: unknown setting '²'"]),
    ("SPEC", ["name=\udcff"], ["--set name=\\udcff: not UTF-8 text (character 1 cannot be encoded)"]),
]


@pytest.mark.parametrize(("text", "overrides", "expected"), FOUND, ids=[f"found{i}" for i in range(len(FOUND))])
def test_what_the_fuzzer_found(base: Path, text: str, overrides: list[str], expected: list[str] | None) -> None:
    spec = BASES["seed_binary"]
    text = {"SPEC": dump(spec), "NUL": dump({**spec, "data": {**spec["data"], "train": "a\0b.npz"}})}.get(text, text)
    with pytest.raises(SpecError) as caught:
        model_from_text(text, ORIGIN, base, overrides)
    check_compiles_or_reports(text, base, overrides)  # every line placed, one line each
    if expected is not None:
        lines = caught.value.lines()
        assert all(any(line.endswith(e) for line in lines) for e in expected), lines
