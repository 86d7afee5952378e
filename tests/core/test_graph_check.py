"""`rnnc check` on graphs (spec version 2): the summary table, warnings, and errors that
stay where they start.

The summary has one row per input and layer (name, kind, what it reads, output shape,
parameters) and a table of outputs; a warning (an input or layer from which no output
is reached) goes to stderr as `file:line:col: warning: ...` with exit status 0; a broken
layer is reported once, not again by every layer that reads it. The ready graphs in
specs/graphs/ pass `rnnc check` and the plain JSON Schema of version 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rnnc import ir
from rnnc.cli import main
from rnnc.errors import SpecError
from rnnc.schema import load_schema
from rnnc.spec import load_model, model_from_mapping

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = sorted((ROOT / "specs" / "graphs").glob("*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema=../../rnnc/schema/spec-v2.json"

ADD_NUMBERS = """\
add-numbers  ({spec})  [variable length]
#  name       layer                         reads                    output shape  params
-----------------------------------------------------------------------------------------
   question   input                                                  [time] int64
   answer_in  input                                                  [time] int64
0  q_emb      embedding(14, 32, mask_zero)  question                 [time, 32]       448
1  encoder    lstm(128, sequences)          q_emb                    [time, 128]   82,944
2  a_emb      embedding(14, 32, mask_zero)  answer_in                [time, 32]       448
3  decoder    lstm(128, sequences)          a_emb <- encoder.state   [time, 128]   82,944
4  context    attention(dot)                encoder, query: decoder  [time, 128]        0
5  mix        concatenate                   decoder, context         [time, 256]        0
6  answer     dense(14, softmax)            mix                      [time, 14]     3,598
-----------------------------------------------------------------------------------------
total params: 170,382   optimizer adam (lr 0.002)

output  shape       loss                             weight  metrics   feedback
answer  [time, 14]  sparse_categorical_crossentropy       1  accuracy  answer_in (start 12, end 13, max_length 5)
"""

CHURN = """\
churn  ({spec})  [variable length]
#  name          layer              reads              output shape        params
---------------------------------------------------------------------------------
   events        input                                 [time, 12] float32
   profile       input                                 [5] float32
0  enc           lstm(64)           events             [64]                19,968
1  profile_norm  normalization      profile            [5]                     10
2  both          concatenate        enc, profile_norm  [69]                     0
3                dense(32, relu)    both               [32]                 2,240
4                dropout(0.2)       layers[3]          [32]                     0
5  churn         dense(1, sigmoid)  layers[4]          [1]                     33
---------------------------------------------------------------------------------
total params: 22,251 (10 computed from the training data)   optimizer adam (lr 0.001)

output  shape  loss                 weight  metrics
churn   [1]    binary_crossentropy       1  accuracy, auc
"""


@pytest.mark.parametrize(("name", "expected"), [("add_numbers", ADD_NUMBERS), ("churn", CHURN)])
def test_the_summary_draws_the_graph(name: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = ROOT / "specs" / "graphs" / f"{name}.yaml"
    assert main(["check", str(spec)]) == 0
    out, err = capsys.readouterr()
    assert out == expected.format(spec=spec)
    assert err == ""


def test_there_are_ready_graphs() -> None:
    assert len(GRAPHS) >= 3


@pytest.mark.parametrize("spec", GRAPHS, ids=lambda p: p.stem)
def test_each_ready_graph_checks_and_names_the_v2_schema(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-q", str(spec)]) == 0
    assert capsys.readouterr() == ("", "")  # not even a warning
    assert spec.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE
    assert (spec.parent / SCHEMA_LINE.split("=", 1)[1]).resolve() == ROOT / "rnnc" / "schema" / "spec-v2.json"
    jsonschema.Draft202012Validator(load_schema(2)).validate(yaml.safe_load(spec.read_text()))
    assert load_model(spec).graph is not None


def graph(layers: list[dict[str, Any]], outputs: dict[str, Any] | None = None, **inputs: Any) -> dict[str, Any]:
    return {"rnnc": 2, "name": "g", "inputs": inputs or {"x": {"shape": [None, 3]}}, "layers": layers,
            "outputs": outputs or {"out": {"loss": "mse"}}, "optimizer": "adam"}


def write(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=200))
    return path


UNUSED = """\
rnnc: 2
name: g
inputs:
  x: {shape: [null, 3]}
  s: {shape: [4]}
  spare: {shape: [2]}
layers:
  - {name: enc, type: gru, units: 4, input: x}
  - {name: side, type: dense, units: 2, input: s}
  - {name: more, type: dense, units: 2}
  - {name: out, type: dense, units: 1, input: enc}
  - {type: dense, units: 1, input: enc}
outputs:
  out: {loss: mse}
