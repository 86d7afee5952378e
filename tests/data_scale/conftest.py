"""Training from `.npy` directories needs torch; each test trains on one torch thread."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
