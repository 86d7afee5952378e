"""A graph (spec version 2) trained data-parallel: `GraphTrainer` on one rank's shard.

`DistributedGraphTrainer` is the chain's `DataParallel` machinery (the shard of the
single process's epoch order, DDP gradients, reduced losses, rank 0's logs, every
rank's RNG in the checkpoint) over the graph's loop. Each output's loss is a mean over
its samples, so the weighted sum of the ranks' means, weighted by their samples, is the
weighted sum of the global batch's means; the metrics are counted on every rank's
outputs, targets and masks, gathered a chunk at a time. Data on disk is sharded by
row index, so a rank gathers only its own rows.
"""

from __future__ import annotations

from rnnc import ir

from .distributed import DataParallel
from .epoch_metrics import EpochMetrics
from .graph_trainer import GraphTrainer


class DistributedGraphTrainer(DataParallel, GraphTrainer):
    """A graph's `GraphTrainer` on one rank; see the module docstring."""

    def _metrics_of(self, out: ir.Output) -> EpochMetrics:
        return EpochMetrics(out.metrics, out.loss, self.objectives[out.name].probabilities, self._every_rank)
