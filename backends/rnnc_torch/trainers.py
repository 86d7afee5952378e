"""Which trainer a run gets: the chain's or the graph's, alone or data-parallel.

Its own module so that `distributed` (the data-parallel machinery both share) and
`graph_distributed` (which builds on it) import in one direction only.
"""

from __future__ import annotations

import torch

from rnnc import ir

from .distributed import DistributedTrainer, World
from .trainer import Trainer


def make_trainer(model: ir.Model, device: torch.device, world: World | None) -> Trainer:
    """A `Trainer` (a graph's `GraphTrainer`), or its data-parallel twin inside a
    torchrun worker."""
    if model.graph is not None:  # the v1 chain's training never imports the graph's
        if world is None:
            from .graph_trainer import GraphTrainer

            return GraphTrainer(model, device)
        from .graph_distributed import DistributedGraphTrainer

        return DistributedGraphTrainer(model, device, world)
    return Trainer(model, device) if world is None else DistributedTrainer(model, device, world)
