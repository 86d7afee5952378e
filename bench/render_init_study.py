"""bench/README.md's table for bench/init_study.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "init_study"


def _cell(summary: dict, digits: int) -> str:
    return f"{summary['median']:.{digits}f} ({summary['min']:.{digits}f}-{summary['max']:.{digits}f})"


def table(result: dict) -> str:
    """Per task, each scheme's held-out metric: median (min-max) over the seeds; the
    best median in bold, and whether rnnc's default reaches the hand-written loop's."""
    machine, schemes = result["machine"], result["schemes"]
    loads = [load for run in result["runs"] for load in run["load"]]
    minutes = sum(run["seconds"] for run in result["runs"]) / 60
    head = (f"{len(result['seeds'])} seeds per cell, held-out metric, median (min-max); {machine['cpu']} "
            f"({', '.join(machine['isa'])}), torch {machine['torch']}, {machine['torch_threads']} thread, "
            f"load average {min(loads):.1f}-{max(loads):.1f}, {minutes:.0f} min in all.")
    rows = [f"| task | kind | metric | {' | '.join(schemes)} |", "|---|---|---|" + "---|" * len(schemes)]
    for name, task in result["tasks"].items():
        digits = 3 if task["metric"] == "accuracy" else 4
        medians = {s: task["results"][s]["median"] for s in schemes}
        best = (max if task["higher_is_better"] else min)(medians.values())
        cells = [(f"**{_cell(task['results'][s], digits)}**" if medians[s] == best else _cell(task["results"][s], digits))
                 for s in schemes]
        arrow = "higher" if task["higher_is_better"] else "lower"
        rows.append(f"| {name} | {task['kind']} | {task['metric']} on {task['held_out']} ({arrow} is better) | "
                    f"{' | '.join(cells)} |")
    return "\n".join([head, "", *rows])
