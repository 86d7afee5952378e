"""The JSON Schema: valid, printed by `rnnc schema`, true to the specs and to the IR.

Editors and other tools validate specs with this schema alone, so it must accept every
ready spec with plain jsonschema, name the same choices as the IR, and announce the
same defaults the IR applies.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rnnc import build, ir
from rnnc.cli import main
from rnnc.schema import load_schema

SPECS = sorted((Path(__file__).resolve().parents[2] / "specs").glob("*.yaml"))
SCHEMA = load_schema()
DEFS = SCHEMA["$defs"]


def test_rnnc_schema_prints_the_schema_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == SCHEMA
    jsonschema.Draft202012Validator.check_schema(printed)
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_ready_specs_pass_plain_jsonschema(spec: Path) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(yaml.safe_load(spec.read_text()))


@pytest.mark.parametrize(
    ("enum", "names"),
    [
        (DEFS["layer"]["properties"]["type"]["enum"], tuple(ir.LAYER_KINDS)),
        (DEFS["activation"]["enum"], ir.ACTIVATIONS),
        (DEFS["lossName"]["enum"], ir.LOSSES),
        (DEFS["metric"]["enum"], ir.METRICS),
        (DEFS["optimizerName"]["enum"], ir.OPTIMIZERS),
    ],
    ids=["layer types", "activations", "losses", "metrics", "optimizers"],
)
def test_schema_names_the_same_choices_as_the_ir(enum: list[str], names: tuple[str, ...]) -> None:
    assert sorted(enum) == sorted(names)


def test_every_layer_kind_has_a_schema_branch() -> None:
    branches = {b["if"]["properties"]["type"]["const"] for b in DEFS["layer"]["allOf"]}
    assert branches == set(ir.LAYER_KINDS)


# (schema object, IR dataclass) whose property defaults must equal the field defaults
SECTIONS: list[tuple[str, dict[str, Any], type]] = [
    ("embedding", DEFS["embedding"], ir.Embedding),
    ("simple_rnn", DEFS["simple_rnn"], ir.SimpleRNN),
    ("lstm", DEFS["lstm"], ir.LSTM),
    ("gru", DEFS["lstm"], ir.GRU),
    ("dense", DEFS["dense"], ir.Dense),
    ("dropout", DEFS["dropout"], ir.Dropout),
    ("activation", DEFS["activationLayer"], ir.Activation),
    ("layer_norm", DEFS["layer_norm"], ir.LayerNorm),
    ("conv1d", DEFS["conv1d"], ir.Conv1D),
    ("pool", DEFS["pool"], ir.Pool),
    ("loss", DEFS["lossMapping"], ir.Loss),
    ("training", DEFS["training"], ir.Training),
    ("early_stopping", DEFS["training"]["properties"]["early_stopping"], ir.EarlyStopping),
    *[(f"lr_schedule {b['if']['properties']['type']['const']}", b["then"], ir.LRSchedule) for b in DEFS["lrSchedule"]["allOf"]],
    ("input", DEFS["input"], ir.Input),
    ("csv", DEFS["data"]["properties"]["csv"], ir.CsvWindows),
    ("export", DEFS["export"], ir.Export),
]
# defaults the IR resolves from other settings, each checked on its own below
RESOLVED = {(ir.EarlyStopping, "mode")}


def shared_defaults(schema: dict[str, Any], cls: type) -> list[tuple[str, Any, Any]]:
    fields = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    return [
        (name, prop["default"], fields[name])
        for name, prop in schema.get("properties", {}).items()
        if isinstance(prop, dict) and "default" in prop and name in fields and (cls, name) not in RESOLVED
    ]


@pytest.mark.parametrize(("schema", "cls"), [row[1:] for row in SECTIONS], ids=[row[0] for row in SECTIONS])
def test_schema_defaults_equal_ir_defaults(schema: dict[str, Any], cls: type) -> None:
    for name, announced, applied in shared_defaults(schema, cls):
        assert announced == applied, f"{cls.__name__}.{name}"


def test_the_default_comparison_is_not_vacuous() -> None:
    assert sum(len(shared_defaults(schema, cls)) for _, schema, cls in SECTIONS) >= 30


def test_early_stopping_mode_auto_resolves_by_monitor() -> None:
    assert DEFS["training"]["properties"]["early_stopping"]["properties"]["mode"]["default"] == "auto"
    modes = {
        monitor: build.build_training({"early_stopping": {"monitor": monitor}}).early_stopping.mode
        for monitor in ("val_loss", "loss", "val_accuracy", "auc", "val_f1", "val_mae")
    }
    assert modes == {"val_loss": "min", "loss": "min", "val_accuracy": "max", "auc": "max", "val_f1": "max", "val_mae": "min"}


OPTIMIZER_SCHEMAS = {"sgd": DEFS["sgd"], "adam": DEFS["adam"], "adamw": DEFS["adam"], "rmsprop": DEFS["rmsprop"], "adagrad": DEFS["adagrad"]}
# adamw shares adam's schema, whose weight_decay default (0) is adam's; Keras's adamw uses 0.004
OPTIMIZER_EXCEPTIONS = {("adamw", "weight_decay"): 0.004}


@pytest.mark.parametrize("kind", ir.OPTIMIZERS)
def test_optimizer_defaults_per_type(kind: str) -> None:
    built = build.build_optimizer(kind)
    assert built == build.build_optimizer({"type": kind})
    for name, prop in OPTIMIZER_SCHEMAS[kind]["properties"].items():
        if isinstance(prop, dict) and "default" in prop:
            assert getattr(built, name) == OPTIMIZER_EXCEPTIONS.get((kind, name), prop["default"]), name
    assert built.lr == (0.01 if kind == "sgd" else 0.001)
