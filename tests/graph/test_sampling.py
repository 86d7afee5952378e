"""`rnnc.sampling` over a step written here in numpy (a tiny recurrent network with a
per-row context, as a decoder reads an encoder's values): greedy decoding batched with
rows that end early, beam search against exhaustive search, and sampling's
temperature, top-k, top-p and seed against the distributions they define."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnnc.sampling import Sampling, beam_search, decode, draw, greedy_choice, tokens

V, H, END, START = 5, 6, 0, 1


def toy(seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    emb, rec, out = rng.normal(0, 1.5, (V, H)), rng.normal(0, 0.6, (H, H)), rng.normal(0, 1.5, (H, V))
    calls: list[tuple[int, int]] = []

    def step(ids: np.ndarray, states: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        calls.append(ids.shape)
        h, probs = states["h"], []
        for t in range(ids.shape[1]):
            h = np.tanh(emb[ids[:, t]] + h @ rec + states["context"])
            z = np.exp(h @ out - (h @ out).max(axis=1, keepdims=True))
            probs.append(z / z.sum(axis=1, keepdims=True))
        return np.stack(probs, axis=1).astype(np.float32), {"h": h, "context": states["context"]}

    return step, calls


def questions(rows: int, seed: int = 1) -> dict[str, np.ndarray]:
    return {"h": np.zeros((rows, H)), "context": np.random.default_rng(seed).normal(0, 1.0, (rows, H))}


def log_prob(step, states: dict[str, np.ndarray], row: int, ids: list[int]) -> float:  # type: ignore[no-untyped-def]
    """The total log-probability of `ids` after the start id, one row alone."""
    probs, _ = step(np.array([[START, *ids[:-1]]]), {k: v[row : row + 1] for k, v in states.items()})
    return float(np.log(probs[0, np.arange(len(ids)), ids].astype(np.float64)).sum())


def reference_greedy(step, states: dict[str, np.ndarray], row: int, limit: int) -> list[int]:  # type: ignore[no-untyped-def]
    """Re-run the whole prefix each time, argmax at its last step: no state carried."""
    ids: list[int] = []
    while len(ids) < limit and (not ids or ids[-1] != END):
        probs, _ = step(np.array([[START, *ids]]), {k: v[row : row + 1] for k, v in states.items()})
        ids.append(int(probs[0, -1].argmax()))
    return ids


def test_greedy_is_the_reference_loop_and_finished_rows_are_zero_padded() -> None:
    step, calls = toy()
    states = questions(16)
    got = decode(step, np.full((16, 1), START), states, 7, END)
    assert got.ids.shape == (16, 7) and got.ids.dtype == np.int64
    ended = 0
    for row in range(16):
        want = reference_greedy(step, states, row, 7)
        assert got.ids[row, : got.lengths[row]].tolist() == want
        assert (got.ids[row, got.lengths[row]:] == 0).all()
        assert got.log_probs[row] == pytest.approx(log_prob(step, states, row, want), abs=1e-9)
        ended += want[-1] == END and len(want) < 7
    assert 0 < ended < 16, "the toy must end some rows early and not others"
    assert calls[0] == (16, 1)


def test_rows_that_end_leave_the_batch() -> None:
    step, calls = toy()
    got = decode(step, np.full((16, 1), START), questions(16), 7, END)
    rows = [r for r, _ in calls]
    assert rows == sorted(rows, reverse=True) and rows[-1] < 16
    assert rows[1:] == [int((got.lengths > t).sum()) for t in range(1, len(rows))]


def test_a_prompt_runs_as_one_chunk_then_one_token_a_call() -> None:
    step, calls = toy()
    prompt = np.array([[START, 3, 2, 4, 2, 3]])
    list(tokens(step, prompt, questions(1), 20, None))
    assert calls == [(1, 6)] + [(1, 1)] * 19


@pytest.mark.parametrize("limit", [1, 2, 6])
def test_beam_one_is_greedy_exactly(limit: int) -> None:
    step, _ = toy()
    states = questions(12)
    greedy = decode(step, np.full((12, 1), START), states, limit, END)
    beam = beam_search(step, np.full((12, 1), START), states, limit, END, 1)
    assert np.array_equal(beam.ids, greedy.ids) and np.array_equal(beam.lengths, greedy.lengths)
    assert np.array_equal(beam.log_probs, greedy.log_probs)


def test_beam_search_finds_the_exhaustive_best_when_wide_enough() -> None:
    """With a beam as wide as every sequence of 3 tokens, it is exhaustive search."""
    step, _ = toy()
    states = questions(6)
    limit = 3
    got = beam_search(step, np.full((6, 1), START), states, limit, END, V ** limit)
    for row in range(6):
        candidates = [list(c[: c.index(END) + 1] if END in c else c) for c in itertools.product(range(V), repeat=limit)]
        best = max(log_prob(step, states, row, c) for c in candidates)
        ids = got.ids[row, : got.lengths[row]].tolist()
        assert got.log_probs[row] == pytest.approx(best, abs=1e-9)
        assert log_prob(step, states, row, ids) == pytest.approx(best, abs=1e-9)


def test_beam_three_scores_at_least_greedy_and_sometimes_better() -> None:
    step, _ = toy()
    states = questions(40)
    greedy = decode(step, np.full((40, 1), START), states, 6, END)
    beam = beam_search(step, np.full((40, 1), START), states, 6, END, 3)
    for row in range(40):
        ids = beam.ids[row, : beam.lengths[row]].tolist()
        assert log_prob(step, states, row, ids) == pytest.approx(beam.log_probs[row], abs=1e-9)
    assert (beam.log_probs >= greedy.log_probs - 1e-12).all()
    assert (beam.log_probs > greedy.log_probs + 1e-6).any()


def test_same_seed_same_tokens_other_seed_other_tokens() -> None:
    step, _ = toy()
    states = questions(8)

    def sampled(seed: int) -> np.ndarray:
        return decode(step, np.full((8, 1), START), states, 12, None, Sampling(temperature=1.5, seed=seed).chooser()).ids

    assert np.array_equal(sampled(3), sampled(3))
    assert not np.array_equal(sampled(3), sampled(4))


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.0])
def test_top_k_one_is_greedy(temperature: float) -> None:
    step, _ = toy()
    states = questions(10)
    greedy = decode(step, np.full((10, 1), START), states, 6, END)
    top1 = decode(step, np.full((10, 1), START), states, 6, END, Sampling(temperature, top_k=1, seed=0).chooser())
    assert np.array_equal(top1.ids, greedy.ids)
    assert np.array_equal(top1.log_probs, greedy.log_probs)  # scored under the model, not the tempered draw


DRAWS = 40_000
P = np.array([[0.42, 0.27, 0.17, 0.09, 0.05]], np.float32)


def frequencies(**settings: object) -> np.ndarray:
    rng = np.random.default_rng(7)
    picked = draw(np.repeat(P, DRAWS, axis=0), rng, **settings)  # type: ignore[arg-type]
    return np.bincount(picked, minlength=P.shape[1]) / DRAWS


def expected(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


@pytest.mark.parametrize("settings, want", [
    ({}, expected(P[0].astype(np.float64))),
    ({"temperature": 0.5}, expected(P[0].astype(np.float64) ** 2)),
    ({"temperature": 2.0}, expected(P[0].astype(np.float64) ** 0.5)),
    ({"top_k": 2}, expected(np.array([0.42, 0.27, 0, 0, 0]))),
    ({"top_p": 0.6}, expected(np.array([0.42, 0.27, 0, 0, 0]))),  # 0.42 < 0.6 <= 0.69
    ({"top_p": 0.3}, np.array([1.0, 0, 0, 0, 0])),
    ({"top_p": 0.8, "top_k": 4}, expected(np.array([0.42, 0.27, 0.17, 0, 0]))),
], ids=["plain", "cold", "hot", "top_k", "top_p", "top_p_first_only", "both"])
def test_draws_follow_the_distribution_they_define(settings: dict[str, object], want: np.ndarray) -> None:
    got = frequencies(**settings)
    assert np.abs(got - want).max() < 0.01, (got, want)
    assert (got[want == 0] == 0).all()


def test_draw_ties_rank_by_id_and_zero_rows_still_draw() -> None:
    rng = np.random.default_rng(0)
    tie = np.array([[0.0, 0.4, 0.4, 0.2]])
    assert draw(tie, rng, top_k=1)[0] == greedy_choice(tie)[0] == 1
    assert 0 <= draw(np.zeros((1, 4)), rng)[0] < 4


@pytest.mark.parametrize("settings, line", [
    ({"temperature": 0.0}, "--temperature must be a number above 0, got 0.0"),
    ({"temperature": float("nan")}, "--temperature must be a number above 0, got nan"),
    ({"top_k": 0}, "--top-k must be at least 1, got 0"),
    ({"top_p": 0.0}, "--top-p must lie in (0, 1], got 0.0"),
    ({"top_p": 1.5}, "--top-p must lie in (0, 1], got 1.5"),
    ({"seed": -1}, "--seed must be 0 or more, got -1"),
])
def test_sampling_settings_out_of_range(settings: dict[str, object], line: str) -> None:
    assert Sampling(**settings).problems() == [line]  # type: ignore[arg-type]
