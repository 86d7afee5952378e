"""What an exported model says about itself: the content of its metadata, for people and for `rnnc.runtime`.

In the core, so that every exporting backend writes the same facts under the same
keys without knowing another backend: the ONNX backend puts them in `metadata_props`
(and seals them with a checksum, the onnx-proto part it keeps), the torch backend in
the `.pt2`'s `rnnc.json`. Human-readable: `input` and `output` say what the tensors
are and mean (`output: y float32 [batch, 1]: probabilities of class 1`).
Machine-readable, so the runtime needs no onnx import to use a model well:
`timesteps`, `features`, `vocab_size`, `lengths` (how the runtime fills lengths the
caller leaves out: `none`, `full` or `ids`), `streaming`, `states` (JSON), `classes`
(JSON, when the data named them) and, for a model trained on raw text, `rnnc.vocab`
(the tokenizer and vocabulary as JSON, see `rnnc.text`). Also the rnnc version, the
spec's name and hash, and the opset. The streaming state's names (`state_names`) are
part of the exported interface, so they are declared here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from rnnc import ir
from rnnc.errors import UsageError
from rnnc.text import METADATA_KEY as VOCAB_KEY
from rnnc.text import Vocab


def model_metadata(model: ir.Model, classes: Sequence[str] | Mapping[str, Sequence[str]] | None,
                   vocab: Vocab | None = None) -> dict[str, str]:
    """Every metadata key of `model`'s export, as strings; a `UsageError` when `classes`
    do not fit the model's output. A graph's (spec version 2): `graph_metadata`."""
    from rnnc import __version__

    if model.graph is not None:
        return graph_metadata(model, classes, vocab)
    if isinstance(classes, Mapping):
        raise UsageError("class names by output name are for graphs (spec version 2); this model has one output: give a list")
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


def lengths_rules(model: ir.Model) -> dict[str, str]:
    """For each input of a graph that takes lengths (`<input>.lengths`), how the runtime
    fills them when the caller leaves them out: `full` (every step real) or `ids` (after
    the last non-zero id, for an input a `mask_zero` embedding reads)."""
    rules = {inp.name: "full" for inp in model.inputs if inp.variable_length}
    sequences = {inp.name for inp in model.inputs if inp.sequence}
    for node in model.nodes:  # an embedding of one id per sample has no steps to mask
        if isinstance(node.layer, ir.Embedding) and node.layer.mask_zero and node.sources and node.sources[0] in sequences:
            rules[node.sources[0]] = "ids"
    return {inp.name: rules[inp.name] for inp in model.inputs if inp.name in rules}


def graph_interface(model: ir.Model, classes: dict[str, Sequence[str]] | None = None) -> dict[str, object]:
    """The `graph` metadata entry of a v2 model (JSON): each input with its dtype, shape
    as the spec writes it (null: variable), lengths rule and vocabulary size; each output
    with its shape, meaning, loss, class names and, for a per-step output, `lengths`: the
    input whose lengths it follows (`lengths_sources`). The ONNX graph's inputs are the
    inputs' names and `<input>.lengths`; its outputs, the outputs' names."""
    rules = lengths_rules(model)
    vocab = {n.sources[0]: n.layer.vocab_size for n in model.nodes if isinstance(n.layer, ir.Embedding) and n.sources}
    by_index = {n.index: n for n in model.nodes}
    lengths_of = lengths_sources(model)
    inputs = [
        {"name": inp.name, "dtype": inp.dtype, "shape": list(inp.shape), "sequence": inp.sequence,
         "lengths": rules.get(inp.name, "none"), **({"vocab_size": vocab[inp.name]} if inp.name in vocab else {})}
        for inp in model.inputs
    ]
    outputs = []
    for out in model.outputs:
        node = by_index[out.node]
        shape = ["batch", *("time" if d == ir.TIME else d for d in node.output_shape[1:])]
        entry: dict[str, object] = {"name": out.name, "shape": shape, "loss": out.loss.type,
                                    "meaning": _meaning(out.loss.type, _graph_activation(model, node), node.output_shape)}
        if classes and out.name in classes:
            entry["classes"] = list(classes[out.name])
        if out.feedback is not None:
            entry["feedback"] = {k: v for k, v in vars(out.feedback).items() if v is not None}
        if len(shape) == 3 and (follows := lengths_of.get(node.key)):
            entry["lengths"] = follows
        outputs.append(entry)
    return {"inputs": inputs, "outputs": outputs}


def lengths_sources(model: ir.Model) -> dict[str, str]:
    """For each sequence value (by key) whose real steps are an input's lengths, that
    input's name: a per-step output is real up to them and zero after. The lengths flow
    as in the graph's inference (`rnnc.graph`); a convolution that changes the number of
    steps maps them to its own, which no input holds, so its values are not listed."""
    rules = lengths_rules(model)
    variable = {inp.name: inp.name for inp in model.inputs if inp.variable_length}
    found: dict[str, str] = dict(variable)
    for node in model.nodes:
        if len(node.output_shape) != 3:
            continue
        main = node.sources[0] if node.sources else ""
        match node.layer:
            case ir.Embedding(mask_zero=True) if rules.get(main) == "ids":
                follows = main
            case ir.Conv1D(padding=padding, stride=stride) if padding != "same" or stride != 1:
                follows = None
            case ir.RepeatVector(like=like):
                follows = found.get(like) if like else None
            case ir.Attention():
                follows = found.get(node.sources[1])
            case _:
                follows = found.get(main)
        if follows:
            found[node.key] = follows
    return {key: name for key, name in found.items() if key not in variable}


def graph_metadata(model: ir.Model, classes: Sequence[str] | Mapping[str, Sequence[str]] | None,
                   vocab: Vocab | None = None) -> dict[str, str]:
    """The metadata of a graph's export: v1's keys that describe any model (versions,
    spec name and hash, opset, streaming and its `states`, description, vocabulary),
    `input` and `output` as text for people, `spec_version` "2", and `graph`, the
    interface as JSON (`graph_interface`). `classes` names each classifying output's
    classes (output name -> names); a plain list is the only output's."""
    from rnnc import __version__

    checked = graph_classes(model, classes)
    interface = graph_interface(model, checked)
    inputs, outputs = interface["inputs"], interface["outputs"]
    assert isinstance(inputs, list) and isinstance(outputs, list)
    props = {
        "rnnc_version": __version__,
        "spec_name": model.name,
        "spec_hash": model.spec_hash,
        "spec_version": "2",
        "input": "; ".join(_graph_input_text(entry) for entry in inputs),
        "output": "; ".join(f"{o['name']} float32 {_dims(o['shape'])}: {o['meaning']}" for o in outputs),
        "streaming": "true" if model.export.streaming else "false",
        "opset": str(model.export.opset),
        "graph": json.dumps(interface),
    }
    if model.export.streaming:
        props["input"] += "; state.<layer>.<h|c|last> float32 [batch, size]: state carried between chunks"
        props["states"] = json.dumps([{"name": name, "size": state_size(node)} for node in model.nodes for name in state_names(node)])
    if model.description:
        props["description"] = model.description
    if vocab is not None:
        props[VOCAB_KEY] = vocab.to_json()
    return props


