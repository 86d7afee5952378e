"""bench/README.md's table for bench/bucket_speed.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "bucket_speed"


def table(result: dict) -> str:
    """bench/bucket_speed.py's table: samples/s of full-width, cut and bucketed batches on ragged text."""
    load = result["load_average"]
    head = (f"{result['workload']}; one epoch of {result['rows']:,} rows a round, medians (min-max) of "
            f"{result['rounds']} rounds, {result['cpu_threads']} threads, load average {load['min']:g}-{load['max']:g} on 2 cores.")
    rows = ["| batches | steps trained per row | samples/s | vs full width | epoch loss |", "|---|---|---|---|---|"]
    ways = result["ways"]
    full = ways["full width"]["samples_per_s"]["median"]
    for way, case in ways.items():
        speed = case["samples_per_s"]
        rows.append(f"| {way} | {case['steps_per_row']:g} | {speed['median']:,.0f} ({speed['min']:,.0f}-{speed['max']:,.0f}) | "
                    f"{speed['median'] / full:.2f}x | {case['loss']:.4f} |")
    return "\n".join([head, "", *rows, "", f"(mean length {result['mean_length']:g} steps)"])
