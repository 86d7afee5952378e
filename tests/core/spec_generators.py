"""Hypothesis generators of spec files for tests/core/test_spec_fuzz.py (version 2's
graphs: graph_generators.py, which shares the mutations and values drawn here).

Three kinds: `mutated_specs` takes a ready spec from `specs/` and breaks it at random
(keys dropped, renamed or retyped, values out of range, nested in lists, unicode, huge
numbers); `valid_specs` writes schema-valid specs from random layer stacks, inputs,
losses and settings, to reach the shape and semantic rules; `yaml_documents` writes
YAML text from a YAML-ish grammar. `values` draws any YAML value, `paths` lists the
places inside a nested value, and `BASES` holds the ready specs as parsed YAML.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from hypothesis import strategies as st

from rnnc import ir
from rnnc.schema import load_schema

SPECS = sorted((Path(__file__).resolve().parents[2] / "specs").glob("*.yaml"))
BASES = {spec.stem: yaml.safe_load(spec.read_text()) for spec in SPECS}


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


# --- ready specs broken at random ------------------------------------------------

KNOWN_WORDS = sorted(
    {*ir.LAYER_KINDS, *ir.ACTIVATIONS, *ir.LOSSES, *ir.METRICS, *ir.OPTIMIZERS, "val_loss", "val_accuracy",
     "step", "cosine", "plateau", "same", "valid", "last", "mean", "max", "int64", "float32"}
)


def _all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _all_keys(v)}
    return set()


def _schema_keys(schema: Any) -> set[str]:
    """Every property name the schema knows, so mutations add settings that matter."""
    if isinstance(schema, dict):
        own = set(schema.get("properties", {})) if isinstance(schema.get("properties"), dict) else set()
        return own | {k for v in schema.values() for k in _schema_keys(v)}
    if isinstance(schema, list):
        return {k for v in schema for k in _schema_keys(v)}
    return set()


KNOWN_KEYS = sorted({k for base in BASES.values() for k in _all_keys(base)} | _schema_keys(load_schema()) - {"$schema"})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([10**30, -(10**30), 2**63, 10**4000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, 0.999, 1e-300, 1e308, -1e-9]),
    st.text(max_size=12),
    st.sampled_from(KNOWN_WORDS),
    st.sampled_from(["ünïcødé", "名前", "\u202e", "\x00", "🙂", "${HOME}", "'", '"', "\\", "a: b", "- x", "*x", "&x", "!!int"]),
)


def _values(known_keys: list[str], known_words: list[str]) -> st.SearchStrategy[Any]:
    """Any YAML value, its mapping keys and words drawn from these."""
    words = scalars if known_words is KNOWN_WORDS else st.one_of(scalars, st.sampled_from(known_words))
    return st.recursive(
        words,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(known_keys) | st.text(max_size=6), children, max_size=3),
        max_leaves=6,
    )


values = _values(KNOWN_KEYS, KNOWN_WORDS)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a nested value, the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += paths(child, (*prefix, i))
    return out


def _at(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    data: Any = copy.deepcopy(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        data = _mutate(draw, data, KNOWN_KEYS, KNOWN_WORDS, values)
    return data


def _mutate(draw: st.DrawFn, data: Any, known_keys: list[str], known_words: list[str], values: st.SearchStrategy[Any]) -> Any:
    """One random edit of `data` (in place where it can be; the result returned)."""
    path = draw(st.sampled_from(paths(data)))
    op = draw(st.sampled_from(["drop", "rename", "retype", "nest", "scale", "add", "add", "wrap_root"]))
    target = _at(data, path)
    if op == "add" and isinstance(target, dict):  # a known setting, often a sensible value
        target[draw(st.sampled_from(known_keys))] = draw(st.booleans() | st.sampled_from(known_words) | st.integers(0, 40) | values)
        return data
    if not path or op == "wrap_root":
        return draw(values) if op == "retype" else ([data] if op == "nest" else data)
    parent, last = _at(data, path[:-1]), path[-1]
    match op:
        case "drop":
            del parent[last]
        case "rename" if isinstance(parent, dict):
            new = draw(st.sampled_from(known_keys) | st.text(min_size=1, max_size=10))
            parent[new] = parent.pop(last)
        case "retype":
            parent[last] = draw(values)
        case "nest":
            parent[last] = [parent[last]]
        case "scale" if isinstance(parent[last], (int, float)) and not isinstance(parent[last], bool):
            factor = draw(st.sampled_from([-1, 0, 2, 1000, 10**20, 0.5, 1e300]))
            try:
                parent[last] = parent[last] * factor
            except OverflowError:  # a huge int times a float
                parent[last] = float("inf")
        case _:
            parent[last] = draw(values)
    return data


# --- schema-valid specs, to reach the shape and semantic rules ----------------------

small = st.integers(min_value=1, max_value=6)
rate = st.floats(min_value=0, max_value=0.9)
RECURRENT = {"return_sequences": st.booleans(), "bidirectional": st.booleans(), "dropout": rate, "use_bias": st.booleans()}


def layer(kind: str, required: dict[str, Any], optional: dict[str, Any] | None = None) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({"type": st.just(kind), **required}, optional=optional or {})


LAYERS = st.one_of(
    layer("embedding", {"vocab_size": small, "dim": small}, {"mask_zero": st.booleans()}),
    layer("simple_rnn", {"units": small}, {"activation": st.sampled_from(["tanh", "relu"]), **RECURRENT}),
    layer("lstm", {"units": small}, RECURRENT),
    layer("gru", {"units": small}, RECURRENT),
    layer("dense", {"units": small}, {"activation": st.sampled_from(ir.ACTIVATIONS), "use_bias": st.booleans()}),
    layer("dropout", {"rate": rate}),
    layer("activation", {"activation": st.sampled_from(ir.ACTIVATIONS)}),
    layer("layer_norm", {}, {"eps": st.floats(min_value=1e-9, max_value=1)}),
    layer("conv1d", {"filters": small, "kernel_size": st.integers(1, 12)},
          {"stride": st.integers(1, 4), "padding": st.sampled_from(["same", "valid"]), "activation": st.sampled_from(ir.ACTIVATIONS)}),
    layer("pool", {"mode": st.sampled_from(["last", "mean", "max"])}),
)
MONITORS = st.sampled_from(["loss", "val_loss", "accuracy", "val_accuracy", "val_auc", "mae", "val_f1", "rmse"])
# a last layer that fits each loss, so that about half the generated specs are valid
HEADS = {
    "binary_crossentropy": (1, "sigmoid", ["accuracy", "auc", "precision", "recall", "f1"]),
    "categorical_crossentropy": (3, "softmax", ["accuracy", "f1"]),
    "sparse_categorical_crossentropy": (3, "softmax", ["accuracy", "precision"]),
    "mse": (2, "linear", ["mae", "rmse", "mse"]),
    "mae": (1, "linear", ["mae", "rmse"]),
    "huber": (1, "linear", ["mse"]),
}


def often(draw: st.DrawFn) -> bool:
    """True nine times in ten: mostly sensible choices, sometimes not."""
    return draw(st.integers(0, 9)) > 0


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    steps = draw(st.none() | st.integers(1, 30))
    dtype = draw(st.sampled_from(["float32", "int64"]))
    tokens = (dtype == "int64") == often(draw)
    shape = [steps] if tokens else [steps, draw(small)]
    layers = draw(st.lists(LAYERS.filter(lambda l: l["type"] != "embedding") if often(draw) else LAYERS, min_size=1, max_size=4))
    if dtype == "int64" and often(draw):
        layers.insert(0, draw(layer("embedding", {"vocab_size": small, "dim": small}, {"mask_zero": st.booleans()})))
    loss = draw(st.sampled_from(ir.LOSSES))
    units, activation, metrics = HEADS[loss]
    if often(draw):
        layers.append({"type": "dense", "units": units, "activation": activation})
    if not often(draw):
        metrics = list(ir.METRICS)
    monitor = draw(MONITORS) if not often(draw) else draw(st.sampled_from(["loss", "val_loss"]))
    spec = {
        "rnnc": 1, "name": "fuzz", "input": {"shape": shape, "dtype": dtype}, "layers": layers,
        "loss": loss if draw(st.booleans()) else {"type": loss, "from_logits": not often(draw)},
        "optimizer": draw(st.sampled_from(ir.OPTIMIZERS)),
        "metrics": draw(st.lists(st.sampled_from(metrics), unique=True, max_size=2)),
        "training": {
            "validation_split": 0.2 if often(draw) else 0.0,
            **draw(st.fixed_dictionaries({}, optional={
                "early_stopping": st.just({"monitor": monitor}),
                "lr_schedule": st.just({"type": "plateau", "monitor": monitor}) | st.fixed_dictionaries({"type": st.sampled_from(["step", "cosine"])}),
            })),
        },
        "export": {"streaming": not often(draw)},
    }
    jsonschema.Draft202012Validator(load_schema()).validate(spec)  # the generator's own promise
    return spec


# --- random YAML documents, written from a YAML-ish text grammar ----------------------
# Not built with yaml.safe_dump: these reach what a hand-written or hostile file holds
# (anchors and aliases, tags, block scalars, flow collections, explicit and complex keys,
# directives, document markers, comments, tabs, bad indentation, bad escapes).

PLAIN = st.sampled_from([
    *KNOWN_WORDS, "1e-3", "1E+400", "-0", "0x1F", "0o17", "0b101", "1_000", ".inf", "-.inf", ".nan", "~", "null", "yes",
    "no", "on", "off", "True", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "12:30:45", "9" * 5000, "ünïcødé", "名前", "🙂",
])
QUOTED = st.one_of(
    st.text(max_size=8).map(lambda t: "'" + t.replace("'", "''").replace("\n", " ") + "'"),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\\n'), max_size=8).map(lambda t: f'"{t}"'),
    st.sampled_from([r'"\x00"', r'"\u202e"', r'"\U0001F642"', r'"\q"', r'"\uD800"', '"unterminated', "'also", r'"\N\_\L\P"']),
)
PROPERTIES = st.sampled_from([
    "", "", "", "", "&a ", "&b ", "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!binary ", "!!timestamp ", "!!set ",
    "!!omap ", "!!python/object/apply:os.system ", "!!python/name:os.system ", "!local ", "!<tag:yaml.org,2002:str> ",
    "!e!tag ", "&a !!str ",
])
KEYS = st.sampled_from(KNOWN_KEYS) | st.sampled_from(["<<", "? ", "[a, b]", "{a: b}", "''", '"k"', "1", "true", "null", "-", "a b", "key\t"])


@st.composite
def yaml_scalar(draw: st.DrawFn) -> str:
    alias = draw(st.sampled_from(["", "", "", "", "*a", "*b", "*nowhere"]))
    if alias:
        return alias
    return draw(PROPERTIES) + draw(st.one_of(PLAIN, QUOTED, st.integers().map(str), st.floats().map(repr)))


@st.composite
def yaml_flow(draw: st.DrawFn, depth: int = 0) -> str:
    item = yaml_scalar() if depth >= 3 else st.one_of(yaml_scalar(), yaml_flow(depth + 1))
    if draw(st.booleans()):
        inner = ", ".join(draw(st.lists(item, max_size=4)))
        return draw(PROPERTIES) + "[" + inner + draw(st.sampled_from(["]", "]", "]", ",]", ""]))
    pairs = [f"{draw(KEYS)}: {draw(item)}" for _ in range(draw(st.integers(0, 4)))]
    return draw(PROPERTIES) + "{" + ", ".join(pairs) + draw(st.sampled_from(["}", "}", "}", ",}", ""]))


@st.composite
def yaml_block(draw: st.DrawFn, indent: int = 0, depth: int = 0) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    sequence = draw(st.integers(0, 3)) == 0
    for _ in range(draw(st.integers(1, 5))):
        head = f"{pad}- " if sequence else f"{pad}{draw(KEYS)}:"
        form = draw(st.sampled_from(["scalar", "scalar", "flow", "block", "block_scalar", "comment", "noise"]))
        if form == "block" and depth < 4:
            lines.append(head.rstrip() + (" " + draw(PROPERTIES)).rstrip())
            lines += draw(yaml_block(indent + draw(st.sampled_from([2, 2, 4, 1, 0])), depth + 1))
        elif form == "block_scalar":
            lines.append(f"{head} {draw(st.sampled_from(['|', '>', '|-', '>+', '|2', '|0']))}")
            lines += [pad + "  " + draw(st.text(alphabet=st.characters(blacklist_characters="\n\r"), max_size=10)) for _ in range(draw(st.integers(0, 3)))]
        elif form == "comment":
            lines.append(f"{head} {draw(yaml_scalar())}  # {draw(st.text(max_size=8))}".replace("\n", " "))
        elif form == "noise":
            lines.append(draw(st.sampled_from(["\t" + head, head + " :", head + " - x", pad + "...", pad + "---", "%YAML 1.2", "%TAG !e! tag:e,2000:", "", "#"])))
        else:
            lines.append(f"{head} {draw(yaml_flow() if form == 'flow' else yaml_scalar())}")
    return lines


@st.composite
def yaml_documents(draw: st.DrawFn) -> str:
    lines = draw(yaml_block())
    if draw(st.booleans()):  # often a plausible spec's skeleton under the noise
        name = draw(st.sampled_from(sorted(BASES)))
        lines = dump(BASES[name]).splitlines() + lines
        draw(st.randoms()).shuffle(lines) if not draw(st.integers(0, 4)) else None
    prefix = draw(st.sampled_from(["", "", "", "---\n", "%YAML 1.1\n---\n", "--- !!map\n", "\ufeff", "# spec\n"]))
    return prefix + "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n...\n", "\n---\n", "\n---\nrnnc: 1\n"]))
