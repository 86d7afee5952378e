"""The CPU training path: what makes training on a CPU faster than plain torch, in one place.

rnnc's own time loop for recurrent layers with hand-derived backward passes
(`stepwise`, `scans`), one intra-op thread for models whose steps are tiny (`threads`),
each batch split across threads where that pays (`shards`, with `dropout` drawing from
a generator per thread so it stays deterministic). The rest of the backend uses only
what is named here: the recurrent block asks whether to run the loop and runs it, the
trainer asks how many threads and shards a model gets and runs its steps so.
"""

from .dropout import Dropout
from .shards import ShardedStep, shard_count
from .stepwise import Workspace, applies, run
from .threads import at_most, set_to, training_threads

__all__ = ["Dropout", "ShardedStep", "Workspace", "applies", "at_most", "run", "set_to", "shard_count", "training_threads"]
