"""bench/README.md's table for bench/data_scale.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "data_scale"

DATA_LAYOUTS = {"npy-dir": "`.npy` directory", "npz read in place": "`.npz` read in place",
                "npz in memory": "`.npz` in memory", "hand-written torch, memmap": "hand-written PyTorch, memmap",
                "parquet from the data cache": "Parquet, from the data cache", "parquet in memory": "Parquet decoded in memory",
                "compressed npz from the data cache": "compressed `.npz`, from the data cache"}


def _label(name: str) -> str:
    layout, _, size = name.rpartition(" ")
    return f"{DATA_LAYOUTS.get(layout, layout)}, {size.replace('GB', ' GB')}"


def table(result: dict) -> str:
    """bench/data_scale.py's table: peak memory, samples/s and load time of training by data layout,
    and the one-off cost of each data cache."""
    load = result.get("load_average")
    head = (f"{result['workload']}; {result['batches_per_run']} batches a run, medians (min-max) of "
            f"{result['runs']} runs, {result['cpu_threads']} training threads"
            + (f", load average {load['min']:g}-{load['max']:g} on 2 cores." if load else "."))
    rows = ["| data | peak RSS | peak / data | samples/s | vs in memory | load + check |", "|---|---|---|---|---|---|"]
    cases = result["cases"]
    for name, case in cases.items():
        size = name.rpartition(" ")[2]
        speed, load_s = case["samples_per_s"], case["load_s"]
        loaded = f"{load_s['median']:.1f} s" if load_s["max"] > 0 else "-"
        memory = cases.get(f"npz in memory {size}") or next((c for n, c in cases.items() if n.startswith("npz in memory")), None)
        versus = f"{speed['median'] / memory['samples_per_s']['median']:.2f}x" if memory else "-"
        share = case["peak_mib"]["median"] * (1 << 20) / case["data_bytes"]
        rows.append(f"| {_label(name)} | {case['peak_mib']['median']:,.0f} MiB | "
                    f"{share:.2f}x | {speed['median']:,.0f} ({speed['min']:,.0f}-{speed['max']:,.0f}) | {versus} | {loaded} |")
    built = [(name, case) for name, case in cases.items() if "spill_s" in case]
    if not built:
        return "\n".join([head, "", *rows])
    spills = ["| data cache of | one-off decode | its peak RSS | cache on disk | the file |", "|---|---|---|---|---|"]
    for name, case in built:
        spills.append(f"| {_label(name)} | {case['spill_s']:.1f} s | {case['spill_peak_mib']:,.0f} MiB | "
                      f"{case['spill_disk_bytes'] / (1 << 20):,.0f} MiB | {case['file_bytes'] / (1 << 20):,.0f} MiB |")
    return "\n".join([head, "", *rows, "", "Each data cache, built once before the runs above (which reuse it):", "", *spills])
