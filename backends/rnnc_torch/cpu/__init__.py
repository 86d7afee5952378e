"""The CPU training path: what makes training on a CPU faster than plain torch, in one place.

rnnc's own time loop for recurrent layers with hand-derived backward passes
(`stepwise`, `scans`), one intra-op thread for models whose steps are tiny (`threads`),
each batch split across threads where that pays (`shards`, with `dropout` drawing from
a generator per thread so it stays deterministic), and a small simple RNN's forward
pass without gradients in numpy (`small_loop.infer`: validation and inference). The
rest of the backend uses only what is named here: the recurrent block asks whether to
run the loop (or the numpy forward pass) and runs it, the trainer asks how many threads
and shards a model gets and runs its steps so. Every decision and every threshold
behind it is in `policy`, each with its measurement.
"""

from .dropout import Dropout
from .policy import applies, check_settings, infers_in_numpy, shard_count, training_threads
from .shards import ShardedStep
from .small_loop import infer
from .stepwise import Workspace, run
from .threads import at_most, set_to

__all__ = ["Dropout", "ShardedStep", "Workspace", "applies", "at_most", "check_settings", "infer", "infers_in_numpy", "run",
           "set_to", "shard_count", "training_threads"]
