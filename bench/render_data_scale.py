"""bench/README.md's table for bench/data_scale.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "data_scale"

DATA_LAYOUTS = {"npy-dir": "`.npy` directory", "npz in memory": "`.npz` in memory",
                "hand-written torch, memmap": "hand-written PyTorch, memmap"}


def table(result: dict) -> str:
    """bench/data_scale.py's table: peak memory, samples/s and load time of training by data layout."""
    head = (f"{result['workload']}; {result['batches_per_run']} batches a run, medians (min-max) of "
            f"{result['runs']} runs, {result['cpu_threads']} training threads.")
    rows = ["| data | peak RSS | samples/s | load + check |", "|---|---|---|---|"]
    for name, case in result["cases"].items():
        layout, _, size = name.rpartition(" ")
        speed, load = case["samples_per_s"], case["load_s"]
        loaded = f"{load['median']:.1f} s" if load["max"] > 0 else "-"
        rows.append(f"| {DATA_LAYOUTS.get(layout, layout)}, {size.replace('GB', ' GB')} | {case['peak_mib']['median']:,.0f} MiB | "
                    f"{speed['median']:,.0f} ({speed['min']:,.0f}-{speed['max']:,.0f}) | {loaded} |")
    return "\n".join([head, "", *rows])
