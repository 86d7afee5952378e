"""How a generative graph (an output with `feedback:`) splits for decoding, one step at a time.

The output O predicts the next step of its feedback input I. Decoding never has I
whole: it feeds each prediction back, so the graph splits in two. The decoder nodes
are those O reads (through `sources` and `state_from`) whose value depends on I; they
run step by step, each recurrent one carrying its state (`state.<index>.h`, `.c`, as
the streaming graph names them). The encoder nodes are the other nodes O reads; they
run once per question. The boundary is what the decoder reads of the encoder side
(node keys or input names: attention's value, repeat_vector's vector), and the
started states are those of decoder layers whose `initial_state` is an encoder
layer's final state. Nodes that O does not read play no part in decoding.

`decoding_issues` says which decoder nodes cannot run one step at a time (they need
steps not decoded yet); `rnnc check` reports them through `rnnc.graph_rules`. This
module is the core's: no torch, no onnx; backends export the split it describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import ir
from .errors import Problem, format_path
from .metadata import state_names

# (where: a JSON path into the spec, message)
Issue = tuple[tuple[str | int, ...], str]


@dataclass(frozen=True)
class DecodingPlan:
    """The split of a generative graph: what runs once (encoder) and what runs per step (decoder)."""

    output: str  # O, the output fed back
    input: str  # I, its feedback input (int64 [T])
    start: int | None
    end: int | None
    max_length: int | None
    decoder: tuple[str, ...]  # node keys, in spec order
    encoder: tuple[str, ...]  # node keys, in spec order
    boundary: tuple[str, ...]  # encoder-side keys (nodes or inputs) that decoder nodes read
    started: tuple[str, ...]  # state names the encoder hands to the decoder
    states: tuple[tuple[str, tuple[str, ...]], ...]  # (decoder recurrent node key, its state names)

    @property
    def state_names(self) -> tuple[str, ...]:
        """Every state the step graph takes (and returns as `<name>.next`), in node order."""
        return tuple(name for _, names in self.states for name in names)

    @property
    def has_encoder(self) -> bool:
        """Whether anything comes from the encoder side (then an encoder graph runs first)."""
        return bool(self.boundary or self.started)


def feedback_outputs(outputs: Sequence[ir.Output]) -> list[ir.Output]:
    return [out for out in outputs if out.feedback is not None]


def decoding_plan(model: ir.Model) -> DecodingPlan | None:
    """The split of `model` for decoding its (first) feedback output; None without one."""
    outs = feedback_outputs(model.outputs)
    if not outs:
        return None
    return plan_of(model.nodes, outs[0])


def plan_of(nodes: Sequence[ir.Node], out: ir.Output) -> DecodingPlan:
    """The split of `nodes` (a graph's, in spec order) for decoding `out`."""
    fb = out.feedback
    assert fb is not None
    by_key = {n.key: n for n in nodes}
    needed = _ancestors(nodes, out.node)
    depends = _depends_on(nodes, fb.input)
    decoder = [n for n in nodes if n.key in needed and depends[n.key]]
    encoder = tuple(n.key for n in nodes if n.key in needed and not depends[n.key])
    boundary: list[str] = []
    for node in decoder:
        for source in node.sources:
            if source != fb.input and not depends.get(source, False) and source not in boundary:
                boundary.append(source)
    started = tuple(name for n in decoder if n.state_from in by_key and not depends[n.state_from]
                    for name in state_names(n))
    states = tuple((n.key, state_names(n)) for n in decoder if isinstance(n.layer, ir.Recurrent))
    return DecodingPlan(out.name, fb.input, fb.start, fb.end, fb.max_length, tuple(n.key for n in decoder), encoder,
                        tuple(boundary), started, states)


def decoding_problems(model: ir.Model) -> list[Problem]:
    """Why `model` cannot be decoded one step at a time (`decoding_issues`), as problems
    without a position (an IR built without a spec; `rnnc check` positions them)."""
    origin = model.name or "<spec>"
    return [Problem(origin, None, None, format_path(path), message, path)
            for path, message in decoding_issues(model.nodes, model.outputs)]


def decoding_issues(nodes: Sequence[ir.Node], outputs: Sequence[ir.Output]) -> list[Issue]:
    """Why the feedback output of `outputs` cannot be decoded one step at a time: each
    decoder node that needs steps not decoded yet, and a second feedback output."""
    outs = feedback_outputs(outputs)
    if not outs:
        return []
    issues: list[Issue] = [
        (("outputs", other.name, "feedback"),
         f"decoding feeds back one output, '{outs[0].name}'; '{other.name}' would need a decoding loop of its own: "
         "remove its feedback")
        for other in outs[1:]
    ]
    plan = plan_of(nodes, outs[0])
    by_key = {n.key: n for n in nodes}
    decoder = set(plan.decoder)
    feeds = f"decoding feeds '{plan.output}' back into '{plan.input}' one step at a time, so"
    for key in plan.decoder:
        node = by_key[key]
        if why := _one_step_problem(node, decoder):
            where = ("layers", node.index, "initial_state") if why.startswith("it cannot start") else ("layers", node.index)
            issues.append((where, f"{feeds} {why}"))
    return issues


def _one_step_problem(node: ir.Node, decoder: set[str]) -> str:
    """Why decoder node `node` cannot run one step at a time, or ""."""
    layer = node.layer
    later = "reads the steps after each one, which are not decoded yet"
    match layer:
        case ir.Recurrent() if layer.bidirectional:
            return f"{_shown(node)} cannot be bidirectional: its backward direction {later}"
        case ir.Pool():
            return f"{_shown(node)} cannot pool over the steps (mode {layer.mode}): that {later}"
        case ir.Conv1D() if layer.kernel_size > 1 or layer.stride > 1:
            return f"{_shown(node)} must have kernel_size 1 and stride 1: a wider convolution {later}"
        case ir.Attention() if node.sources[0] in decoder:
            return (f"{_shown(node)} cannot attend over '{node.sources[0]}', which is decoded step by step too: every "
                    "step would read all of its steps, and those after it are not decoded yet")
    if node.state_from in decoder:
        return (f"it cannot start from the final state of '{node.state_from}', which is known only after the last "
                "step: start it from a layer that does not read the fed-back input")
    if len(node.output_shape) != 3:
        keep = " (set return_sequences: true)" if isinstance(layer, ir.Recurrent) else ""
        return f"{_shown(node)} cannot sum the steps up into one vector: that {later}{keep}"
    return ""


def _shown(node: ir.Node) -> str:
    return f"'{node.name}'" if node.name else node.key


def _ancestors(nodes: Sequence[ir.Node], index: int) -> set[str]:
    """The keys of node `index` and of every node it reads, directly or not."""
    by_key = {n.key: n for n in nodes}
    start = next((n for n in nodes if n.index == index), None)
    todo = [start.key] if start else []
    seen: set[str] = set()
    while todo:
        key = todo.pop()
        if key in seen or key not in by_key:
            continue
        seen.add(key)
        node = by_key[key]
        todo += [*node.sources, *([node.state_from] if node.state_from else [])]
    return seen


def _depends_on(nodes: Sequence[ir.Node], input_name: str) -> dict[str, bool]:
    """For each node key, whether its value depends on input `input_name` (nodes read
    only earlier ones, so one pass in spec order suffices)."""
    depends: dict[str, bool] = {input_name: True}
    for node in nodes:
        reads = [*node.sources, *([node.state_from] if node.state_from else [])]
        depends[node.key] = any(depends.get(key, False) for key in reads)
    return depends


def metadata_entry(plan: DecodingPlan, step: str, encoder: str | None) -> dict[str, object]:
    """The `rnnc.decoding` metadata entry (JSON) of each exported file of a generative
    model; `step` and `encoder` are the companions' file names, relative to the model's folder."""
    return {
        "output": plan.output, "input": plan.input, "start": plan.start, "end": plan.end,
        "max_length": plan.max_length, "encoder": encoder, "step": step,
        "states": [[name, f"{name}.next"] for name in plan.state_names],
        "boundary": list(plan.boundary), "started": list(plan.started),
    }


METADATA_KEY = "rnnc.decoding"
