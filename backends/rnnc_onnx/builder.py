"""A small graph builder over `onnx.helper`: fresh names, nodes, weights and constants.

The lowering code asks it for one node at a time (`op`) and gets back the output
names, so each layer's lowering reads like the computation it emits. Weights become
initializers (float32, transformed in numpy at export time, so nothing is left to fold
at run time); small integer constants are shared between the nodes that use them.
`step_mask` and `lengths_i32` cache what several layers derive from one lengths tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class GraphBuilder:
    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._taken: set[str] = set()
        self._reserved: set[str] = set()  # names kept for the graph's outputs, claimed once
        self._constants: dict[tuple[Any, ...], str] = {}
        self._cache: dict[tuple[Any, ...], str] = {}

    # --- names, nodes, tensors ------------------------------------------------------

    def fresh(self, hint: str) -> str:
        name, n = hint, 1
        while name in self._taken:
            n += 1
            name = f"{hint}_{n}"
        self._taken.add(name)
        return name

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        hint: str,
        outputs: int | Sequence[str] = 1,
        names: Sequence[str] | None = None,
        **attrs: Any,
    ) -> Any:
        """Append one node and return its output name, or a list of names when
        `outputs` is a count > 1 or a list of hints ("" leaves an optional output
        out). `names` gives exact output names instead (the graph's own outputs)."""
        if names is not None:
            out = [self._claim(name) for name in names]
        elif isinstance(outputs, int):
            out = [self.fresh(f"{hint}.{i}" if outputs > 1 else hint) for i in range(outputs)]
        else:
            out = [name and self.fresh(name) for name in outputs]
        self.nodes.append(helper.make_node(op_type, list(inputs), out, name=self.fresh(f"{op_type}:{hint}"), **attrs))
        single = names is None and isinstance(outputs, int) and outputs == 1
        return out[0] if single else out

    def reserve(self, names: Sequence[str]) -> None:
        """Keep `names` from `fresh` (a graph's output names, known before the nodes
        that make them); each may then be claimed once, by `op(names=...)`."""
        for name in names:
            self._claim(name)
            self._reserved.add(name)

    def _claim(self, name: str) -> str:
        if name in self._reserved:
            self._reserved.discard(name)
            return name
        if name in self._taken:
            raise AssertionError(f"tensor name {name!r} used twice")
        self._taken.add(name)
        return name

    def weight(self, name: str, value: np.ndarray) -> str:
        """A float32 initializer named after the IR parameter it comes from."""
        name = self.fresh(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def const(self, values: Any, dtype: Any = np.int64, scalar: bool = False) -> str:
        """A shared constant initializer: a 1-D array, or a 0-D one with `scalar`."""
        array = np.asarray(values, dtype=dtype)
        if not scalar:
            array = array.reshape(-1)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = self.fresh(f"const.{'_'.join(str(v) for v in array.reshape(-1)[:4])}")
            self.initializers.append(numpy_helper.from_array(array, name))
            self._constants[key] = name
        return self._constants[key]

    def add_input(self, name: str, elem_type: int, shape: Sequence[int | str]) -> str:
        self.inputs.append(helper.make_tensor_value_info(self._claim(name), elem_type, list(shape)))
        return name

    def add_output(self, name: str, elem_type: int, shape: Sequence[int | str], first: bool = False, at: int | None = None) -> None:
        """A graph output, last (or `first`, or at position `at`)."""
        position = at if at is not None else 0 if first else len(self.outputs)
        self.outputs.insert(position, helper.make_tensor_value_info(name, elem_type, list(shape)))

    def rename_output(self, tensor: str, name: str) -> bool:
        """Make the node producing `tensor` write `name` instead (the graph's output
        names are fixed); an Identity only where `tensor` has no producer of its own.
        True when `tensor` was renamed (and is no more)."""
        producers = [n for n in self.nodes if tensor in n.output]
        taken_elsewhere = any(v.name == tensor for v in (*self.inputs, *self.outputs))
        if len(producers) != 1 or taken_elsewhere:
            self.op("Identity", [tensor], hint=name, names=[name])
            return False
        self._claim(name)
        for node in self.nodes:
            node.input[:] = [name if i == tensor else i for i in node.input]
            node.output[:] = [name if o == tensor else o for o in node.output]
        return True

    # --- derived from lengths, shared by the layers -----------------------------------

    def time_steps(self, x: str, time_axis: int) -> str:
        """The size of `x`'s time axis as an int64 scalar."""
        key = ("steps", x, time_axis)
        if key not in self._cache:
            dim = self.op("Shape", [x], hint="steps", start=time_axis, end=time_axis + 1)
            self._cache[key] = self.op("Squeeze", [dim, self.const([0])], hint="steps")
        return self._cache[key]

    def lengths_i32(self, lengths: str) -> str:
        """The recurrent operators take `sequence_lens` as int32."""
        key = ("i32", lengths)
        if key not in self._cache:
            self._cache[key] = self.op("Cast", [lengths], hint=f"{lengths}.i32", to=TensorProto.INT32)
        return self._cache[key]

    def step_mask(self, x: str, lengths: str, time_major: bool) -> str:
        """True at the real steps of `x`: `[time, batch, 1]` when time-major, else
        `[batch, time, 1]`. One per lengths tensor: every tensor that carries the same
        lengths has the same time axis."""
        key = ("mask", lengths, time_major)
        if key in self._cache:
            return self._cache[key]
        steps = self.time_steps(x, 0 if time_major else 1)
        positions = self.op("Range", [self.const(0, scalar=True), steps, self.const(1, scalar=True)], hint="positions")
        if time_major:  # [T, 1] < [B] -> [T, B]
            column = self.op("Unsqueeze", [positions, self.const([1])], hint="positions")
            real = self.op("Less", [column, lengths], hint="mask")
        else:  # [T] < [B, 1] -> [B, T]
            row = self.op("Unsqueeze", [lengths, self.const([1])], hint="lengths.col")
            real = self.op("Less", [positions, row], hint="mask")
        self._cache[key] = self.op("Unsqueeze", [real, self.const([2])], hint="mask")
        return self._cache[key]

    def nonempty(self, lengths: str, rank: int) -> str:
        """`lengths > 0` shaped `[batch, 1, ...]` to broadcast over a rank-`rank` tensor."""
        key = ("nonempty", lengths, rank)
        if key not in self._cache:
            positive = self.op("Greater", [lengths, self.const(0, scalar=True)], hint="nonempty")
            axes = list(range(1, rank))
            self._cache[key] = self.op("Unsqueeze", [positive, self.const(axes)], hint="nonempty") if axes else positive
        return self._cache[key]

    def graph(self, name: str, doc: str = "") -> onnx.GraphProto:
        return helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.initializers, doc_string=doc)
