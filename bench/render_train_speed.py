"""bench/README.md's table for bench/train_speed.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "train_speed"


def _span(r: dict, digits: int = 0) -> str:
    return f"{r['median']:,.{digits}f} ({r['min']:,.{digits}f}-{r['max']:,.{digits}f})"


def table(result: dict) -> str:
    """Per thread count: samples/s of rnnc (and of the earlier rnnc, where measured) and of
    the hand-written loop, and the paired ratios."""
    before = result.get("before")
    lines = [f"{result['cpu']} ({', '.join(result['isa'])}), torch {result['torch']}; `{result['command']}`; "
             f"{result['reps']} timed epochs of each system, interleaved. samples/s, median (min-max); ratios: "
             "the median (min-max) of each repetition's own ratio."]
    for name, run in result["runs"].items():
        loads = [v for w in run["workloads"].values() for v in w["load_average"].values()]
        lines += ["", f"{name}, {run['date']}, load average {min(loads):.1f}-{max(loads):.1f}:", ""]
        head = ["workload", "rnnc", *([f"rnnc at {before}"] if before else []), "hand-written PyTorch", "rnnc / PyTorch",
                *([f"rnnc at {before} / PyTorch", f"rnnc / rnnc at {before}"] if before else [])]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key, w in run["workloads"].items():
            cells = [f"({key}) {w['title']}", _span(w["rnnc"]), *([_span(w["rnnc before"])] if before else []), _span(w["pytorch"]),
                     _span(w["rnnc_over_pytorch"], 2),
                     *([_span(w["before_over_pytorch"], 2), _span(w["rnnc_over_before"], 2)] if before else [])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
