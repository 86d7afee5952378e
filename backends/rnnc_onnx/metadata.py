"""The `metadata_props` an exported model carries, for people and for `rnnc.runtime`.

Human-readable: `input` and `output` say what the tensors are and mean (`output: y
float32 [batch, 1]: probabilities of class 1`). Machine-readable, so the runtime needs
no onnx import to use a model well: `timesteps`, `features`, `vocab_size`, `lengths`
(how the runtime fills lengths the caller leaves out: `none`, `full` or `ids`),
`streaming`, `states` (JSON), `classes` (JSON, when the data named them) and, for a
model trained on raw text, `rnnc.vocab` (the tokenizer and vocabulary as JSON, see
`rnnc.text`). Also the
rnnc version, the spec's name and hash, and the opset.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import onnx

from rnnc import ir
from rnnc.errors import UsageError
from rnnc.text import METADATA_KEY as VOCAB_KEY
from rnnc.text import Vocab

from .flow import state_names, state_size


def model_metadata(model: ir.Model, classes: Sequence[str] | None, vocab: Vocab | None = None) -> dict[str, str]:
    from rnnc import __version__

    spec = model.input
    props = {
        "rnnc_version": __version__,
        "spec_name": model.name,
        "spec_hash": model.spec_hash,
        "input": _input_text(model),
        "output": f"y float32 {_dims(model.output_shape)}: {output_meaning(model)}",
        "timesteps": "variable" if spec.shape[0] is None else str(spec.shape[0]),
        "lengths": _lengths_rule(model),
        "streaming": "true" if model.export.streaming else "false",
        "opset": str(model.export.opset),
    }
    if spec.dtype == "int64":
        first = model.nodes[0].layer
        assert isinstance(first, ir.Embedding)
        props["vocab_size"] = str(first.vocab_size)
    else:
        props["features"] = str(spec.shape[-1])
    if model.description:
        props["description"] = model.description
    if model.export.streaming:
        states = [{"name": name, "size": state_size(node)} for node in model.nodes for name in state_names(node)]
        props["states"] = json.dumps(states)
    if classes is not None:
        props["classes"] = json.dumps(_checked_classes(model, classes))
    if vocab is not None:
        props[VOCAB_KEY] = vocab.to_json()
    return props


def sealed(proto: onnx.ModelProto) -> onnx.ModelProto:
    """`proto` with its checksum (`rnnc.artifacts.model_sha256`) in the metadata, as the
    last step before it is written: `rnnc.artifacts.check_model_checksum` then refuses a
    damaged copy instead of running other weights."""
    from rnnc.artifacts import CHECKSUM_KEY, model_sha256

    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != CHECKSUM_KEY]
    del proto.metadata_props[:]
    for key, value in kept:
        proto.metadata_props.add(key=key, value=value)
    proto.metadata_props.add(key=CHECKSUM_KEY, value=model_sha256(proto.SerializeToString()))
    return proto


def _dims(shape: ir.Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _input_text(model: ir.Model) -> str:
    spec = model.input
    if spec.dtype == "int64":
        text = "x int64 [batch, time]: token ids"
    else:
        text = f"x float32 [batch, time, {spec.shape[-1]}]"
    if model.variable_length:
        text += "; lengths int64 [batch]: real steps of each sequence, padding at the end"
    if model.export.streaming:
        text += "; state.<layer>.<h|c|last> float32 [batch, size]: state carried between chunks"
    return text


def _lengths_rule(model: ir.Model) -> str:
    if not model.variable_length:
        return "none"
    first = model.nodes[0].layer if model.nodes else None
    return "ids" if isinstance(first, ir.Embedding) and first.mask_zero else "full"


def final_activation(model: ir.Model) -> str:
    """The activation the model's output comes out of (dropout looks through)."""
    return ir.output_activation(model.nodes)[0] or "linear"
    return "linear"


def output_meaning(model: ir.Model) -> str:
    """What `y` means, from the loss and the final activation."""
    act = final_activation(model)
    units = model.output_shape[-1]
    match model.loss.type:
        case "binary_crossentropy":
            kind = {"sigmoid": "probabilities", "log_softmax": "log-probabilities"}.get(act, "logits")
            meaning = f"{kind} of class 1" if units == 1 else f"{kind} of each label"
        case "categorical_crossentropy" | "sparse_categorical_crossentropy":
            kind = {"softmax": "probabilities", "log_softmax": "log-probabilities", "sigmoid": "probabilities"}.get(act, "logits")
            meaning = f"class {kind}"
        case _:
            meaning = "values"
    if model.sequence_output:
        meaning = f"per-step {meaning}"
        if model.variable_length:
            meaning += ", zero past each sequence's length"
    return meaning


def _checked_classes(model: ir.Model, classes: Sequence[str]) -> list[str]:
    names = [str(c) for c in classes]
    units = model.output_shape[-1]
    if not model.loss.is_classification:
        raise UsageError(f"class names given for a model with loss {model.loss.type}, which has no classes")
    wanted = 2 if model.loss.type == "binary_crossentropy" and units == 1 else units
    if len(names) != wanted:
        raise UsageError(f"{len(names)} class names given, the model's output has {wanted} classes")
    return names
