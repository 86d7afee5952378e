"""Training tests need torch; each starts seeded on one thread (see seeding.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from seeding import _seeded_single_thread  # noqa: E402,F401  (an autouse fixture)
