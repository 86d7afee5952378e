"""What flows between two lowered layers: a tensor name, its layout and its lengths.

Sequences move between layers either batch-major `[batch, time, features]` (the
graph's input and output layout) or time-major `[time, batch, features]` (what the
ONNX recurrent operators take with `layout=0`, the only layout onnxruntime's CPU
kernels accept). Per-step layers work in either, so a stack of recurrent and dense
layers transposes once on the way in and once on the way out, not around every
recurrent operator. `lengths` is the int64 `[batch]` count of real steps, or None for
full-length sequences; `zero_padded` says the steps past each length are already zero.
Between chunks of a streaming graph flows each layer's state (`state_names`, named in
the core's `rnnc.metadata`, which lists them in the model's metadata).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rnnc.metadata import state_names, state_size  # noqa: F401  (the exported interface, declared in the core)

from .builder import GraphBuilder


@dataclass(frozen=True)
class Flow:
    tensor: str
    rank: int  # 3 for sequences, 2 once the time axis is gone
    time_major: bool = False
    lengths: str | None = None
    zero_padded: bool = False

    @property
    def time_axis(self) -> int:
        return 0 if self.time_major else 1

    def to(self, tensor: str, **changes: object) -> Flow:
        """The flow with a new tensor; per-step results are no longer zero-padded."""
        return replace(self, tensor=tensor, zero_padded=False, **changes)  # type: ignore[arg-type]


def in_layout(g: GraphBuilder, flow: Flow, time_major: bool) -> Flow:
    """`flow` transposed, if need be, into the layout asked for."""
    if flow.rank != 3 or flow.time_major == time_major:
        return flow
    swapped = g.op("Transpose", [flow.tensor], "time_major" if time_major else "batch_major", perm=[1, 0, 2])
    return Flow(swapped, 3, time_major, flow.lengths, flow.zero_padded)


def zero_padding(g: GraphBuilder, flow: Flow) -> Flow:
    """`flow` with the steps past each sequence's length set to zero."""
    if flow.lengths is None or flow.zero_padded or flow.rank != 3:
        return flow
    mask = g.step_mask(flow.tensor, flow.lengths, flow.time_major)
    zeroed = g.op("Where", [mask, flow.tensor, g.const(0.0, dtype="float32", scalar=True)], "zero_padded")
    return Flow(zeroed, 3, flow.time_major, flow.lengths, zero_padded=True)
