"""A graph (spec version 2) trained data-parallel: `GraphTrainer` on one rank's shard.

`DistributedGraphTrainer` is the chain's `DataParallel` machinery (the shard of the
single process's epoch order, DDP gradients, reduced losses, rank 0's logs, every
rank's RNG in the checkpoint) over the graph's loop. Each output's loss is a mean over
its samples, so the weighted sum of the ranks' means, weighted by their samples, is the
weighted sum of the global batch's means; the metrics are computed on every rank's
outputs, targets and masks gathered. Data on disk is sharded by row index, so a rank
gathers only its own rows.
"""

from __future__ import annotations

from .distributed import DataParallel
from .graph_trainer import GraphDeviceData, GraphTrainer, Outputs


class DistributedGraphTrainer(DataParallel, GraphTrainer):
    """A graph's `GraphTrainer` on one rank; see the module docstring."""

    def _logs(self, total: float, each: list[float], outputs: Outputs, data: GraphDeviceData) -> dict[str, float]:
        outputs = {name: self._gathered(output.float()) for name, output in outputs.items()}
        targets = {name: self._gathered(data.targets[name]) for name in outputs}
        masks = {name: self._gathered(data.masks[name]) for name in outputs if name in data.masks}
        return super()._logs(total, each, outputs, GraphDeviceData({}, {}, targets, masks))
