"""bench/README.md's table for bench/data_scale.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "data_scale"

DATA_LAYOUTS = {"npy-dir": "`.npy` directory", "npz read in place": "`.npz` read in place",
                "npz in memory": "`.npz` in memory", "hand-written torch, memmap": "hand-written PyTorch, memmap"}


def table(result: dict) -> str:
    """bench/data_scale.py's table: peak memory, samples/s and load time of training by data layout."""
    load = result.get("load_average")
    head = (f"{result['workload']}; {result['batches_per_run']} batches a run, medians (min-max) of "
            f"{result['runs']} runs, {result['cpu_threads']} training threads"
            + (f", load average {load['min']:g}-{load['max']:g} on 2 cores." if load else "."))
    rows = ["| data | peak RSS | peak / data | samples/s | vs in memory | load + check |", "|---|---|---|---|---|---|"]
    cases = result["cases"]
    for name, case in cases.items():
        layout, _, size = name.rpartition(" ")
        speed, load_s = case["samples_per_s"], case["load_s"]
        loaded = f"{load_s['median']:.1f} s" if load_s["max"] > 0 else "-"
        memory = cases.get(f"npz in memory {size}") or next((c for n, c in cases.items() if n.startswith("npz in memory")), None)
        versus = f"{speed['median'] / memory['samples_per_s']['median']:.2f}x" if memory else "-"
        share = case["peak_mib"]["median"] * (1 << 20) / case["data_bytes"]
        rows.append(f"| {DATA_LAYOUTS.get(layout, layout)}, {size.replace('GB', ' GB')} | {case['peak_mib']['median']:,.0f} MiB | "
                    f"{share:.2f}x | {speed['median']:,.0f} ({speed['min']:,.0f}-{speed['max']:,.0f}) | {versus} | {loaded} |")
    return "\n".join([head, "", *rows])
