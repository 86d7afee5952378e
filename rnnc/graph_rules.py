"""Semantic rules of spec version 2 (graphs): what the schema and the graph's shape
inference (`rnnc.graph`) cannot say, each a small function over the built parts.

The v1 rules that read only training, data and export settings apply as they are
(`rnnc.validate`); the rules about the output are asked once per output here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import ir
from .data_parquet import is_parquet
from .decoding import decoding_issues
from .errors import Problem, did_you_mean
from .layers.base import show
from .next_token import CORPUS_SUFFIXES, fed_back_input
from .rows import is_npy_dir
from .bucket_rules import graph_buckets
from .tbptt_rules import graph_fits_tbptt
from .validate import _PROBABILITIES, Parts, model_size_is_trainable, one_validation_source

if TYPE_CHECKING:
    from .graph import Value


@dataclass
class GraphParts(Parts):
    inputs: dict[str, ir.Input] | None = None
    losses: dict[str, ir.Loss] | None = None
    outputs: list[ir.Output] | None = None
    warnings: list[Problem] = field(default_factory=list)
    complete: bool = False  # every node inferred
    values: dict[str, Value] = field(default_factory=dict)  # what the graph knows of each inferred value (rnnc.graph)


def _node(parts: GraphParts, index: int) -> ir.Node:
    assert parts.nodes is not None
    return next(n for n in parts.nodes if n.index == index)


def _final(parts: GraphParts, node: ir.Node) -> str:
    """The activation an output comes out of (through dropout), else its layer's kind."""
    by_key = {n.key: n for n in parts.nodes or ()}
    while isinstance(node.layer, ir.Dropout) and node.sources and node.sources[0] in by_key:
        node = by_key[node.sources[0]]
    match node.layer:
        case ir.Dense() | ir.Activation() | ir.Conv1D():
            return node.layer.activation
        case _:
            return node.layer.kind


def monitor_names(outputs: list[ir.Output] | tuple[ir.Output, ...]) -> list[str]:
    """What training logs for these outputs: `loss` and the metrics, named after their
    output (`answer_accuracy`, `answer_loss`) when there are several."""
    if len(outputs) == 1:
        return ["loss", *outputs[0].metrics]
    names = ["loss"]
    for out in outputs:
        names += [f"{out.name}_loss", *(f"{out.name}_{m}" for m in out.metrics)]
    return names


# The rules below that read nodes run on those the graph could infer, so one broken layer
# does not hide an unrelated output's problem (parts.outputs holds only outputs whose
# layer was inferred).


def losses_fit_outputs(parts: GraphParts) -> list[Problem]:
    if parts.outputs is None:
        return []
    problems = []
    for out in parts.outputs:
        node, loss = _node(parts, out.node), out.loss
        shape = node.output_shape
        path = ("outputs", out.name, "loss")
        if loss.type in ("categorical_crossentropy", "sparse_categorical_crossentropy") and shape[-1] == 1:
            problems.append(parts.doc.problem(
                path, f"{loss.type} needs an output of one unit per class (at least 2), '{out.name}' has 1; "
                      "for two classes use binary_crossentropy with 1 unit"))
        if loss.is_classification:
            final, wanted = _final(parts, node), _PROBABILITIES[loss.type]
            if not loss.from_logits and final != wanted:
                problems.append(parts.doc.problem(
                    path, f"{loss.type} expects probabilities: end '{out.name}' with activation '{wanted}' "
                          f"(it ends with '{final}'), or set from_logits: true"))
            if loss.from_logits and final != "linear":
                problems.append(parts.doc.problem(
                    path, f"from_logits: true expects a linear output, but '{out.name}' ends with '{final}'"))
        problems += [
            parts.doc.problem(("outputs", out.name, "metrics", i), f"'{m}' needs a classification loss, got {loss.type}")
            for i, m in enumerate(out.metrics)
            if m in ("accuracy", "precision", "recall", "f1", "auc") and not loss.is_classification
        ]
    return problems


def graph_monitors_exist(parts: GraphParts) -> list[Problem]:
    if parts.training is None or parts.losses is None:
        return []
    # the outputs as the spec declares them, so a monitor is checked even when a layer failed
    declared = [ir.Output(name, -1, loss, metrics=tuple(parts.doc.data["outputs"][name].get("metrics", ())))
                for name, loss in parts.losses.items()]
    names = monitor_names(declared)
    validation = bool(parts.training.validation_split) or bool(parts.data and parts.data.validation)
    if validation:
        names += [f"val_{n}" for n in names]
    problems = []
    for section, settings in (("early_stopping", parts.training.early_stopping), ("lr_schedule", parts.training.lr_schedule)):
        if settings is None or (section == "lr_schedule" and settings.type != "plateau"):
            continue
        if settings.monitor not in names:
            problems.append(parts.doc.problem(
                ("training", section, "monitor"),
                f"cannot monitor '{settings.monitor}'{_monitor_hint(settings.monitor, declared, names, validation)}; "
                f"available: {', '.join(names)}"))
    return problems


