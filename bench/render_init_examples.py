"""bench/README.md's table for bench/init_examples.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "init_examples"


def table(result: dict) -> str:
    """Per example and figure, each scheme's median over its seeds with the min-max, and
    on how many seeds the last scheme beats the first and loses to it (the same seed, the
    same data; the rest are ties)."""
    machine, schemes = result["machine"], result["schemes"]
    loads = [value for load in result["load"] for value in load]
    head = (f"Seeds {result['seeds'][0]}-{result['seeds'][-1]} (fewer where the table says), the examples as shipped; "
            f"{machine['cpu']} ({', '.join(machine['isa'])}), torch {machine['torch']}, 1 thread per run, "
            f"{result['run_seconds'] / 60:.0f} min of runs; load average {min(loads):.1f}-{max(loads):.1f} while read.")
    first, last = schemes[0], schemes[-1]
    rows = [f"| example | figure | seeds | {' | '.join(schemes)} | seeds where {last} is better | worse |",
            "|---|---|---|" + "---|" * len(schemes) + "---|---|"]
    for name, example in result["examples"].items():
        label = name if example["baseline"] is None else f"{name} (graph; {example['baseline']}'s run as its v1)"
        for figure, entry in example["figures"].items():
            by = entry["schemes"]
            digits = 4 if "accuracy" in figure or "loss" in figure else 3
            cells = [f"{by[s]['median']:.{digits}f} ({by[s]['min']:.{digits}f}-{by[s]['max']:.{digits}f})" for s in schemes]
            pairs = list(zip(by[first]["values"], by[last]["values"], strict=True))
            gains = [(a - b) if entry["lower_is_better"] else (b - a) for a, b in pairs]  # the last scheme's, per seed
            better, worse = sum(g > 0 for g in gains), sum(g < 0 for g in gains)
            arrow = "lower" if entry["lower_is_better"] else "higher"
            rows.append(f"| {label} | {figure}, {arrow} is better | {len(pairs)} | {' | '.join(cells)} | {better} of {len(pairs)} | {worse} of {len(pairs)} |")
            label = ""
    return "\n".join([head, "", *rows])
