"""bench/README.md's table for bench/init_embedding.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "init_embedding"
ARMS = {"uniform:0.05": "uniform +-0.05 (keras's; hybrid, adaptive)", "normal:0.1": "N(0, 0.1)",
        "normal:dim": "N(0, 1/sqrt(dim)) (Flax's)", "normal:0.5": "N(0, 0.5)",
        "normal:1": "N(0, 1) (torch's; adaptive before 2026-12-04)", "hand": "hand-written PyTorch (N(0, 1))"}


def table(result: dict) -> str:
    """Per task and embedding arm, the held-out metric's median over the seeds with the
    min-max, and the difference of means from the hand loop with its 95% interval and
    verdict (bench/init_stats.py)."""
    machine, seeds, load = result["machine"], result["seeds"], result["load_average"]
    head = (f"Seeds {seeds[0]}-{seeds[-1]}, {result['jobs']} runs at a time on one torch thread each, under nice; "
            f"{machine['cpu']} ({', '.join(machine['isa'])}), torch {machine['torch']}, {result['date']}, "
            f"{result['minutes']:.0f} min; load average {load['before'][0]:.1f} before, {load['after'][0]:.1f} after. "
            "The arms that are a shipped scheme trained as that scheme too, seed "
            f"{seeds[0]}: {_same(result)}.")
    rows = ["| task | embedding starts | median (min-max) | mean - hand loop's [95% interval] | verdict |",
            "|---|---|---|---|---|"]
    for name, entry in result["tasks"].items():
        scale = 100 if entry["metric"] == "accuracy" else 1
        unit = f"{entry['metric']} %" if scale == 100 else entry["metric"]
        for arm, r in entry["arms"].items():
            cells = f"{r['median'] * scale:.1f} ({r['min'] * scale:.1f}-{r['max'] * scale:.1f})"
            v = r.get("versus_hand")
            diff = "" if v is None else (f"{v['mean_difference'] * scale:+.2f} "
                                         f"[{v['mean_difference_ci'][0] * scale:+.2f}, {v['mean_difference_ci'][1] * scale:+.2f}]")
            rows.append(f"| {name} ({unit}, {entry['settings'].get('epochs')} epochs) | {ARMS.get(arm, arm)} | {cells} | "
                        f"{diff} | {'' if v is None else v['verdict']} |")
    return "\n".join([head, "", *rows])


def _same(result: dict) -> str:
    checks = result.get("same_as", {})
    same = sum(c["arm"] == c["shipped"] for c in checks.values())
    return f"{same} of {len(checks)} the same to the last digit"