def _monitor_hint(monitor: str, outputs: list[ir.Output], names: list[str], validation: bool) -> str:
    if not validation and monitor.startswith("val_"):
        return " (no validation data: set data.validation or training.validation_split)"
    prefix = "val_" if monitor.startswith("val_") else ""
    metric = monitor.removeprefix(prefix)
    if len(outputs) > 1 and metric in (*ir.METRICS, "acc"):  # v1's plain names: one per output now
        metric = "accuracy" if metric == "acc" else metric
        named = [f"{prefix}{o.name}_{metric}" for o in outputs if metric in o.metrics]
        if named:
            return (" (with several outputs each metric is logged under its output's name: did you mean "
                    f"{' or '.join(repr(n) for n in named)}?)")
    return did_you_mean(monitor, names)


def log_names_are_unique(parts: GraphParts) -> list[Problem]:
    """With several outputs the logs carry each output's name, so a name starting with
    `val_` (or `val`) would read as another output's validation log: `val_loss` of an
    output named `val`, `val_a_loss` of one named `val_a` and of `a`'s validation."""
    if parts.outputs is None or len(parts.outputs) < 2:
        return []
    return [
        parts.doc.problem(("outputs", out.name), f"output '{out.name}' would log '{out.name}_loss', which reads as a "
                                                 "validation log; with several outputs no output name starts with val",
                          key=True)
        for out in parts.outputs if out.name == "val" or out.name.startswith("val_")
    ]


def data_array_names_are_unique(parts: GraphParts) -> list[Problem]:
    """A data file holds one array per input, per input's lengths and per output (and
    its classes); two of them cannot share a name."""
    if parts.inputs is None:
        return []
    owner: dict[str, str] = {}
    for inp in parts.inputs.values():
        owner.setdefault(inp.name, f"input '{inp.name}'")
        if inp.sequence:
            owner.setdefault(inp.lengths_name, f"the lengths of input '{inp.name}'")
    for out in parts.outputs or ():
        owner.setdefault(out.name, f"output '{out.name}'")
        owner.setdefault(f"{out.name}_classes", f"the class names of output '{out.name}'")
    problems = []
    for name, inp in parts.inputs.items():
        if (other := owner[name]) != f"input '{name}'":
            problems.append(parts.doc.problem(
                ("inputs", name), f"input '{name}' has the name of the data array of {other}; rename it", key=True))
    for out in parts.outputs or ():
        if (other := owner[out.name]) != f"output '{out.name}'" and not other.startswith("input "):
            problems.append(parts.doc.problem(
                ("outputs", out.name), f"output '{out.name}' has the name of the data array of {other}; rename it", key=True))
    return problems


def graph_data_is_npz(parts: GraphParts) -> list[Problem]:
    """A graph reads `.npz` files whose arrays are named after its inputs and outputs; a
    next-token graph may read raw text through `data.text` instead (`rnnc.data_corpus`)."""
    if parts.data is None:
        return []
    problems = []
    arrays = [*(parts.inputs or ()), *(o.name for o in parts.outputs or ())]
    npz = "a graph reads .npz files, one array per input and output" + (f" ({', '.join(arrays)})" if arrays else "")
    text_input = fed_back_input(parts.inputs or {}, parts.outputs or ())
    corpus = text_input is not None and parts.data.text is not None
    if corpus:
        assert text_input is not None
        problems += _corpus_fits(parts, text_input)
    text = "reads raw text for a v1 chain, or for a next-token graph (one int64 sequence input that every output feeds back)"
    for key, what in (("csv", "cuts a v1 chain's .csv series into windows"), ("text", text)):
        if getattr(parts.data, key) is not None and not (corpus and key == "text"):
            problems.append(parts.doc.problem(("data", key), f"{what}; {npz}: remove data.{key}", key=True))
    for role in ("train", "validation", "test"):
        path = getattr(parts.data, role)
        if path is None:
            continue
        if "\0" in path:
            problems.append(parts.doc.problem(("data", role), "a file name cannot contain a NUL character"))
        elif Path(path).exists() and is_parquet(path):  # a .parquet file or a directory of them
            continue
        elif is_npy_dir(path):  # a directory of .npy arrays (rnnc.rows)
            continue
        elif Path(path).is_dir():
            problems.append(parts.doc.problem(("data", role), f"{path} is a directory, not a data file"))
        elif not Path(path).exists():
            problems.append(parts.doc.problem(("data", role), f"no such file: {path}"))
        elif corpus and Path(path).suffix not in CORPUS_SUFFIXES:
            problems.append(parts.doc.problem(("data", role), f"data.text reads raw text from {', '.join(CORPUS_SUFFIXES)} files; got {Path(path).name}"))
        elif not corpus and Path(path).suffix != ".npz":
            hint = ""
            if Path(path).suffix == ".txt":
                hint = (": set data.text (tokenizer, max_length) to read raw text" if text_input is not None else
                        "; raw text (.txt) feeds a next-token graph only (one int64 sequence input that every output feeds back)")
            problems.append(parts.doc.problem(("data", role), f"{npz}; got {Path(path).name}{hint}"))
    return problems


