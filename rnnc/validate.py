"""Semantic rules: what the JSON Schema cannot say about a spec.

Each rule is a small function over the loaded document and the IR pieces built from
it, returning the problems it finds. A rule runs only when the sections it reads passed
the schema, so one bad section does not hide the problems of the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import ir
from .data_parquet import is_parquet
from .errors import Problem, did_you_mean
from .loader import Document
from .rows import is_npy_dir
from .shapes import show, show_dims
from .bucket_rules import chain_buckets
from .tbptt_rules import chain_fits_tbptt


@dataclass
class Parts:
    """The IR pieces built so far; None where a section failed the schema."""

    doc: Document
    base: Path
    input: ir.Input | None = None
    layers: list[ir.Layer] | None = None
    nodes: list[ir.Node] | None = None
    loss: ir.Loss | None = None
    metrics: tuple[str, ...] | None = None
    training: ir.Training | None = None
    data: ir.Data | None = None
    export: ir.Export | None = None


Rule = Callable[[Parts], list[Problem]]


def input_shape_matches_dtype(parts: Parts) -> list[Problem]:
    inp = parts.input
    if inp is None:
        return []
    if inp.dtype == "int64" and len(inp.shape) != 1:
        return [parts.doc.problem(("input", "shape"), f"token ids (dtype int64) take shape [timesteps], got {show_dims(inp.shape)}")]
    if inp.dtype == "float32" and len(inp.shape) != 2:
        return [parts.doc.problem(("input", "shape"), f"float input takes shape [timesteps, features], got {show_dims(inp.shape)}")]
    return []


def _final_activation(nodes: list[ir.Node]) -> str:
    """The activation the model's output passes through last, else the last layer's kind."""
    activation, node = ir.output_activation(nodes)
    return activation or (node.layer.kind if node else "linear")


_PROBABILITIES = {"binary_crossentropy": "sigmoid", "categorical_crossentropy": "softmax",
                  "sparse_categorical_crossentropy": "softmax"}


def loss_fits_output(parts: Parts) -> list[Problem]:
    if parts.loss is None or not parts.nodes or len(parts.nodes) != len(parts.layers or ()):
        return []
    loss, out = parts.loss, parts.nodes[-1].output_shape
    path = ("loss",) if isinstance(parts.doc.data.get("loss"), str) else ("loss", "type")
    problems = []
    if loss.type in ("categorical_crossentropy", "sparse_categorical_crossentropy") and out[-1] == 1:
        problems.append(parts.doc.problem(
            path, f"{loss.type} needs an output of one unit per class (at least 2), got {show(out)}; "
                  "for two classes use binary_crossentropy with 1 unit"))
    if loss.is_classification:
        final, wanted = _final_activation(parts.nodes), _PROBABILITIES[loss.type]
        if not loss.from_logits and final != wanted:
            problems.append(parts.doc.problem(
                path, f"{loss.type} expects probabilities: end the model with activation '{wanted}' "
                      f"(it ends with '{final}'), or set from_logits: true"))
        if loss.from_logits and final != "linear":
            problems.append(parts.doc.problem(
                ("loss", "from_logits"), f"from_logits: true expects a linear output, but the model ends with '{final}'"))
    return problems


def metrics_fit_loss(parts: Parts) -> list[Problem]:
    if parts.loss is None or parts.metrics is None or parts.loss.is_classification:
        return []
    return [
        parts.doc.problem(("metrics", i), f"'{m}' needs a classification loss, got {parts.loss.type}")
        for i, m in enumerate(parts.metrics)
        if m in ("accuracy", "precision", "recall", "f1", "auc")
    ]


def _has_validation(parts: Parts) -> bool:
    return bool(parts.training and parts.training.validation_split) or bool(parts.data and parts.data.validation)


def one_validation_source(parts: Parts) -> list[Problem]:
    if parts.training and parts.training.validation_split and parts.data and parts.data.validation:
        return [parts.doc.problem(("training", "validation_split"),
                                  "give data.validation or training.validation_split, not both", key=True)]
    return []


def monitors_exist(parts: Parts) -> list[Problem]:
    if parts.training is None or parts.metrics is None:
        return []
    names = ["loss", *parts.metrics]
    if _has_validation(parts):
        names += [f"val_{n}" for n in names]
    problems = []
    watched = [("early_stopping", parts.training.early_stopping), ("lr_schedule", parts.training.lr_schedule)]
    for section, settings in watched:
        if settings is None or (section == "lr_schedule" and settings.type != "plateau"):
            continue
        if settings.monitor not in names:
            hint = "" if _has_validation(parts) or not settings.monitor.startswith("val_") else " (no validation data: set data.validation or training.validation_split)"
            hint = hint or did_you_mean(settings.monitor, names)  # Keras logs 'val_acc'
            problems.append(parts.doc.problem(
                ("training", section, "monitor"),
                f"cannot monitor '{settings.monitor}'{hint}; available: {', '.join(names)}"))
    return problems


def data_files_exist(parts: Parts) -> list[Problem]:
    if parts.data is None:
        return []
    problems = []
    for role in ("train", "validation", "test"):
        path = getattr(parts.data, role)
        if path is None:
            continue
        if "\0" in path:  # the OS cannot even be asked about such a name
            problems.append(parts.doc.problem(("data", role), "a file name cannot contain a NUL character"))
        elif Path(path).exists() and is_parquet(path):  # a .parquet file or a directory of them
            continue
        elif is_npy_dir(path):  # a directory of .npy arrays (rnnc.rows)
            continue
        elif Path(path).is_dir():
            problems.append(parts.doc.problem(("data", role), f"{path} is a directory, not a data file"))
        elif not Path(path).exists():
            problems.append(parts.doc.problem(("data", role), f"no such file: {path}"))
        elif Path(path).suffix not in (".npz", ".csv", ".jsonl"):
            problems.append(parts.doc.problem(("data", role), f"expected a .npz, .csv or .jsonl file, got {Path(path).name}"))
        elif Path(path).suffix == ".jsonl" and parts.data.text is None:
            problems.append(parts.doc.problem(("data", role), "a .jsonl data file holds text: it needs data.text"))
    return problems


def csv_windows_fit_input(parts: Parts) -> list[Problem]:
    if parts.data is None:
        return []
    files = [p for p in (parts.data.train, parts.data.validation, parts.data.test) if p]
    has_csv = any(p.endswith(".csv") for p in files)
    windows = parts.data.csv
    if windows is None:
        if has_csv and parts.data.text is None:
            return [parts.doc.problem(("data",), "a .csv data file needs data.csv (targets, window) or data.text to become samples", key=True)]
        return []
    if parts.data.text is not None:
        return [parts.doc.problem(("data", "text"), "give data.csv (a time series) or data.text (raw text), not both", key=True)]
    problems = []
    if not has_csv:
        problems.append(parts.doc.problem(("data", "csv"), "data.csv is given but no data file is a .csv", key=True))
    if parts.input is not None:
        if parts.input.dtype != "float32" or len(parts.input.shape) != 2:
            problems.append(parts.doc.problem(("data", "csv"), "csv time series need float input [timesteps, features]", key=True))
        else:
            steps, features = parts.input.shape
            if steps != windows.window:
                problems.append(parts.doc.problem(
                    ("data", "csv", "window"), f"window {windows.window} must equal input.shape[0] ({show_dims([steps])[1:-1]})"))
            if windows.features is not None and len(windows.features) != features:
                problems.append(parts.doc.problem(
                    ("data", "csv", "features"),
                    f"{len(windows.features)} columns, but input.shape[1] is {features}"))
    return problems


def csv_targets_fit_output(parts: Parts) -> list[Problem]:
    """A series' targets become the label of each window: one column per output unit."""
    if parts.data is None or parts.data.csv is None or not parts.nodes or len(parts.nodes) != len(parts.layers or ()):
        return []
    out = parts.nodes[-1].output_shape
    windows = parts.data.csv
    count = len(windows.targets) * (windows.horizon if windows.all_steps else 1)
    if len(out) != 2 or out[-1] == count:  # [batch, units]; sequence outputs are refused elsewhere
        return []
    if windows.all_steps:  # every step of the horizon is a target: one unit per column per step
        return [parts.doc.problem(("data", "csv", "all_steps"), (
            f"predicts {_counted(len(windows.targets), 'column')} at each of {windows.horizon} steps (data.csv.horizon), "
            f"so the last layer needs {count} units ({windows.horizon} x {len(windows.targets)}), it has {out[-1]}"))]
    return [parts.doc.problem(("data", "csv", "targets"),
                              f"data.csv.targets names {_counted(count, 'column')}, the last layer has {_counted(out[-1], 'unit')}")]


