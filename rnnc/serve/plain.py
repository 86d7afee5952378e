"""`POST /v1/predict`'s JSON: requests into batches of feeds, outputs into predictions.

A request is `{"instances": [...]}` (a v1 chain: one sequence each, `[[f, ...], ...]`
steps of features or `[id, ...]` token ids, lengths free to differ; a v2 graph: one
object per instance keyed by input name) or `{"texts": ["..."]}` for a raw-text model.
`instance_feeds` gives one feed per instance (its own steps), `merged` joins them into
as few batches as the model allows (padded where it takes lengths);
`predictions` turns each instance's outputs into what `rnnc predict` prints: a
classifier's `label`, `probability` and `probabilities` by class name, a multi-label
model's `probabilities`, a regression's values under `y` (per step for a sequence
output: its own steps only); a graph's outputs each under its name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnc.cli.predict_output import class_probabilities, is_regression, probabilities
from rnnc.errors import DataError, UsageError

from .batcher import padded
from .models import ServedModel
from .tensors import BadRequest

MAX_INSTANCES = 10_000


def instance_feeds(model: ServedModel, body: Any) -> list[dict[str, np.ndarray]]:
    """One feed per instance of the request `body`."""
    if not isinstance(body, dict) or not ({"instances", "texts"} & set(body)):
        raise BadRequest("the body must be {\"instances\": [...]} (one sequence each) or {\"texts\": [\"...\"]}")
    if unknown := sorted(set(body) - {"instances", "texts"}):
        raise BadRequest(f"unknown field '{unknown[0]}'; the body takes 'instances' or 'texts'")
    key = "texts" if "texts" in body else "instances"
    items = body[key]
    if not isinstance(items, list) or not items:
        raise BadRequest(f"'{key}' must be a non-empty list")
    if len(items) > MAX_INSTANCES:
        raise BadRequest(f"'{key}' holds {len(items):,} items; at most {MAX_INSTANCES:,} per request", 413)
    if key == "texts":
        return [_text_feed(model, text, i) for i, text in enumerate(items)]
    if model.graph:
        return [_graph_feed(model, item, i) for i, item in enumerate(items)]
    return [_chain_feed(model, item, i) for i, item in enumerate(items)]


def _text_feed(model: ServedModel, text: Any, i: int) -> dict[str, np.ndarray]:
    if model.graph or model.predictor.vocab is None:
        raise BadRequest("'texts' is for a model trained on raw text; this one takes 'instances' (it has no vocabulary)")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"texts[{i}] must be a non-blank string")
    try:
        ids, lengths = model.predictor.encode_texts([text])
    except (DataError, UsageError) as err:
        raise BadRequest(f"texts[{i}]: {err}") from None
    return {"x": ids} if lengths is None else {"x": ids, "lengths": lengths}


def _array(value: Any, dtype: type, where: str, rank: int) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        kind = "integer token ids" if dtype is np.int64 else "numbers"
        raise BadRequest(f"{where} must be a rectangular list of {kind}") from None
    if dtype is np.int64 and np.asarray(value, dtype=object).size and not _all_ints(value):
        raise BadRequest(f"{where} must hold integer token ids")
    if array.ndim != rank:
        raise BadRequest(f"{where} has {array.ndim} dimensions, expected {rank}")
    return array


def _all_ints(value: Any) -> bool:
    if isinstance(value, list):
        return all(_all_ints(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def _chain_feed(model: ServedModel, item: Any, i: int) -> dict[str, np.ndarray]:
    p = model.predictor
    if p.token_ids:
        x = _array(item, np.int64, f"instances[{i}]", 1)
        where = f"instances[{i}]: [steps] token ids"
    else:
        x = _array(item, np.float32, f"instances[{i}]", 2)
        where = f"instances[{i}]: [steps, {p.features}] features"
        if p.features is not None and x.shape[1] != p.features:
            raise BadRequest(f"{where} expected, got shape {list(x.shape)}")
    if len(x) == 0:
        raise BadRequest(f"instances[{i}] has no steps")
    feed = {"x": x[None]}
    if p.takes_lengths and not p.lengths_from_ids:
        feed["lengths"] = np.array([len(x)], np.int64)
    return feed


def _graph_feed(model: ServedModel, item: Any, i: int) -> dict[str, np.ndarray]:
    if not isinstance(item, dict):
        raise BadRequest(f"instances[{i}] must be an object keyed by input name ({', '.join(model.predictor.inputs)})")
    feed = {}
    for name, value in item.items():
        inp = model.predictor.inputs.get(name)
        if inp is None:
            raise BadRequest(f"instances[{i}]: unknown input '{name}'; the model takes: {', '.join(model.predictor.inputs)}")
        feed[name] = _array(value, np.int64 if inp.token_ids else np.float32, f"instances[{i}].{name}", inp.rank - 1)[None]
        if inp.takes_lengths and inp.lengths == "full":
            feed[f"{name}.lengths"] = np.array([feed[name].shape[1]], np.int64)
    return feed


def merged(model: ServedModel, feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The instances' feeds as few batches as the model allows: one, sequences padded
    with zeros to the longest, where every sequence input takes lengths; else one per
    run of instances of the same shapes."""
    if len(feeds) > 1 and len({tuple(sorted(f)) for f in feeds}) == 1 and all(n in model.lengths_of for n in model.sequence_inputs):
        longest = {n: max(f[n].shape[1] for f in feeds) for n in model.sequence_inputs if n in feeds[0]}
        even = [{n: padded(v, longest.get(n)) for n, v in f.items()} for f in feeds]
        return [{n: np.concatenate([f[n] for f in even]) for n in feeds[0]}]
    groups: list[list[dict[str, np.ndarray]]] = []
    for feed in feeds:
        shapes = {n: v.shape for n, v in feed.items()}
        if groups and {n: v.shape for n, v in groups[-1][0].items()} == shapes:
            groups[-1].append(feed)
        else:
            groups.append([feed])
    return [{n: np.concatenate([f[n] for f in group]) for n in group[0]} for group in groups]


