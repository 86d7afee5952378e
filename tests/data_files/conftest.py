"""Parquet and converted data files need pyarrow (`rnnc[data]`); training tests run on one torch thread."""

from __future__ import annotations

import pytest

pytest.importorskip("pyarrow")