def graph_classes(model: ir.Model, classes: Sequence[str] | Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    """`classes` as output name -> names, each checked against its output (a
    `UsageError` naming the output when they do not fit)."""
    if classes is None:
        return {}
    if not isinstance(classes, Mapping):
        if len(model.outputs) != 1:
            names = ", ".join(o.name for o in model.outputs)
            raise UsageError(f"the model has {len(model.outputs)} outputs ({names}): give class names for each output by name")
        classes = {model.outputs[0].name: classes}
    by_name = {o.name: o for o in model.outputs}
    unknown = sorted(set(classes) - set(by_name))
    if unknown:
        raise UsageError(f"class names given for {', '.join(unknown)}, which is not an output; outputs: {', '.join(by_name)}")
    by_index = {n.index: n for n in model.nodes}
    checked = {}
    for name, names in classes.items():
        out = by_name[name]
        checked[name] = _classes_of(out.loss, by_index[out.node].output_shape[-1], names, f"output {name}: ")
    return checked


def _graph_input_text(entry: dict[str, object]) -> str:
    name, dtype, shape = entry["name"], entry["dtype"], entry["shape"]
    assert isinstance(shape, list)
    if not entry["sequence"]:
        text = f"{name} int64 [batch]: one id per sample" if dtype == "int64" else f"{name} float32 [batch, {shape[-1]}]"
    else:
        text = f"{name} int64 [batch, time]: token ids" if dtype == "int64" else f"{name} float32 [batch, time, {shape[-1]}]"
    if entry["lengths"] != "none":
        text += f"; {name}.lengths int64 [batch]: real steps of each sequence, padding at the end"
    return text


def _graph_activation(model: ir.Model, node: ir.Node) -> str:
    by_key = {n.key: n for n in model.nodes}
    while isinstance(node.layer, ir.Dropout) and node.sources and node.sources[0] in by_key:
        node = by_key[node.sources[0]]
    return getattr(node.layer, "activation", None) or "linear"


def _meaning(loss: str, act: str, shape: ir.Shape) -> str:
    units = shape[-1]
    match loss:
        case "binary_crossentropy":
            kind = {"sigmoid": "probabilities", "log_softmax": "log-probabilities"}.get(act, "logits")
            meaning = f"{kind} of class 1" if units == 1 else f"{kind} of each label"
        case "categorical_crossentropy" | "sparse_categorical_crossentropy":
            kind = {"softmax": "probabilities", "log_softmax": "log-probabilities", "sigmoid": "probabilities"}.get(act, "logits")
            meaning = f"class {kind}"
        case _:
            meaning = "values"
    return f"per-step {meaning}, zero past each sequence's length" if len(shape) == 3 else meaning


def state_names(node: ir.Node) -> tuple[str, ...]:
    """The state a streaming graph carries between chunks for `node`: `h` (and `c` for
    LSTM) of a recurrent layer, the last real step's value for pool `last`."""
    match node.layer:
        case ir.LSTM():
            return (f"state.{node.index}.h", f"state.{node.index}.c")
        case ir.SimpleRNN() | ir.GRU():
            return (f"state.{node.index}.h",)
        case ir.Pool(mode="last"):
            return (f"state.{node.index}.last",)
        case _:
            return ()


def state_size(node: ir.Node) -> int:
    """The feature size of each of `node`'s state tensors (`[batch, size]`)."""
    if isinstance(node.layer, ir.Recurrent):
        return node.layer.units
    size = node.input_shape[-1]
    assert isinstance(size, int)
    return size


def final_activation(model: ir.Model) -> str:
    """The activation the model's output comes out of (dropout looks through)."""
    return ir.output_activation(model.nodes)[0] or "linear"


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


def _checked_classes(model: ir.Model, classes: Sequence[str]) -> list[str]:
    return _classes_of(model.loss, model.output_shape[-1], classes)


def _classes_of(loss: ir.Loss, units: ir.Dim, classes: Sequence[str], where: str = "") -> list[str]:
    names = [str(c) for c in classes]
    if not loss.is_classification:
        raise UsageError(f"{where}class names given for a model with loss {loss.type}, which has no classes")
    wanted = 2 if loss.type == "binary_crossentropy" and units == 1 else units
    if len(names) != wanted:
        raise UsageError(f"{where}{len(names)} class names given, the model's output has {wanted} classes")
    return names