def steps_of(model: ServedModel, feed: dict[str, np.ndarray]) -> int | None:
    """The real steps of a one-instance feed (None without a time axis)."""
    name = model.sequence_inputs[0] if model.sequence_inputs else None
    if name is None or name not in feed:
        return None
    lengths = feed.get(model.lengths_of.get(name, ""))
    return int(lengths[0]) if lengths is not None else int(feed[name].shape[1])


def predictions(model: ServedModel, outputs: dict[str, np.ndarray], steps: int | None) -> dict[str, Any]:
    """What one instance's outputs (each with a batch axis of 1) say."""
    if not model.graph:
        p = model.predictor
        return _described(outputs["y"][0], p.metadata.get("output", ""), p.classes, p.sequence_output, steps)
    said = {}
    for name, out in model.predictor.outputs.items():
        said[name] = _described(outputs[name][0], out.meaning, list(out.classes) if out.classes else None, out.per_step, steps)
    return said


def _described(y: np.ndarray, meaning: str, classes: list[str] | None, per_step: bool, steps: int | None) -> dict[str, Any]:
    if per_step:
        y = y[: steps if steps is not None else len(y)]
        rows = y
    else:
        rows = y[None]
    if "of each label" in meaning:
        names = classes or [str(i) for i in range(rows.shape[-1])]
        probs = probabilities(rows, meaning)
        said = [{"probabilities": dict(zip(names, map(float, p), strict=True))} for p in probs]
    elif not is_regression(meaning, classes):
        probs = class_probabilities(rows, meaning)
        names = classes or [str(i) for i in range(probs.shape[-1])]
        said = [{"label": names[int(p.argmax())], "probability": float(p.max()),
                 "probabilities": dict(zip(names, map(float, p), strict=True))} for p in probs]
    else:
        return {"y": y.tolist()}
    return {"steps": said} if per_step else said[0]
