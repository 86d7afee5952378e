"""Which layer's rule makes a gap: rnnc's default with one layer kind's scheme changed, per task.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python bench/init_ablation.py \\
        --tasks lang_id --arms embedding=torch,dense=torch [--seeds 20 --first-seed 100]

Each arm trains the task's spec under `training.initializer: hybrid` with every layer
of the named kind given its own `initializer:` (`dense=torch`: the dense layers start
as PyTorch's nn.Linear, the rest as hybrid). The arms are compared with the default and
the hand-written loop as bench/results/init_study_20.json measured them on the same
seeds (the same code and seeds give the same runs, so they are not trained again; each
task's first hybrid run is trained again to check that, `reproduced`):
bench/init_stats.py's intervals and permutation p-values against the hand loop (all of
the study's seeds, also for an arm run on fewer with `--seeds`). Writes
bench/results/init_ablation.json, rewritten after every seed. Not a timing benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from init_stats import versus  # noqa: E402
from init_study import HAND, machine, score, summary, train_rnnc  # noqa: E402
from init_tasks import TASKS, Task  # noqa: E402

from rnnc import ir  # noqa: E402
from rnnc.artifacts import atomic_write_bytes  # noqa: E402
from rnnc.spec import model_from_mapping  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SCHEMES = ir.INITIALIZERS


def arm_model(task: Task, overrides: dict[str, str], seed: int) -> ir.Model:
    """The task's model under hybrid, each layer of a kind in `overrides` with that scheme."""
    model = task.model("hybrid", seed)
    spec = json.loads(json.dumps(task.spec))
    spec["training"] = {**spec.get("training", {}), "initializer": "hybrid", "seed": seed}
    kinds = {node.layer.kind for node in model.nodes}
    missing = sorted(set(overrides) - kinds)
    if missing:
        raise SystemExit(f"init_ablation: {task.name} has no {', '.join(missing)} layer (it has {', '.join(sorted(kinds))})")
    for layer in spec["layers"]:
        if layer["type"] in overrides:
            layer["initializer"] = overrides[layer["type"]]
    return model_from_mapping(spec, task.name, task.base)


def parse_arms(text: str) -> dict[str, dict[str, str]]:
    """`embedding=torch,dense=torch+lstm=keras` -> {"embedding=torch": {...}, ...}: arms split by
    commas, each arm's layer kinds joined by '+'."""
    arms = {}
    for arm in filter(None, text.split(",")):
        overrides = dict(part.split("=", 1) for part in arm.split("+"))
        bad = sorted(set(overrides.values()) - set(SCHEMES))
        if bad:
            raise SystemExit(f"init_ablation: unknown scheme(s) {', '.join(bad)}; the schemes: {', '.join(SCHEMES)}")
        arms[arm] = overrides
    return arms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", required=True, help="comma-separated task names")
    parser.add_argument("--arms", required=True, help="comma-separated arms, each kind=scheme joined by '+'")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--study", type=Path, default=RESULTS / "init_study_20.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "init_ablation.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    arms = parse_arms(args.arms)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    study = json.loads(args.study.read_text())
    if study["seeds"][:len(seeds)] != seeds:
        print(f"init_ablation: {args.study} has seeds {study['seeds'][0]}-{study['seeds'][-1]}", file=sys.stderr)
        return 2
    result = json.loads(args.out.read_text()) if args.out.exists() else {
        "machine": machine(), "seeds": seeds, "study": args.study.name, "tasks": {}, "runs": []}
    run = {"tasks": [], "arms": list(arms), "load": [os.getloadavg()[0]], "seconds": 0.0}
    result["runs"].append(run)
    started = time.perf_counter()
    for name in filter(None, args.tasks.split(",")):
        if name not in TASKS or name not in study["tasks"] or "seeds_done" in study["tasks"][name]:
            print(f"init_ablation: unknown task {name}; the study's finished ones: "
                  f"{', '.join(n for n, t in study['tasks'].items() if 'seeds_done' not in t)}", file=sys.stderr)
            return 2
        task, measured = TASKS[name](), study["tasks"][name]
        higher = measured["higher_is_better"]
        entry = result["tasks"].setdefault(name, {"metric": measured["metric"], "held_out": measured["held_out"],
                                                  "higher_is_better": higher, "layers": [n.layer.kind for n in task.model("hybrid", 0).nodes],
                                                  "arms": {}})
        hand = measured["results"][HAND]["seeds"]  # all the study's seeds, also for an arm run on fewer
        for arm in ("hybrid", "torch", "keras"):
            if arm in measured["results"]:
                values = measured["results"][arm]["seeds"]
                entry["arms"][arm] = {**summary(values), "versus_hand": versus(values, hand, higher), "trained": False}
        if "hybrid" in measured["results"]:  # the study's first hybrid run again: the same code gives the same run
            torch.manual_seed(seeds[0])
            again = score(task, train_rnnc(task, task.model("hybrid", seeds[0])))
            entry["reproduced"] = {"seed": seeds[0], "study": measured["results"]["hybrid"]["seeds"][0], "now": again}
            print(f"  {name} hybrid seed {seeds[0]} again: {again:.4f} (the study's: {entry['reproduced']['study']:.4f})", flush=True)
        for arm, overrides in arms.items():
            values = []
            for seed in seeds:
                torch.manual_seed(seed)
                values.append(score(task, train_rnnc(task, arm_model(task, overrides, seed))))
                print(f"  {name} {arm} seed {seed}: {values[-1]:.4f}", flush=True)
                entry["arms"][arm] = {**summary(values), "trained": True,
                                      **({"versus_hand": versus(values, hand, higher)} if len(values) >= 2 else {})}
                run["seconds"] = round(time.perf_counter() - started, 1)
                run["load"] = [run["load"][0], os.getloadavg()[0]]
                atomic_write_bytes(args.out, (json.dumps(result, indent=1) + "\n").encode())
        run["tasks"].append(name)
    atomic_write_bytes(args.out, (json.dumps(result, indent=1) + "\n").encode())
    print(f"wrote {args.out} ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
