"""A graph's input for `rnnc predict`, by its kind: a `.npz` (`predict_graph_io`) or Parquet (`predict_disk`)."""

from __future__ import annotations

from rnnc.cli.predict_disk import graph_parquet
from rnnc.cli.predict_graph_io import GraphSource, open_graph_npz
from rnnc.data_parquet import is_parquet
from rnnc.runtime_graph import GraphPredictor


def open_graph_input(path: str, predictor: GraphPredictor, ignored: tuple[str, ...] = ()) -> GraphSource:
    """The input at `path`, checked whole against `predictor`'s inputs (see each reader)."""
    if is_parquet(path):  # a .parquet file or a directory of them
        return graph_parquet(path, predictor, ignored)  # type: ignore[no-any-return]
    return open_graph_npz(path, predictor, ignored)
