"""The spec's model as one `nn.Module`: `build_module(model) -> SpecModule`.

`SpecModule` lowers the IR nodes in order to blocks (`layers`, `recurrent`), fusing
consecutive compatible recurrent layers unless told not to, and computes the spec's
function: `forward(x, lengths)` returns what the last layer outputs, its activation
applied, with steps past a sequence's length zeroed in sequence outputs; given a
`state`, it also returns the recurrent blocks' final one, for the next chunk of a long
sequence (`training.tbptt`, see `tbptt`). `logits=True`
skips a final sigmoid or softmax so a trainer can use the numerically stable losses on
logits; `final_activation` names what is skipped. Parameters are read and written
under the IR's names (`ir_state`, `load_ir_state`), the form the weights file and the
ONNX backend share. Parameters start by the spec's `initializer` (rnnc.initial), so a seeded
`torch.manual_seed` before `build_module` gives the same model every time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from rnnc import ir
from rnnc.artifacts import check_weights
from rnnc.errors import DataError

from .block import initialise, zero_padding
from .graph import LOGIT_ACTIVATIONS, GraphModule, _extremes
from .layers import lower
from .keras_cells import KerasCellBlock
from .recurrent import RecurrentBlock, State, fusable


def build_module(model: ir.Model, fuse: bool = True) -> SpecModule | GraphModule:
    """The torch module computing `model`'s function; `fuse=False` keeps one torch
    module per recurrent layer (fusion changes speed, never the function). A graph
    (spec version 2) is a `GraphModule`, whose layers are never fused."""
    if model.graph is not None:
        return GraphModule(model)
    return SpecModule(model, fuse=fuse)


def group_nodes(nodes: tuple[ir.Node, ...], fuse: bool) -> list[list[ir.Node]]:
    """The nodes in order, consecutive fusable recurrent layers sharing a group."""
    groups: list[list[ir.Node]] = []
    for node in nodes:
        if fuse and groups and isinstance(groups[-1][0].layer, ir.Recurrent) and fusable(groups[-1], node):
            groups[-1].append(node)
        else:
            groups.append([node])
    return groups


def final_activation_of(model: ir.Model) -> tuple[str | None, int | None]:
    """The sigmoid or softmax the model's output comes out of, which `logits=True`
    skips, and the index of the node applying it; (None, None) when there is none.

    Trailing dropout layers are looked through, as the validator does: it accepts
    `dense sigmoid, dropout` for binary cross-entropy, and dropout on probabilities
    could push them past 1 while training."""
    activation, node = ir.output_activation(model.nodes)
    if activation in LOGIT_ACTIVATIONS and node is not None:
        return activation, node.index
    return None, None


class SpecModule(nn.Module):
    """The spec's model. See the module docstring; `model` is the IR it was built from.

    `final_activation` is "sigmoid", "softmax" or None: the activation that
    `forward(..., logits=True)` leaves out (the output is then its input, the logits,
    passed through any trailing dropout layers).
    """

    def __init__(self, model: ir.Model, fuse: bool = True):
        super().__init__()
        self.model = model
        self.fused = fuse
        groups = group_nodes(model.nodes, fuse)
        self.blocks = nn.ModuleList(lower(group, model.training.kernels) for group in groups)
        self.final_activation, node_index = final_activation_of(model)
        self._logit_block = next((i for i, g in enumerate(groups) if g[0].index == node_index), None)
        names, expected = sorted(self.ir_parameters()), sorted(p.name for p in model.params)
        assert names == expected, f"lowering names {names}, the IR {expected}"
        initialise(self.blocks, model)  # type: ignore[arg-type]

    def forward(self, x: Tensor, lengths: Tensor | None = None, *, logits: bool = False, trusted: bool = False,
                state: dict[int, State] | None = None) -> Tensor | tuple[Tensor, dict[int, State]]:
        """`trusted=True` skips the input checks: for callers whose data already passed
        `rnnc.data`'s (the trainer's tensors: float32 or in-vocabulary int64 ids, int64
        lengths in range, on the module's device), since each check costs a device sync.

        With `state` (a dict, empty for zeros) the recurrent blocks start from it and the
        call returns `(output, final state)`, the state keyed by block: what a chunk of a
        longer sequence hands to the next (`training.tbptt`). A sequence of length 0 in
        the chunk keeps its state."""
        if not trusted:
            x, lengths = self._checked(x, lengths)
        skip = self._logit_block if logits else None
        final: dict[int, State] = {}
        for i, block in enumerate(self.blocks):
            if i == skip:
                x, lengths = block(x, lengths, logits=True)
            elif state is not None and isinstance(block, RecurrentBlock | KerasCellBlock):
                x, lengths, final[i] = block.forward_state(x, lengths, state.get(i))
            else:
                x, lengths = block(x, lengths)
        if lengths is not None and x.dim() == 3:
            x = zero_padding(x, lengths)
        return x if state is None else (x, final)

    def _checked(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The input as the blocks want it, or a DataError saying what does not fit."""
        spec = self.model.input
        want = "[batch, time]" if spec.dtype == "int64" else f"[batch, time, {spec.shape[-1]}]"
        rank = 2 if spec.dtype == "int64" else 3
        if x.dim() != rank or (rank == 3 and x.shape[2] != spec.shape[-1]):
            raise DataError(f"model {self.model.name!r} expects input {want}, got {list(x.shape)}")
        if spec.dtype == "int64":
            if x.dtype.is_floating_point or x.dtype == torch.bool:
                raise DataError(f"model {self.model.name!r} expects integer token ids, got {x.dtype}")
            x = x.long()
            vocab = self._vocab_size()
            if vocab is not None:
                low, high = _extremes(x)
                if low < 0 or high >= vocab:
                    raise DataError(
                        f"token ids must lie in [0, {vocab - 1}] (vocab_size {vocab}), got ids from {low} to {high}"
                    )
        elif x.dtype != torch.float32:
            x = x.float()
        if lengths is None:
            return x, None
        if lengths.shape != (x.shape[0],) or lengths.dtype.is_floating_point:
            raise DataError(f"lengths must be integers of shape [{x.shape[0]}], got {lengths.dtype} {list(lengths.shape)}")
        lengths = lengths.to(device=x.device, dtype=torch.long)
        low, high = _extremes(lengths)
        if low < 0 or high > x.shape[1]:
            raise DataError(f"lengths must lie in [0, {x.shape[1]}] (the batch's timesteps), got {low} to {high}")
        return x, lengths

    def _vocab_size(self) -> int | None:
        layer = self.model.nodes[0].layer if self.model.nodes else None
        return layer.vocab_size if isinstance(layer, ir.Embedding) else None

    def ir_parameters(self) -> dict[str, nn.Parameter]:
        """The live parameters under their IR names (`layers.<i>.<param>`); looked up
        afresh each time, since `.to(device)` may replace parameter objects."""
        return {name: p for block in self.blocks for name, p in block.ir_parameters().items()}  # type: ignore[operator]

    def ir_state(self) -> dict[str, np.ndarray]:
        """A float32 copy of every parameter under its IR name, in the IR's order."""
        params = self.ir_parameters()
        return {
            p.name: params[p.name].detach().cpu().numpy().astype(np.float32, copy=True)
            for p in self.model.params
        }

    def load_ir_state(self, weights: Mapping[str, np.ndarray], origin: str = "weights") -> None:
        """Copy `weights` (IR names, PyTorch layout) into the parameters; raises
        `ArtifactError` naming `origin` when a name or shape does not fit the spec."""
        check_weights(weights, self.model, origin)
        with torch.no_grad():
            for name, param in self.ir_parameters().items():
                value = torch.from_numpy(np.ascontiguousarray(weights[name], dtype=np.float32))
                param.copy_(value)

    def extra_repr(self) -> str:
        return f"name={self.model.name!r}, fused={self.fused}, final_activation={self.final_activation!r}"
