"""bench/README.md's table for bench/gemm_choice.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "gemm_choice"

ROUTES = {"torch": "torch.mm (MKL)", "onednn": "oneDNN", "openblas": "OpenBLAS (numpy)", "bf16": "bf16 (oneDNN)"}
FP32 = ("torch", "onednn", "openblas")


def _layout(name: str, entry: dict, rounds: int) -> list[str]:
    head = (f"**{name}**: batch {entry['batch']} on {entry['threads']} thread{'s' if entry['threads'] > 1 else ''}"
            + (f" ({entry['shards']} such shards at once)" if entry["shards"] > 1 else "") + f"; GFLOP/s, each route's least disturbed of {rounds} rounds (median of its repetitions)")
    rows = [head, "", "| product | shape | calls | " + " | ".join(ROUTES.values()) + " | fastest fp32 |",
            "|---|---|---|" + "---|" * (len(ROUTES) + 1)]
    for product, p in entry["products"].items():
        rates = p["gflops"]
        best = max(FP32, key=lambda r: rates[r])
        cells = " | ".join(f"**{rates[r]:.0f}**" if r == best else f"{rates[r]:.0f}" for r in ROUTES)
        rows.append(f"| {product} | [{p['m']},{p['k']}]x[{p['k']},{p['n']}] | {p['calls'] or '-'} | {cells} | {ROUTES[best]} |")
    ceiling = entry["ceiling"]
    ms, rate, pct = ceiling["step_ms"], ceiling["samples_per_s"], ceiling["percent_of_limit"]
    rows += ["", f"Products alone, one training step: fastest fp32 route {ms['best fp32']:.1f} ms -> "
             f"{rate['best fp32']:,.0f} samples/s = **{pct['best fp32']:.0f}% of the limit**; all on torch.mm {ms['torch']:.1f} ms "
             f"({pct['torch']:.0f}%); all bf16 {ms['bf16']:.1f} ms ({rate['bf16'] / rate['best fp32']:.2f}x the fp32 ceiling)."
             + (f" Against {entry['threads'] * entry['shards']} one-thread limit{'s' if entry['threads'] * entry['shards'] > 1 else ''}: "
                f"fastest fp32 {ceiling['percent_of_one_thread_limits']['best fp32']:.0f}%, torch.mm "
                f"{ceiling['percent_of_one_thread_limits']['torch']:.0f}%." if "percent_of_one_thread_limits" in ceiling else "")]
    if "layer" in entry:
        forward = ("input projection", "recurrent step, forward")
        best = {name: min(p["us"][r]["median"] for r in FP32) * p["calls"] for name, p in entry["products"].items() if p["calls"]}
        fwd, total = sum(best[n] for n in forward) / 1e3, sum(best.values()) / 1e3
        cells = "; ".join(f"{path} {t['forward']['median'] / 1e3:.1f} ms forward, {t['forward + backward']['median'] / 1e3:.1f} ms "
                          f"forward + backward" for path, t in entry["layer"].items())
        rows.append(f"The LSTM layer itself on these rows: {cells}; its products alone (fastest fp32 route) {fwd:.1f} ms forward, "
                    f"{total:.1f} ms forward + backward.")
    return rows


def table(result: dict) -> str:
    """bench/gemm_choice.py's tables: each GEMM's rate on the LSTM workload's products, and the ceiling they set."""
    best = result["limit"]
    load = result["load_average"]
    env = "; numpy without " + ", ".join(f"{k}={v}" for k, v in result["env_removed"].items()) if result["env_removed"] else ""
    lines = [f"{result['cpu']} ({', '.join(result['isa'])}), {result['threads']} threads, {result['date']}; limit "
             f"{best['median']:.0f} GFLOP/s ({best['best']}, {best['min']:.0f}-{best['max']:.0f}"
             + (f"; the best of rounds at {', '.join(f'{m:.0f}' for m in best['round_medians'])}" if "round_medians" in best else "")
             + ")" + (f"; one-thread limit {result['limit_one_thread']['median']:.0f} GFLOP/s ({result['limit_one_thread']['best']})"
                      if "limit_one_thread" in result else "") + "; load average "
             f"{load['before'][0]:.2f} before, {load['after'][0]:.2f} after{env}. Training is "
             f"{result['train_flops_per_sample'] / 1e6:.1f} MFLOP per sample.", ""]
    for name, entry in result["layouts"].items():
        lines += [*_layout(name, entry, len(best.get("round_medians", [0]))), ""]
    lines += ["Two thread pools on the same cores: a step's torch product [64,128]x[128,512], microseconds, median (min-max):", "",
              "| threads | alone | right after a numpy (OpenBLAS) product | right after a torch product |", "|---|---|---|---|"]
    for threads, c in result["contention"].items():
        lines.append(f"| {threads} | " + " | ".join(f"{c[k]['median']:,.0f} ({c[k]['min']:,.0f}-{c[k]['max']:,.0f})"
                                                  for k in ("alone", "after numpy", "after torch")) + " |")
    return "\n".join(lines).rstrip()
