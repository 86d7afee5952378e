"""Choosing tokens from a decoder step, in numpy alone: greedy, sampling and beam search.

A *step* is `step(tokens, states) -> (probs, states)`: `tokens` int64 `[rows, t]`,
`probs` float `[rows, t, V]` (each step's distribution over the next token, as the
exported graph's softmax gives it), `states` a dict of arrays with one row per
sequence. Everything a row needs goes in `states`, values the step returns unchanged
too (an encoder's outputs), so the search can drop finished rows and reorder beams by
indexing every array alike. Each search starts from `first` (`[rows, t0]`: the start
id, or a whole prompt as one chunk) and returns a `Decoded`: the chosen ids, the end id
included when one was chosen, 0 after it; how many each row has; and the sum of their
log-probabilities under the model (temperature and truncation change what is drawn,
not how it is scored). Rows that chose the end id leave the batch, so a step costs
only the rows still going.

Beam search keeps the `beam` best sequences of each question by total log-probability
(no length normalisation: a longer sequence never gains by being longer), a finished
one keeping its score, and stops a question when its best sequence is finished, which
no unfinished one can then beat. With `beam=1` it is greedy, token for token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

States = dict[str, np.ndarray]
Step = Callable[[np.ndarray, States], tuple[np.ndarray, States]]
Chooser = Callable[[np.ndarray], np.ndarray]  # probabilities [rows, V] -> ids [rows]


@dataclass(frozen=True)
class Decoded:
    """`ids` int64 `[rows, n]` (zero after each row's `lengths`), `log_probs` float64
    `[rows]`: the sum of log p of each row's ids."""

    ids: np.ndarray
    lengths: np.ndarray
    log_probs: np.ndarray


@dataclass(frozen=True)
class Sampling:
    """How to draw the next token: `temperature` T (p^(1/T), renormalised), `top_k` (only
    the k likeliest), `top_p` (the fewest likeliest whose probabilities reach p: nucleus),
    `seed` for numpy's Generator (the same seed draws the same tokens)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def problems(self) -> list[str]:
        """What is out of range, one line each, named as the command line names them."""
        found = []
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            found.append(f"--temperature must be a number above 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            found.append(f"--top-k must be at least 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            found.append(f"--top-p must lie in (0, 1], got {self.top_p}")
        if self.seed is not None and self.seed < 0:
            found.append(f"--seed must be 0 or more, got {self.seed}")
        return found

    def chooser(self) -> Chooser:
        """A function drawing one id per row, with its own Generator seeded by `seed`."""
        rng = np.random.default_rng(self.seed)
        return lambda probs: draw(probs, rng, self.temperature, self.top_k, self.top_p)


def greedy_choice(probs: np.ndarray) -> np.ndarray:
    """The likeliest id of each row (the lowest id among ties)."""
    return probs.argmax(axis=-1).astype(np.int64)


def draw(probs: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
         top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """One id per row of `probs` `[rows, V]`, drawn from p^(1/T) renormalised, cut to the
    `top_k` likeliest and to the nucleus of mass `top_p`. Ties rank by id, so `top_k=1`
    is `greedy_choice`. One uniform number per row, from `rng`."""
    rows, vocab = probs.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        logits = np.log(np.maximum(probs.astype(np.float64), 0.0)) / temperature
    logits[~np.isfinite(logits)] = -np.inf
    top = logits.max(axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0.0  # a row of zeros: every id equally likely below
    weights = np.exp(logits - top)
    weights[(weights.sum(axis=1) == 0)] = 1.0
    order = np.argsort(-weights, axis=1, kind="stable")
    ranked = np.take_along_axis(weights, order, axis=1)
    if top_k is not None and top_k < vocab:
        ranked[:, top_k:] = 0.0
    if top_p is not None and top_p < 1:
        mass = np.cumsum(ranked, axis=1) / ranked.sum(axis=1, keepdims=True)
        before = np.concatenate([np.zeros((rows, 1)), mass[:, :-1]], axis=1)
        ranked[:, 1:][before[:, 1:] >= top_p] = 0.0  # the first id always stays
    cumulative = np.cumsum(ranked, axis=1)
    u = rng.random(rows) * cumulative[:, -1]
    picked = np.minimum((cumulative <= u[:, None]).sum(axis=1), vocab - 1)
    picked = np.where(ranked[np.arange(rows), picked] > 0, picked, 0)  # u at a float edge: the likeliest
    return order[np.arange(rows), picked].astype(np.int64)


def tokens(step: Step, first: np.ndarray, states: States, limit: int, end: int | None,
           choose: Chooser = greedy_choice) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each new token of every row as it is chosen: `(ids [rows], log p [rows])`, id 0
    and log p 0 for a row that has ended; at most `limit` of them, fewer when every row
    chose `end`. The prefix `first` runs as one chunk, then one token per call."""
    rows = len(first)
    active = np.arange(rows)
    feed = np.asarray(first, dtype=np.int64)
    for _ in range(limit):
        if not len(active):
            return
        probs, states = step(feed, states)
        last = probs[:, -1, :]
        ids = choose(last)
        out, scores = np.zeros(rows, np.int64), np.zeros(rows)
        out[active] = ids
        with np.errstate(divide="ignore"):
            scores[active] = np.log(last[np.arange(len(ids)), ids].astype(np.float64))
        yield out, scores
        going = ids != end if end is not None else np.ones(len(ids), bool)
        if not going.all():
            active, ids = active[going], ids[going]
            states = {name: value[going] for name, value in states.items()}
        feed = ids[:, None]


def decode(step: Step, first: np.ndarray, states: States, limit: int, end: int | None,
           choose: Chooser = greedy_choice) -> Decoded:
    """Every row decoded by `choose` (greedy by default, or `Sampling(...).chooser()`)."""
    chosen, scores = [], np.zeros(len(first))
    for ids, log_p in tokens(step, first, states, limit, end, choose):
        chosen.append(ids)
        scores += log_p
    ids = np.stack(chosen, axis=1) if chosen else np.zeros((len(first), 0), np.int64)
    return Decoded(ids, _lengths(ids, end), scores)


def beam_search(step: Step, first: np.ndarray, states: States, limit: int, end: int | None, beam: int) -> Decoded:
    """Each row's likeliest sequence among the `beam` kept per question at every step
    (total log-probability, no length normalisation); `beam=1` is greedy."""
    questions = len(first)
    if limit < 1 or questions == 0:
        return Decoded(np.zeros((questions, 0), np.int64), np.zeros(questions, np.int64), np.zeros(questions))
    probs, states = step(np.asarray(first, dtype=np.int64), states)
    logp = _log(probs[:, -1, :])
    vocab = logp.shape[1]
    # the first expansion: each question's `beam` likeliest tokens (a beam past V starts at -inf)
    order = np.argsort(-logp, axis=1, kind="stable")[:, :beam]
    width = order.shape[1]
    score = np.full((questions, beam), -np.inf)
    score[:, :width] = np.take_along_axis(logp, order, axis=1)
    seqs = np.zeros((questions, beam, limit), np.int64)
    seqs[:, :width, 0] = order
    done = np.zeros((questions, beam), bool)
    if end is not None:
        done[:, :width] = order == end
    done |= ~np.isfinite(score)
    states = {name: np.repeat(value, beam, axis=0) for name, value in states.items()}  # row q*beam + b
    length = np.ones((questions, beam), np.int64)
    live = np.flatnonzero(~done[:, 0])  # a question stops when its best sequence is finished
    for t in range(1, limit):
        if not len(live):
            break
        rows = (live[:, None] * beam + np.arange(beam)).ravel()
        going = ~done[live].ravel()
        stepped = rows[going]
        probs, new = step(seqs[live].reshape(-1, limit)[going, t - 1 : t], {n: v[stepped] for n, v in states.items()})
        for name, value in new.items():
            states[name][stepped] = value
        cand = np.full((len(rows), vocab + 1), -np.inf)  # column V: a finished sequence as it is
        cand[going, :vocab] = score[live].ravel()[going, None] + _log(probs[:, -1, :])
        cand[~going, vocab] = score[live].ravel()[~going]
        cand = cand.reshape(len(live), beam * (vocab + 1))
        best = np.argsort(-cand, axis=1, kind="stable")[:, :beam]
        parent, token = best // (vocab + 1), best % (vocab + 1)
        new_score = np.take_along_axis(cand, best, axis=1)
        source = live[:, None] * beam + parent
        for name in states:
            states[name][rows] = states[name][source.ravel()]
        seqs[live] = seqs[live[:, None], parent]
        length[live] = length[live[:, None], parent]
        finished = token == vocab
        kept = done[live[:, None], parent] | finished
        extended = ~finished
        seqs[live[:, None], np.arange(beam), t] = np.where(extended, token, seqs[live[:, None], np.arange(beam), t])
        length[live] = length[live] + extended
        now_done = kept | (extended & (token == end if end is not None else False)) | ~np.isfinite(new_score)
        score[live], done[live] = new_score, now_done
        live = live[~done[live, 0]]
    ids = seqs[:, 0, :]
    ids = np.where(np.arange(limit) < length[:, :1], ids, 0)
    return Decoded(ids, _lengths(ids, end, length[:, 0]), score[:, 0])


def _log(probs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(np.maximum(probs.astype(np.float64), 0.0))


def _lengths(ids: np.ndarray, end: int | None, cap: np.ndarray | None = None) -> np.ndarray:
    """Ids up to and with the first end id (all of them without one)."""
    steps = ids.shape[1]
    if end is None:
        lengths = np.full(len(ids), steps, np.int64)
    else:
        hit = ids == end
        lengths = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, steps).astype(np.int64)
    return lengths if cap is None else np.minimum(lengths, cap)
