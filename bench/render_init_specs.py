"""bench/README.md's table for bench/init_specs.py's results (found by bench/render.py)."""

from __future__ import annotations

import statistics

PREFIX = "init_specs"


def table(result: dict) -> str:
    """Per shipped spec, each scheme's median validation metric over the seeds with the
    min-max, and on how many seeds the last scheme beats the first and loses to it (the
    same seed, the same data; the rest are ties)."""
    machine, schemes, seeds = result["machine"], result["schemes"], result["seeds"]
    load = result["load_average"]
    head = (f"Seeds {seeds[0]}-{seeds[-1]}, the shipped specs as shipped (`rnnc train --threads 1`, {result['jobs']} at a time, "
            f"under nice), the kept model's validation metric; {machine['cpu']} ({', '.join(machine['isa'])}), torch "
            f"{machine['torch']}, {result['date']}, {result['minutes']:.0f} min; load average {load['before'][0]:.1f} before, "
            f"{load['after'][0]:.1f} after.")
    first, last = schemes[0], schemes[-1]
    rows = [f"| spec | metric | {' | '.join(schemes)} | seeds where {last} is better | worse |",
            "|---|---|" + "---|" * len(schemes) + "---|---|"]
    for spec, entry in result["specs"].items():
        by, higher = entry["schemes"], entry["higher_is_better"]
        scale, digits = (100, 1) if entry["metric"].endswith("accuracy") else (1, 4)
        unit = " %" if scale == 100 else ""
        cells = [f"{statistics.median(by[s]) * scale:.{digits}f} ({min(by[s]) * scale:.{digits}f}-{max(by[s]) * scale:.{digits}f})"
                 for s in schemes]
        gains = [(b - a) if higher else (a - b) for a, b in zip(by[first], by[last], strict=True)]
        better, worse = sum(g > 0 for g in gains), sum(g < 0 for g in gains)
        arrow = "higher" if higher else "lower"
        rows.append(f"| {spec} | {entry['metric']}{unit}, {arrow} is better | {' | '.join(cells)} | "
                    f"{better} of {len(gains)} | {worse} of {len(gains)} |")
    return "\n".join([head, "", *rows])
