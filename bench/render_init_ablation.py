"""bench/README.md's table for bench/init_ablation.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "init_ablation"


def table(result: dict) -> str:
    """Per task and arm (hybrid with one layer kind's scheme changed; the study's own arms
    for reference), the mean with its 95% bootstrap interval, the difference of means from
    the hand-written loop with its interval and permutation p-value, and the median."""
    machine, runs = result["machine"], result["runs"]
    loads = [load for run in runs for load in run["load"]]
    head = (f"Seeds {result['seeds'][0]} on (the first 10 or all 20 of {result['seeds'][0]}-{result['seeds'][-1]}), held-out metric; hybrid, torch, "
            f"keras and the hand loop as {result['study']} measured them; {machine['cpu']}, torch {machine['torch']}, "
            f"1 thread, load average {min(loads):.1f}-{max(loads):.1f}, {sum(r['seconds'] for r in runs) / 60:.0f} min in all.")
    rows = ["| task (layers) | arm | seeds | median | mean [95% interval] | mean - hand's [95% interval] | p | verdict |",
            "|---|---|---|---|---|---|---|---|"]
    for name, task in result["tasks"].items():
        digits = 3 if task["metric"] == "accuracy" else 4
        label = f"{name} ({' + '.join(task['layers'])}; {task['metric']}, {'higher' if task['higher_is_better'] else 'lower'} is better)"
        for arm, r in task["arms"].items():
            v = r.get("versus_hand")
            if v is None:
                continue
            ours, (low, high), (dlow, dhigh) = v["ours"], v["ours"]["mean_ci"], v["mean_difference_ci"]
            rows.append(f"| {label} | {arm if r['trained'] else arm + ' (study)'} | {len(r['seeds'])} | {r['median']:.{digits}f} | "
                        f"{ours['mean']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}] | "
                        f"{v['mean_difference']:+.{digits}f} [{dlow:+.{digits}f}, {dhigh:+.{digits}f}] | {v['p']:.3f} | "
                        f"{'**worse**' if v['verdict'] == 'worse' else v['verdict']} |")
            label = ""
        hand = next((r["versus_hand"]["hand"] for r in task["arms"].values() if "versus_hand" in r), None)
        if hand is not None:
            low, high = hand["mean_ci"]
            rows.append(f"| {label} | hand-written PyTorch (study) | {len(result['seeds'])} | {hand['median']:.{digits}f} | "
                        f"{hand['mean']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}] | | | |")
    return "\n".join([head, "", *rows])
