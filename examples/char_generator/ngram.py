"""A character n-gram model with interpolated Kneser-Ney smoothing: the baseline.

`KneserNey(order).fit(text)` counts the text's n-grams up to `order`;
`log_probs(text, vocab)` gives the natural log of each character's probability given
the `order - 1` characters before it (fewer at the start). Every order discounts its
counts by its own D = n1 / (n1 + 2 n2) (Ney's estimate, from the counts seen once and
twice) and gives the mass it takes to the next lower order; the lower orders count how
many distinct characters precede each n-gram (continuation counts) rather than how
often it occurs, and the lowest hands its share to a uniform distribution over the
vocabulary, so a character never seen in training still has a probability. The
vocabulary is the model's own (the training characters and one "unknown" symbol), so
both models spread their probability over the same symbols. Pure Python and numpy.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np


class KneserNey:
    def __init__(self, order: int = 5) -> None:
        self.order = order

    def fit(self, text: str) -> KneserNey:
        n = self.order
        highest = Counter(text[i - n : i] for i in range(n, len(text) + 1))
        highest.update(text[:i] for i in range(1, n))  # the first characters, with shorter histories
        # counts by order: the highest order counts occurrences, the lower ones the
        # distinct characters seen before each n-gram
        self.counts: list[Counter[str]] = [Counter() for _ in range(n + 1)]
        self.counts[n] = Counter({g: c for g, c in highest.items() if len(g) == n})
        for k in range(n - 1, 0, -1):
            self.counts[k] = Counter(g[1:] for g in self.counts[k + 1])
            self.counts[k].update(g for g in highest if len(g) == k)  # n-grams at the start of the text
        self.discount = [0.0] * (n + 1)
        self.totals: list[dict[str, int]] = [{} for _ in range(n + 1)]  # history -> sum of counts
        self.types: list[dict[str, int]] = [{} for _ in range(n + 1)]  # history -> distinct next characters
        for k in range(1, n + 1):
            seen = Counter(self.counts[k].values())
            self.discount[k] = seen[1] / (seen[1] + 2 * seen[2]) if seen[1] else 0.5
            totals: defaultdict[str, int] = defaultdict(int)
            types: defaultdict[str, int] = defaultdict(int)
            for gram, count in self.counts[k].items():
                totals[gram[:-1]] += count
                types[gram[:-1]] += 1
            self.totals[k], self.types[k] = dict(totals), dict(types)
        return self

    def prob(self, history: str, char: str, vocab_size: int) -> float:
        """P(char | history), history cut to order - 1 characters."""
        p = 1.0 / vocab_size
        history = history[-(self.order - 1):] if self.order > 1 else ""
        for k in range(1, len(history) + 2):  # order 1 (no history) up to the longest known
            h = history[len(history) - (k - 1):] if k > 1 else ""
            total = self.totals[k].get(h)
            if total is None:
                break  # a history never seen: the lower orders' estimate stands
            d = self.discount[k]
            count = self.counts[k].get(h + char, 0)
            p = max(count - d, 0.0) / total + d * self.types[k][h] / total * p
        return p

    def log_probs(self, text: str, vocab: Sequence[str], start: int = 1) -> np.ndarray:
        """ln P of `text[i]` given the characters before it, for i from `start`; a
        character outside `vocab` is scored as the unknown symbol."""
        known = set(vocab)
        size = len(vocab) + 1  # the unknown symbol
        out = np.empty(len(text) - start)
        for i in range(start, len(text)):
            char = text[i] if text[i] in known else "\0"
            out[i - start] = np.log(self.prob(text[max(0, i - self.order + 1) : i], char, size))
        return out
