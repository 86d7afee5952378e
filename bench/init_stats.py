"""The initialisation study's statistics: bootstrap intervals and a permutation test (numpy only).

Each arm's metric over the seeds is one sample; two arms are compared as two
independent samples (the seeds of rnnc and of the hand-written loop draw different
weights and orders, so a seed does not pair them). Every resampling is seeded, so the
same values give the same intervals and p-values every time.

"At least as good" (the issue's goal, as the study judges it): the 95% interval of the
difference of means (rnnc - hand) does not lie entirely on the worse side of zero.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95
SEED = 20261203


def _interval(draws: np.ndarray, level: float = LEVEL) -> list[float]:
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return [float(low), float(high)]


def bootstrap(values, statistic=np.mean, resamples: int = RESAMPLES, seed: int = SEED) -> list[float]:
    """The percentile bootstrap's 95% interval of `statistic` (np.mean or np.median) of `values`."""
    values = np.asarray(values, float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), (resamples, len(values)))
    return _interval(statistic(values[picks], axis=1))


def bootstrap_difference(a, b, statistic=np.mean, resamples: int = RESAMPLES, seed: int = SEED) -> list[float]:
    """The 95% interval of statistic(a) - statistic(b), each sample resampled on its own."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    draws_a = statistic(a[rng.integers(0, len(a), (resamples, len(a)))], axis=1)
    draws_b = statistic(b[rng.integers(0, len(b), (resamples, len(b)))], axis=1)
    return _interval(draws_a - draws_b)


def permutation_p(a, b, resamples: int = RESAMPLES, seed: int = SEED) -> float:
    """Two-sided p-value of mean(a) - mean(b) under random relabelling of the pooled values:
    (1 + relabellings at least as far from zero) / (1 + relabellings)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.broadcast_to(pooled, (resamples, len(pooled))), axis=1)
    far = np.abs(shuffled[:, :len(a)].mean(1) - shuffled[:, len(a):].mean(1)) >= observed - 1e-12
    return float((1 + far.sum()) / (1 + resamples))


def describe(values) -> dict:
    """An arm's median and mean, each with its 95% bootstrap interval."""
    values = np.asarray(values, float)
    return {"median": float(np.median(values)), "median_ci": bootstrap(values, np.median),
            "mean": float(values.mean()), "mean_ci": bootstrap(values, np.mean)}


def verdict(interval: list[float], higher_is_better: bool) -> str:
    """`worse` when the interval of (rnnc - hand) lies entirely on the worse side of zero,
    `better` when entirely on the better side, else `no difference shown`."""
    low, high = interval
    if (high < 0) if higher_is_better else (low > 0):
        return "worse"
    if (low > 0) if higher_is_better else (high < 0):
        return "better"
    return "no difference shown"


def versus(ours, hand, higher_is_better: bool) -> dict:
    """rnnc's arm `ours` against the hand-written loop's `hand`: both arms described, the
    differences (ours - hand) of medians and of means with 95% intervals, the permutation
    p-value, the verdict on the mean difference's interval, and the plain median comparison."""
    ours, hand = np.asarray(ours, float), np.asarray(hand, float)
    mean_ci = bootstrap_difference(ours, hand, np.mean)
    median_diff = float(np.median(ours) - np.median(hand))
    return {"ours": describe(ours), "hand": describe(hand),
            "median_difference": median_diff, "median_difference_ci": bootstrap_difference(ours, hand, np.median),
            "mean_difference": float(ours.mean() - hand.mean()), "mean_difference_ci": mean_ci,
            "p": permutation_p(ours, hand), "verdict": verdict(mean_ci, higher_is_better),
            "median_at_least_hand": bool(median_diff >= 0 if higher_is_better else median_diff <= 0)}


def twin_chances(pool, arm: int, higher_is_better: bool, splits: int = 2_000, resamples: int = RESAMPLES,
                 seed: int = SEED) -> dict:
    """How the study's judgements treat a method compared with itself.

    `pool` is one method's metric over its seeds. It is split `splits` times at random
    into two disjoint arms of `arm` seeds, as if the method had been run twice on fresh
    seeds. The result is the share of splits in which the first arm's median is at least
    the second's (the issue's criterion; a tie passes), and the shares in which the
    means' 95% interval says `worse` or `better` (`verdict`). The bootstrap draws the
    same resample indices for every split, as `bootstrap_difference` does for every
    task of the study.
    """
    pool = np.asarray(pool, float)
    if 2 * arm > len(pool):
        raise ValueError(f"{len(pool)} seeds cannot make two disjoint arms of {arm}")
    rng = np.random.default_rng(seed)
    order = rng.permuted(np.broadcast_to(np.arange(len(pool)), (splits, len(pool))), axis=1)
    first, second = pool[order[:, :arm]], pool[order[:, arm:2 * arm]]
    gap = np.median(first, axis=1) - np.median(second, axis=1)
    at_least = gap >= 0 if higher_is_better else gap <= 0
    picks = np.random.default_rng(seed)
    picks_first, picks_second = picks.integers(0, arm, (resamples, arm)), picks.integers(0, arm, (resamples, arm))
    verdicts, chunk = [], max(1, 4_000_000 // (resamples * arm))  # splits x resamples x arm values at a time
    for start in range(0, splits, chunk):
        a, b = first[start:start + chunk], second[start:start + chunk]
        draws = a[:, picks_first].mean(axis=2) - b[:, picks_second].mean(axis=2)
        tail = (1 - LEVEL) / 2
        lows, highs = np.quantile(draws, [tail, 1 - tail], axis=1)
        verdicts += [verdict([low, high], higher_is_better) for low, high in zip(lows, highs, strict=True)]
    return {"median_at_least": float(at_least.mean()),
            "worse": verdicts.count("worse") / splits, "better": verdicts.count("better") / splits}