def _corpus_fits(parts: GraphParts, name: str) -> list[Problem]:
    """Text samples are `max_length` steps, the last piece of a file and short rows
    fewer: the input takes them, with lengths; a next-token model reads no label."""
    assert parts.data is not None and parts.data.text is not None and parts.inputs is not None
    problems = []
    steps, wanted = parts.inputs[name].shape[0], parts.data.text.max_length
    masked = any(isinstance(n.layer, ir.Embedding) and n.layer.mask_zero and n.sources[:1] == (name,) for n in parts.nodes or ())
    if steps is not None and (steps != wanted or not masked):
        problems.append(parts.doc.problem(("inputs", name, "shape"), (
            f"text becomes samples of max_length ({wanted}) steps, the last piece of a file and short rows fewer, so "
            f"input '{name}' takes lengths: give it shape [null], or [{wanted}] read by a mask_zero embedding")))
    written = parts.doc.data.get("data", {}).get("text")
    if isinstance(written, dict) and "label" in written:
        problems.append(parts.doc.problem(("data", "text", "label"), (
            f"a next-token model learns from the text alone (the targets are '{name}' one step on): remove data.text.label"),
            key=True))
    return problems


def graph_can_stream(parts: GraphParts) -> list[Problem]:
    """Each kind's own rule (`streaming_problem`), and a decoder started from another
    layer's state, whose first chunk alone would start there."""
    if parts.export is None or not parts.export.streaming:
        return []
    problems = []
    for node in parts.nodes or ():
        if reason := node.layer.streaming_problem():
            problems.append(parts.doc.problem(("layers", node.index), f"{reason} (export.streaming is true)"))
        elif node.state_from:
            problems.append(parts.doc.problem(
                ("layers", node.index, "initial_state"),
                "a layer started from another layer's state cannot stream: each chunk would start it again "
                "(export.streaming is true)"))
    return problems


def graph_settings_apply(parts: GraphParts) -> list[Problem]:
    """Each kind's own rule on settings that do not apply together (`setting_problems`)."""
    return [
        parts.doc.problem(("layers", node.index, setting), why)
        for node in parts.nodes or ()
        for setting, why in node.layer.setting_problems()
    ]


def graph_skips_no_steps(parts: GraphParts) -> list[Problem]:
    """Skipping masked steps anywhere (rnnc.layers.masking) is for chains, for now."""
    return [
        parts.doc.problem(("layers", node.index, "mask_zero") if isinstance(node.layer, ir.Embedding) else ("layers", node.index),
                          f"{'mask_zero: anywhere' if isinstance(node.layer, ir.Embedding) else 'masking'} skips steps "
                          "anywhere in a sequence, which rnnc does in chains (spec version 1) only, for now")
        for node in parts.nodes or () if ir.skips_steps(node.layer)
    ]


def normalization_reads_an_input(parts: GraphParts) -> list[Problem]:
    """normalization adapts to the training data, so it reads an input of the graph."""
    if parts.inputs is None:
        return []
    floats = [n for n, i in parts.inputs.items() if i.dtype == "float32"]
    return [
        parts.doc.problem(
            ("layers", node.index, "input") if "input" in parts.doc.data["layers"][node.index] else ("layers", node.index),
            f"normalization learns its mean and variance from the training data before training, so it reads a float "
            f"input of the graph ({' or '.join(floats) or 'there is none'}), not {_shown(node.sources[0])}: "
            "put it first, on the input")
        for node in parts.nodes or ()
        if isinstance(node.layer, ir.Normalization) and node.sources[0] not in floats
    ]


