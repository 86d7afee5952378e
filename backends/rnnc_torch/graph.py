"""A graph (spec version 2) as one `nn.Module`: `GraphModule`, what `build_module` returns for it.

Each node is lowered alone (`layers.lower([node])`: no fusion in a graph) and the
nodes run in the spec's order over an environment that maps each key (an input's
name, a node's `key`) to its tensor and lengths. Lengths follow `rnnc.graph`'s rules:
an input in `rnnc.metadata.lengths_rules` takes the caller's lengths, or, when the
caller gives none, those after its last non-zero id (`ids`) or none (`full`); each
block then says what its output carries (`graph_blocks`). A recurrent node whose final
state another node starts from, or which starts from one (`state_from`), runs with
`RecurrentBlock.forward_state`: the state at each sequence's last real step (a
sequence of length 0 hands on its initial state: zeros, or the one it was given).

`forward(inputs, lengths)` returns each output (spec order, keyed by name), sequence
outputs zeroed past their lengths as in v1. `logits=True` skips each output's final
sigmoid or softmax (through trailing dropout), as `model.final_activation_of` does for
a chain; a node whose activated value other layers also read still gives them that.
Parameters are read and written under the IR's names, normalization's statistics
among them (as parameters that need no gradient); drawn by the spec's `initializer`, so a seeded
`torch.manual_seed` before building gives the same module every time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from rnnc import ir
from rnnc.artifacts import check_weights
from rnnc.errors import DataError
from rnnc.metadata import lengths_rules

from .block import initialise, lengths_from_ids, zero_padding
from .layers import lower
from .keras_cells import KerasCellBlock
from .recurrent import RecurrentBlock, State

LOGIT_ACTIVATIONS = ("sigmoid", "softmax")  # what logits=True skips (SpecModule's too)
Value = tuple[Tensor, Tensor | None]


def _extremes(values: Tensor) -> tuple[int, int]:
    """(min, max) of an integer tensor with one device sync; (0, 0) when empty."""
    if not values.numel():
        return 0, 0
    low, high = torch.aminmax(values)
    return tuple(torch.stack([low, high]).tolist())  # type: ignore[return-value]


def logit_paths(model: ir.Model) -> tuple[dict[str, str | None], dict[str, set[int]]]:
    """Per output: the sigmoid or softmax it comes out of (None: none), and the nodes
    `logits=True` computes on logits for it: the node applying the activation and the
    dropout layers between it and the output (`ir.output_activation` on that chain)."""
    by_key = {n.key: n for n in model.nodes}
    by_index = {n.index: n for n in model.nodes}
    activations: dict[str, str | None] = {}
    paths: dict[str, set[int]] = {}
    for out in model.outputs:
        chain = [by_index[out.node]]
        while isinstance(chain[0].layer, ir.Dropout) and chain[0].sources and chain[0].sources[0] in by_key:
            chain.insert(0, by_key[chain[0].sources[0]])
        activation, _ = ir.output_activation(chain)
        logit = activation in LOGIT_ACTIVATIONS
        activations[out.name] = activation if logit else None
        paths[out.name] = {n.index for n in chain} if logit else set()
    return activations, paths


class GraphModule(nn.Module):
    """A spec version 2 model; see the module docstring. `final_activations` names, per
    output, the activation `forward(..., logits=True)` leaves out (or None)."""

    def __init__(self, model: ir.Model):
        super().__init__()
        assert model.graph is not None, "a v1 chain is a SpecModule"
        self.model = model
        self.blocks = nn.ModuleList(lower([node], model.training.kernels) for node in model.nodes)
        # the inputs that take lengths (a sequence's only: one id per sample has no steps)
        sequences = {inp.name for inp in model.inputs if inp.sequence}
        self.rules = {name: rule for name, rule in lengths_rules(model).items() if name in sequences}
        # recurrent nodes that hand their final state on, or start from another's
        self._stateful = {n.state_from for n in model.nodes if n.state_from} | {
            n.key for n in model.nodes if n.state_from}
        self.final_activations, self._paths = logit_paths(model)
        on_path = set().union(*self._paths.values()) if self._paths else set()
        self._activated_needed = self._readers_off_path(on_path)
        self._on_path = on_path
        # the smallest vocabulary of the embeddings reading each id input bounds its ids
        self._vocab: dict[str, int] = {}
        for node in model.nodes:
            if isinstance(node.layer, ir.Embedding):
                name = node.sources[0]
                self._vocab[name] = min(self._vocab.get(name, node.layer.vocab_size), node.layer.vocab_size)
        names, expected = sorted(self.ir_parameters()), sorted(p.name for p in model.params)
        assert names == expected, f"lowering names {names}, the IR {expected}"
        initialise(self.blocks, model)  # type: ignore[arg-type]

    def _readers_off_path(self, on_path: set[int]) -> set[int]:
        """The nodes on a logit path whose activated value is read as well: by a node
        off every path, or by an output that is not computed on logits."""
        index_of = {n.key: n.index for n in self.model.nodes}
        needed: set[int] = set()
        for node in reversed(self.model.nodes):  # readers come after what they read
            for key in (*node.sources, node.state_from):
                source = index_of.get(key)
                if source in on_path and (node.index not in on_path or node.index in needed):
                    needed.add(source)  # type: ignore[arg-type]
        return needed

    # --- running ---------------------------------------------------------------------

    def forward(self, inputs: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None,
                *, logits: bool = False, trusted: bool = False, state: dict[str, State] | None = None
                ) -> dict[str, Tensor] | tuple[dict[str, Tensor], dict[str, State]]:
        """Each output by name, in spec order. `trusted=True` skips the input checks (for
        the trainer's tensors, which passed `rnnc.data`'s), since each costs a device sync.
        With `state` (a dict, empty for zeros) every recurrent node starts from it and the
        call returns `(outputs, final state)`, keyed by node: a chunk of longer sequences
        handing on to the next (`training.tbptt`)."""
        final: dict[str, State] | None = None if state is None else {}
        outputs = self.forward_with_lengths(inputs, lengths, logits=logits, trusted=trusted, carry=(state, final))[0]
        return outputs if final is None else (outputs, final)

    def forward_with_lengths(self, inputs: Mapping[str, Tensor], lengths: Mapping[str, Tensor] | None = None,
                             *, logits: bool = False, trusted: bool = False,
                             carry: tuple[dict[str, State] | None, dict[str, State] | None] = (None, None)
                             ) -> tuple[dict[str, Tensor], dict[str, Tensor | None]]:
        """`forward`, and each output's lengths (None: no time axis, or every step real).
        `carry` is (the state each recurrent node starts from, a dict its final one goes to)."""
        given = {k: v for k, v in (lengths or {}).items() if v is not None}
        if not trusted:
            inputs, given = self._checked(inputs, given)
        env: dict[str, Value] = {}
        for inp in self.model.inputs:
            x = inputs[inp.name]
            seq_lengths = given.get(inp.name)
            if seq_lengths is None and inp.variable_length and self.rules.get(inp.name) == "ids":
                # one lengths for every reader of the input (a fixed-length input's
                # mask_zero embedding derives its own, as in v1)
                seq_lengths = lengths_from_ids(x)
            env[inp.name] = (x, seq_lengths)
        logit_env: dict[str, Value] = {}  # on-logits values of the nodes on logit paths
        states: dict[str, State] = {}
        for node, block in zip(self.model.nodes, self.blocks):
            if logits and node.index in self._on_path:
                self._run_on_logits(node, block, env, logit_env)
            elif carry[1] is not None and isinstance(block, RecurrentBlock | KerasCellBlock):
                x, x_lengths = env[node.sources[0]]
                y, y_lengths, carry[1][node.key] = block.forward_state(x, x_lengths, (carry[0] or {}).get(node.key))
                env[node.key] = (y, y_lengths)
            else:
                env[node.key] = self._run(node, block, env, states)
        outputs: dict[str, Tensor] = {}
        out_lengths: dict[str, Tensor | None] = {}
        by_index = {n.index: n for n in self.model.nodes}
        for out in self.model.outputs:
            key = by_index[out.node].key
            y, y_lengths = logit_env[key] if logits and self.final_activations[out.name] else env[key]
            if y_lengths is not None and y.dim() == 3:
                y = zero_padding(y, y_lengths)
            outputs[out.name], out_lengths[out.name] = y, (y_lengths if y.dim() == 3 else None)
        return outputs, out_lengths

    def _run(self, node: ir.Node, block: nn.Module, env: dict[str, Value], states: dict[str, State]) -> Value:
        x, x_lengths = env[node.sources[0]]
        if node.key in self._stateful:
            assert isinstance(block, RecurrentBlock | KerasCellBlock)
            initial = states.get(node.state_from) if node.state_from else None
            y, y_lengths, states[node.key] = block.forward_state(x, x_lengths, initial)
            return y, y_lengths
        return block(x, x_lengths, *(env[key] for key in node.sources[1:]))

    def _run_on_logits(self, node: ir.Node, block: nn.Module, env: dict[str, Value], logit_env: dict[str, Value]) -> None:
        """A node on a logit path: its value on logits, and its activated value where
        others read it (the activation applied to the same logits)."""
        if isinstance(node.layer, ir.Dropout):
            z, z_lengths = logit_env[node.sources[0]]
            logit_env[node.key] = block(z, z_lengths)
            if node.index in self._activated_needed:
                env[node.key] = block(*env[node.sources[0]])
            return
        x, x_lengths = env[node.sources[0]]
        z, z_lengths = block(x, x_lengths, logits=True)
        logit_env[node.key] = (z, z_lengths)
        if node.index in self._activated_needed:
            env[node.key] = (block.activation(z), z_lengths)

    # --- checking the caller's tensors ---------------------------------------------------

    def _checked(self, inputs: Mapping[str, Tensor], lengths: dict[str, Tensor]
                 ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The inputs and lengths as the blocks want them, or a DataError with one line
        per problem."""
        name = self.model.name
        known = [inp.name for inp in self.model.inputs]
        problems = [f"model {name!r} has no input {k!r}; its inputs: {', '.join(known)}" for k in inputs if k not in known]
        problems += [f"model {name!r} needs input {k!r}" for k in known if k not in inputs]
        problems += [
            f"lengths given for {k!r}, which takes none; inputs with lengths: {', '.join(self.rules) or 'none'}"
            for k in lengths if k not in self.rules
        ]
        if problems:
            raise DataError("\n".join(problems))
        checked: dict[str, Tensor] = {}
        for inp in self.model.inputs:
            x, problem = self._checked_input(inp, inputs[inp.name])
            if problem:
                problems.append(problem)
            checked[inp.name] = x
        if not problems:
            batches = {k: x.shape[0] for k, x in checked.items()}
            if len(set(batches.values())) > 1:
                problems.append("inputs must share their batch size, got " + ", ".join(f"{k} {b}" for k, b in batches.items()))
        if problems:
            raise DataError("\n".join(problems))
        out_lengths: dict[str, Tensor] = {}
        for key, value in lengths.items():
            x = checked[key]
            if value.shape != (x.shape[0],) or value.dtype.is_floating_point or value.dtype == torch.bool:
                problems.append(f"lengths of {key!r} must be integers of shape [{x.shape[0]}], got {value.dtype} {list(value.shape)}")
                continue
            value = value.to(device=x.device, dtype=torch.long)
            low, high = _extremes(value)
            if low < 0 or high > x.shape[1]:
                problems.append(f"lengths of {key!r} must lie in [0, {x.shape[1]}] (its timesteps), got {low} to {high}")
            out_lengths[key] = value
        if problems:
            raise DataError("\n".join(problems))
        return checked, out_lengths

    def _checked_input(self, inp: ir.Input, x: Tensor) -> tuple[Tensor, str]:
        """One input as the blocks want it, and the problem with it ("" for none)."""
        ids = inp.dtype == "int64"
        features = None if ids else inp.shape[-1]
        want = "[" + ", ".join(["batch", *(["time"] if inp.sequence else []), *([str(features)] if features else [])]) + "]"
        rank = 1 + int(inp.sequence) + int(not ids)
        if not isinstance(x, Tensor):
            return x, f"input {inp.name!r} must be a tensor, got {type(x).__name__}"
        if x.dim() != rank or (features is not None and x.shape[-1] != features):
            return x, f"input {inp.name!r} must be {want}, got {list(x.shape)}"
        if not ids:
            return (x if x.dtype == torch.float32 else x.float()), ""
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            return x, f"input {inp.name!r} must hold integer token ids, got {x.dtype}"
        x = x.long()
        vocab = self._vocab.get(inp.name)
        if vocab is not None:
            low, high = _extremes(x)
            if low < 0 or high >= vocab:
                return x, f"token ids of {inp.name!r} must lie in [0, {vocab - 1}] (vocab_size {vocab}), got ids from {low} to {high}"
        return x, ""

    # --- parameters ------------------------------------------------------------------

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        """The live parameters under their IR names (`layers.<i>.<param>`), normalization's
        mean and variance included; looked up afresh, since `.to(device)` may replace them."""
        return {name: p for block in self.blocks for name, p in block.ir_parameters().items()}  # type: ignore[operator]

    def ir_state(self) -> dict[str, np.ndarray]:
        """A float32 copy of every parameter under its IR name, in the IR's order."""
        params = self.ir_parameters()
        return {p.name: params[p.name].detach().cpu().numpy().astype(np.float32, copy=True) for p in self.model.params}

    def load_ir_state(self, weights: Mapping[str, np.ndarray], origin: str = "weights") -> None:
        """Copy `weights` (IR names, PyTorch layout) into the parameters; raises
        `ArtifactError` naming `origin` when a name or shape does not fit the spec."""
        check_weights(weights, self.model, origin)
        with torch.no_grad():
            for name, param in self.ir_parameters().items():
                param.copy_(torch.from_numpy(np.ascontiguousarray(weights[name], dtype=np.float32)))

    def extra_repr(self) -> str:
        return f"name={self.model.name!r}, final_activations={self.final_activations!r}"
