"""bench/README.md's table for bench/init_noise.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "init_noise"


def table(result: dict) -> str:
    """Per task, the hand loop's pooled seeds and how the study's two criteria judge it
    against itself; then what that makes of the whole suite."""
    machine, arm = result["machine"], result["arm"]
    head = (f"The hand-written loop's results in {', '.join(result['sources'])} ({machine['cpu']}, "
            f"{', '.join(machine['isa'])}, torch {machine['torch']}), pooled by seed; each task's pool split "
            f"{result['splits']:,} times into two disjoint arms of {arm} seeds; the means' interval from "
            f"{result['resamples']:,} bootstrap resamples, as the study draws it. No training ran for this table.")
    rows = ["| task | metric | seeds pooled | median at least the other arm's | worse by the means' interval | "
            f"better by it | seeds 100-{99 + arm} against 0-{arm - 1}: median at least, verdict |",
            "|---|---|---|---|---|---|---|"]
    for name, task in result["tasks"].items():
        twin = task.get("twin")
        cells = ([f"{twin['median_at_least']:.0%}", f"{twin['worse']:.1%}", f"{twin['better']:.1%}"] if twin
                 else ["-", "-", "-"])
        direct = task.get("direct")
        seen = (f"{'yes' if direct['median_at_least'] else 'no'}, {direct['verdict']} (p = {direct['p']:.2f})"
                if direct else "-")
        arrow = "higher" if task["higher_is_better"] else "lower"
        rows.append(f"| {name} | {task['metric']} on {task['held_out']}, {arrow} is better | "
                    f"{task['seeds']} ({task['seed_ranges']}) | {' | '.join(cells)} | {seen} |")
    counted = [task for task in result["tasks"].values() if "twin" in task]
    direct = [task["direct"] for task in result["tasks"].values() if "direct" in task]
    summary = (f"Over the {len(counted)} tasks, a method exactly as good as the loop has its median at least the "
               f"loop's on {result['expected_passes']:.1f} on average and on all {len(counted)} with chance "
               f"{result['all_pass']:.2g} (1 in {1 / result['all_pass']:,.0f}); it is called worse by the means' "
               f"interval on {result['expected_worse']:.2f} tasks on average, on none with chance "
               f"{result['none_worse']:.2f}. Seeds 100-{99 + arm} of the loop against its seeds 0-{arm - 1}: "
               f"median at least on {sum(d['median_at_least'] for d in direct)} of {len(direct)}, worse on "
               f"{sum(d['verdict'] == 'worse' for d in direct)}.")
    return "\n".join([head, "", *rows, "", summary])