def _shown(key: str) -> str:
    return key if key.startswith("layers[") else f"'{key}'"


def feedback_fits(parts: GraphParts) -> list[Problem]:
    """`feedback: I` names an input of token ids whose next step the output predicts,
    step by step on I's own time axis."""
    if parts.outputs is None or parts.inputs is None:
        return []
    problems = []
    for out in parts.outputs:
        if out.feedback is not None:
            problems += _feedback_problems(parts, out, out.feedback)
    return problems


def _feedback_problems(parts: GraphParts, out: ir.Output, fb: ir.Feedback) -> list[Problem]:
    assert parts.inputs is not None
    path = ("outputs", out.name, "feedback")
    problem = lambda message, at=path: [parts.doc.problem(at, message)]  # noqa: E731
    inp = parts.inputs.get(fb.input)
    if inp is None:
        return problem(f"feedback names no input '{fb.input}'{did_you_mean(fb.input, list(parts.inputs))}; "
                       f"it takes an input of token ids: {', '.join(n for n, i in parts.inputs.items() if i.dtype == 'int64') or 'none'}")
    if inp.dtype != "int64" or not inp.sequence:
        return problem(f"feedback takes an input of token ids, int64 [timesteps]; '{fb.input}' is not one")
    node = _node(parts, out.node)
    value = parts.values.get(node.key)
    if len(node.output_shape) != 3:
        return problem(f"feedback predicts the next step of '{fb.input}', so '{out.name}' must give one prediction per step "
                       f"(a sequence); it is {show(node.output_shape)}")
    if value is not None and value.time != fb.input:
        return problem(f"the output at step t predicts step t+1 of '{fb.input}', so '{out.name}' must run on the steps of "
                       f"'{fb.input}'; it runs on those of {_shown(value.time or '?')}")
    problems = []
    if out.loss.type != "sparse_categorical_crossentropy":
        problems += problem(f"feedback predicts ids: its loss is sparse_categorical_crossentropy, got {out.loss.type}")
    classes = node.output_shape[-1]
    for setting in ("start", "end"):
        if (token := getattr(fb, setting)) is not None and isinstance(classes, int) and token >= classes:
            problems += problem(f"{token} is not an id '{out.name}' predicts (0 to {classes - 1})", (*path, setting))
    for embedding in (n for n in parts.nodes or () if isinstance(n.layer, ir.Embedding) and n.sources[:1] == (fb.input,)):
        if isinstance(classes, int) and classes > embedding.layer.vocab_size:
            problems += problem(f"'{out.name}' predicts {classes} ids, but the embedding {_shown(embedding.key)} that reads "
                                f"them back takes {embedding.layer.vocab_size}: give both the same size")
    others = [n for n in parts.inputs if n != fb.input]
    missing = [k for k in ("start", "end", "max_length") if getattr(fb, k) is None]
    if others and missing:
        problems += problem(f"decoding '{out.name}' cannot read '{fb.input}' from the caller, who gives "
                            f"{', '.join(others)}: set {', '.join(missing)} (the id it starts with, the id it stops at, "
                            "the most steps)")
    return problems


def feedback_decodes(parts: GraphParts) -> list[Problem]:
    """Decoding runs the layers after the fed-back input one step at a time
    (`rnnc.decoding`): none of them may need the steps not decoded yet."""
    if parts.outputs is None or parts.nodes is None or parts.inputs is None:
        return []
    fed = [out for out in parts.outputs if out.feedback is not None]
    fits = bool(fed) and not _feedback_problems(parts, fed[0], fed[0].feedback)  # type: ignore[arg-type]
    return [parts.doc.problem(path, message) for path, message in decoding_issues(parts.nodes, parts.outputs)
            if fits or path[0] == "outputs"]  # a feedback that does not fit is reported once, by feedback_fits


GRAPH_RULES = (
    model_size_is_trainable,
    losses_fit_outputs,
    one_validation_source,
    graph_monitors_exist,
    log_names_are_unique,
    data_array_names_are_unique,
    graph_data_is_npz,
    graph_can_stream,
    graph_settings_apply,
    graph_skips_no_steps,
    graph_fits_tbptt,
    graph_buckets,
    normalization_reads_an_input,
    feedback_fits,
    feedback_decodes,
)


def graph_problems(parts: GraphParts) -> list[Problem]:
    return [problem for rule in GRAPH_RULES for problem in rule(parts)]
