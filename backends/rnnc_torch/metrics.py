"""The spec's metrics, as the trainer computes them once per epoch.

They live in the core (`rnnc.metrics`, numpy only) so that `rnnc evaluate` computes
the very same numbers from an exported model without torch; this module is the name
the torch backend has always imported them under.
"""

from __future__ import annotations

from rnnc.metrics import compute_metrics

__all__ = ["compute_metrics"]