def _counted(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def text_fits_embedding(parts: Parts) -> list[Problem]:
    """Raw text becomes token ids, so the model must start with an embedding large enough."""
    if parts.data is None or parts.data.text is None or parts.input is None:
        return []
    text = parts.data.text
    problems = [
        parts.doc.problem(("data", role), f"data.text reads raw text from .csv or .jsonl files, got {Path(path).name}")
        for role in ("train", "validation", "test")
        if (path := getattr(parts.data, role)) and Path(path).suffix == ".npz"
    ]
    if parts.input.dtype != "int64":
        return [*problems, parts.doc.problem(("data", "text"), "text data needs input dtype int64 (token ids) and an embedding", key=True)]
    steps = parts.input.shape[0]
    if steps is not None and steps != text.max_length:
        problems.append(parts.doc.problem(
            ("data", "text", "max_length"), f"max_length {text.max_length} must equal input.shape[0] ({steps}), or make it null"))
    first = parts.layers[0] if parts.layers else None
    if isinstance(first, ir.Embedding) and first.vocab_size < text.max_vocab + 2:
        problems.append(parts.doc.problem(
            ("layers", 0, "vocab_size"),
            f"vocab_size {first.vocab_size} is smaller than data.text.max_vocab + 2 ({text.max_vocab + 2}: padding and unknown)"))
    return problems


def streaming_is_possible(parts: Parts) -> list[Problem]:
    """Each kind says whether it can run chunk by chunk (its `streaming_problem`), the
    same rule the ONNX exporter reads."""
    if parts.export is None or not parts.export.streaming or parts.layers is None:
        return []
    return [
        parts.doc.problem(("layers", i), f"{reason} (export.streaming is true)")
        for i, layer in enumerate(parts.layers)
        if (reason := layer.streaming_problem())
    ]


def settings_apply(parts: Parts) -> list[Problem]:
    """Each kind's own rule on settings that do not apply together (`setting_problems`)."""
    return [
        parts.doc.problem(("layers", i, setting), why)
        for i, layer in enumerate(parts.layers or ())
        for setting, why in layer.setting_problems()
    ]


def skipped_steps_fit(parts: Parts) -> list[Problem]:
    """A layer that skips masked steps anywhere (rnnc.layers.masking) hands the rest of
    the chain each sequence's kept steps, in order: a convolution, which mixes
    neighbours, may not follow it, and the output is one vector per sequence."""
    nodes = parts.nodes
    if not nodes or len(nodes) != len(parts.layers or ()):
        return []
    first = next((n for n in nodes if ir.skips_steps(n.layer)), None)
    if first is None:
        return []
    what = f"layers[{first.index}] ({first.layer.kind})"
    problems = [
        parts.doc.problem(("layers", n.index), f"conv1d mixes neighbouring steps, so it cannot follow {what}, which "
                                               "skips masked steps anywhere in a sequence: put it before")
        for n in nodes[first.index + 1:] if isinstance(n.layer, ir.Conv1D)
    ]
    if len(nodes[-1].output_shape) == 3:
        where = ("layers", first.index, "mask_zero") if isinstance(first.layer, ir.Embedding) else ("layers", first.index)
        problems.append(parts.doc.problem(
            where, f"skipping masked steps anywhere needs one output per sequence (the model gives one per step, "
                   f"{show(nodes[-1].output_shape)}): end with a recurrent layer without return_sequences, or a pool"))
    return problems


MAX_PARAMS = 2**31 - 1  # past this a float32 model is 8 GiB and torch's indexing breaks down


def model_size_is_trainable(parts: Parts) -> list[Problem]:
    if not parts.nodes:
        return []
    for node in parts.nodes:
        if node.param_count > MAX_PARAMS:
            return [parts.doc.problem(("layers", node.index),
                                      f"has {node.param_count:,} parameters; rnnc takes at most {MAX_PARAMS:,} per layer")]
    return []


RULES: tuple[Rule, ...] = (
    input_shape_matches_dtype,
    model_size_is_trainable,
    loss_fits_output,
    metrics_fit_loss,
    one_validation_source,
    monitors_exist,
    data_files_exist,
    csv_windows_fit_input,
    csv_targets_fit_output,
    text_fits_embedding,
    streaming_is_possible,
    settings_apply,
    skipped_steps_fit,
    chain_fits_tbptt,
    chain_buckets,
)


def semantic_problems(parts: Parts) -> list[Problem]:
    return [problem for rule in RULES for problem in rule(parts)]
