"""bench/README.md's tables for bench/init_study.py's results (found by bench/render.py):
init_study.json (5 seeds, every scheme) and init_study_20.json (20 seeds, with statistics)."""

from __future__ import annotations

PREFIX = "init_study"


def _cell(summary: dict, digits: int) -> str:
    return f"{summary['median']:.{digits}f} ({summary['min']:.{digits}f}-{summary['max']:.{digits}f})"


def _machine(machine: dict) -> str:
    return f"{machine['cpu']} ({', '.join(machine['isa'])}), torch {machine['torch']}"


def _other_machines(result: dict) -> str:
    """The runs made on another machine than the first, with what they trained."""
    first = result["machine"]
    other = [run for run in result["runs"] if run.get("machine", first) != first]
    return "".join(f" On {_machine(run['machine'])}: {', '.join(run['schemes'])} on {', '.join(run['tasks'])}."
                   for run in other)


def table(result: dict) -> str:
    """Per task, each scheme's held-out metric: median (min-max) over the seeds; the
    best median in bold, and whether rnnc's default reaches the hand-written loop's."""
    machine, schemes = result["machine"], result["schemes"]
    loads = [load for run in result["runs"] for load in run["load"]]
    minutes = sum(run["seconds"] for run in result["runs"]) / 60
    head = (f"{len(result['seeds'])} seeds per cell, held-out metric, median (min-max); {_machine(machine)}, "
            f"{machine['torch_threads']} thread, load average {min(loads):.1f}-{max(loads):.1f}, {minutes:.0f} min in all."
            f"{_other_machines(result)}")
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
    lines = [head, "", *rows]
    if any("versus" in task for task in result["tasks"].values()):
        lines += ["", *versus_table(result)]
    return "\n".join(lines)


def _ci(value: float, interval: list[float], digits: int, sign: str = "") -> str:
    return f"{value:{sign}.{digits}f} [{interval[0]:{sign}.{digits}f}, {interval[1]:{sign}.{digits}f}]"


def versus_table(result: dict) -> list[str]:
    """Per task, each of rnnc's schemes (a table each) against the hand-written loop: each arm's median and
    mean with 95% bootstrap intervals, the differences (rnnc - hand) of medians and of means
    with theirs, the permutation p-value, the verdict on the mean difference's interval,
    and whether the plain median reaches the hand loop's; then the counts."""
    tasks = {name: task for name, task in result["tasks"].items() if "versus" in task}
    schemes = list(dict.fromkeys(s for task in tasks.values() for s in task["versus"]))
    return [line for i, scheme in enumerate(schemes) for line in ([""] if i else []) + _versus_rows(tasks, scheme)]


def _versus_rows(tasks: dict, scheme: str) -> list[str]:
    rows = [f"| task | {scheme} median | hand median | {scheme} mean | hand mean | difference of medians | "
            "difference of means | p | verdict (means' interval) | median at least hand's |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    worse, medians = [], 0
    tasks = {name: task for name, task in tasks.items() if scheme in task["versus"]}
    for name, task in tasks.items():
        v = task["versus"][scheme]
        digits = 3 if task["metric"] == "accuracy" else 4
        ours, hand = v["ours"], v["hand"]
        rows.append(f"| {name} | {_ci(ours['median'], ours['median_ci'], digits)} | {_ci(hand['median'], hand['median_ci'], digits)} | "
                    f"{_ci(ours['mean'], ours['mean_ci'], digits)} | {_ci(hand['mean'], hand['mean_ci'], digits)} | "
                    f"{_ci(v['median_difference'], v['median_difference_ci'], digits, '+')} | "
                    f"{_ci(v['mean_difference'], v['mean_difference_ci'], digits, '+')} | {v['p']:.3f} | "
                    f"{'**worse**' if v['verdict'] == 'worse' else v['verdict']} | {'yes' if v['median_at_least_hand'] else 'no'} |")
        worse += [name] if v["verdict"] == "worse" else []
        medians += v["median_at_least_hand"]
    count = len(tasks)
    summary = (f"`{scheme}` against the hand-written loop, 95% bootstrap intervals in brackets, differences are "
               f"{scheme} - hand (an error metric: negative is better), p: two-sided permutation test on the means. "
               f"At least as good (the means' interval not entirely on the worse side) on {count - len(worse)} of {count} "
               f"tasks{' (worse: ' + ', '.join(worse) + ')' if worse else ''}; median at least the hand loop's on "
               f"{medians} of {count}.")
    return [summary, "", *rows]