optimizer: adam
"""


def test_unused_inputs_and_layers_are_warnings_at_their_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "g.yaml"
    spec.write_text(UNUSED)
    assert main(["check", str(spec)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("g  (")
    assert err.splitlines() == [
        f"{spec}:5:3: warning: inputs.s: input 's' is read only by layers that lead to no output; remove it, or read it "
        "in a layer that leads to an output",
        f"{spec}:6:3: warning: inputs.spare: input 'spare' is not read by any layer; remove it, or read it in a layer "
        "that leads to an output",
        f"{spec}:9:5: warning: layers[1] (dense): 'side' leads to no output: nothing trains it; remove it, or list it "
        "under outputs:",
        f"{spec}:10:5: warning: layers[2] (dense): 'more' is not read by any layer or output: nothing trains it; remove it, "
        "or list it under outputs:",
        f"{spec}:12:5: warning: layers[4] (dense): this layer is not read by any layer or output: nothing trains it; "
        "remove it, or name it and list it under outputs:",
    ]


def test_warnings_are_printed_with_quiet_and_kept_on_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "g.yaml"
    spec.write_text(UNUSED)
    assert main(["check", "-q", str(spec)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 5
    model = load_model(spec)
    assert model.graph is not None and list(model.graph.warnings) == err.splitlines()


def test_a_state_read_as_initial_state_counts_as_used() -> None:
    model = model_from_mapping(graph([
        {"name": "enc", "type": "lstm", "units": 4},
        {"name": "dec", "type": "lstm", "units": 4, "input": "x", "initial_state": "enc.state"},
        {"name": "out", "type": "dense", "units": 1}]))
    assert model.graph is not None and model.graph.warnings == ()


def test_a_broken_layer_is_reported_once_not_by_every_layer_after_it() -> None:
    layers = [{"name": "enc", "type": "lstm", "units": 4, "input": "nothing"}]
    layers += [{"type": "dense", "units": 3} for _ in range(6)]
    layers += [{"name": "mix", "type": "add", "input": ["enc", "layers[3]"]}, {"name": "out", "type": "dense", "units": 1}]
    with pytest.raises(SpecError) as caught:
        model_from_mapping(graph(layers), "g.yaml")
    lines = caught.value.lines()
    assert [line.split(": ", 2)[1] for line in lines] == ["layers[0].input", "layers[7].input[1]"], lines


def test_every_error_of_independent_layers_is_reported_together() -> None:
    layers = [{"name": "a", "type": "lstm", "units": 4, "input": "y"},
              {"name": "b", "type": "repeat_vector", "input": "x"},
              {"name": "c", "type": "lstm", "units": 4, "input": "x", "initial_state": "a"},
              {"name": "d", "type": "dense", "units": 1, "input": ["x", "x"]},
              {"name": "out", "type": "dense", "units": 1, "input": "later"},
              {"name": "later", "type": "dense", "units": 1, "input": "x"}]
    with pytest.raises(SpecError) as caught:
        model_from_mapping(graph(layers), "g.yaml")
    assert [p.path for p in caught.value.problems] == [
        "layers[0].input", "layers[1] (repeat_vector)", "layers[2].initial_state", "layers[3].input", "layers[4].input"]


def test_repeat_vector_takes_n_or_like_not_both_nor_neither() -> None:
    def layers(**settings: Any) -> list[dict[str, Any]]:
        return [{"name": "h", "type": "gru", "units": 2}, {"name": "r", "type": "repeat_vector", "input": "h", **settings},
                {"name": "out", "type": "gru", "units": 1}]

    assert model_from_mapping(graph(layers(n=4))).node("r").output_shape == (ir.BATCH, 4, 2)
    assert model_from_mapping(graph(layers(like="x"))).node("r").output_shape == (ir.BATCH, ir.TIME, 2)
    for settings in ({}, {"n": 0}, {"n": 3, "like": "x"}, {"n": 0, "like": "x"}, {"like": ""}):
        with pytest.raises(SpecError) as caught:
            model_from_mapping(graph(layers(**settings)), "g.yaml")
        assert len(caught.value.problems) == 1, settings
        assert caught.value.problems[0].json_path[:2] == ("layers", 1), settings


def test_outputs_table_names_weights_losses_and_feedback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = graph(
        [{"name": "emb", "type": "embedding", "vocab_size": 6, "dim": 3, "input": "t"},
         {"name": "enc", "type": "gru", "units": 4, "return_sequences": True},
         {"name": "next", "type": "dense", "units": 6, "activation": "softmax"},
         {"name": "rep", "type": "repeat_vector", "input": "s", "like": "enc"},
         {"name": "size", "type": "dense", "units": 1}],
        {"next": {"loss": "sparse_categorical_crossentropy", "feedback": {"input": "t", "start": 1, "end": 2, "max_length": 9}},
         "size": {"loss": {"type": "huber", "delta": 2.0}, "loss_weight": 0.25, "metrics": ["mae", "rmse"]}},
        t={"shape": [None], "dtype": "int64"}, s={"shape": [2]},
    )
    assert main(["check", str(write(tmp_path, spec))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[8] == "3  rep   repeat_vector(enc)  s, like: enc  [time, 2]          0"
    assert out[-3:] == [
        "output  shape      loss                             weight  metrics    feedback",
        "next    [time, 6]  sparse_categorical_crossentropy       1  -          t (start 1, end 2, max_length 9)",
        "size    [time, 1]  huber (delta 2)                    0.25  mae, rmse",
    ]


def test_graph_data_files_are_npz_named_after_inputs_and_outputs(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("value\n1\n")
    spec = graph([{"name": "out", "type": "gru", "units": 1}])
    spec["data"] = {"train": "train.csv"}
    with pytest.raises(SpecError) as caught:
        model_from_mapping(spec, "g.yaml", tmp_path)
    assert [p.message for p in caught.value.problems] == [
        "a graph reads .npz files, one array per input and output (x, out); got train.csv"]


def test_schema_v2_is_what_rnnc_schema_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--version", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((ROOT / "rnnc" / "schema" / "spec-v2.json").read_text())
