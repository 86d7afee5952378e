"""bench/README.md's table for bench/session_options.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "session_options"


def table(result: dict) -> str:
    """rnnc's LSTM graph under each session-option variant: batch 1 ms, batch 256 seq/s."""
    head = (f"{result['when']}; {result['cpu']}, {result['cores']} cores, {', '.join(result['isa'])}; onnxruntime "
            f"{result['onnxruntime']}; {result['workload'].rsplit(', batch', 1)[0]}; load average {', '.join(map(str, result['load_before']))} before, "
            f"{', '.join(map(str, result['load_after']))} after; {result['seconds']:.0f} s. Outputs of the float32 variants "
            f"agree with the default's to {max(result['batch1']['agree'], result['batch256']['agree']):.1e}.")
    lines = [head, ""]
    one, many = result["batch1"], result["batch256"]
    base1, base256 = one["ms"]["default"]["median"], many["ms"]["default"]["median"]
    lines += [f"Batch 1 (default: {one['threads']} thread), ms per call, median (min-max):", "",
              "| variant | ms | default / variant |", "|---|---|---|"]
    for name, r in one["ms"].items():
        lines.append(f"| {name} | {r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f}) | {base1 / r['median']:.2f}x |")
    lines += ["", f"Batch 256 (default: {many['threads']} threads), sequences/s from the median call (slowest-fastest call), "
              "GFLOP/s of the products:", "", "| variant | seq/s | GFLOP/s | variant / default |", "|---|---|---|---|"]
    for name, r in many["ms"].items():
        rate = 256 / r["median"] * 1e3
        lines.append(f"| {name} | {rate:,.0f} ({256e3 / r['max']:,.0f}-{256e3 / r['min']:,.0f}) | "
                     f"{rate * result['flops'] / 1e9:.1f} | {base256 / r['median']:.2f}x |")
    cases = result.get("spinning", {})
    if cases and "spinning, alone" in next(iter(cases.values()))["ms"]:
        calls = next(iter(cases.values()))["calls"]
        lines += ["", f"Every workload at batch 256 on the default threads, with and without spinning "
                  f"(`session.intra_op.allow_spinning`): one model alone, and two models (the same graph, other weights) "
                  f"run in turn, as a server holding both would; ms per call of the first model, median (min-max) of "
                  f"{calls}, each setting in phases of its own:", "",
                  "| workload | alone, spinning | alone, no spinning | in turn, spinning | in turn, no spinning | "
                  "no spinning / spinning: alone, in turn |", "|---|---|---|---|---|---|"]
        for key, case in cases.items():
            ms = case["ms"]
            cells = [f"{ms[n]['median']:.1f} ({ms[n]['min']:.1f}-{ms[n]['max']:.1f})"
                     for n in ("spinning, alone", "no spinning, alone", "spinning, in turn", "no spinning, in turn")]
            ratios = [ms[f"no spinning, {c}"]["median"] / ms[f"spinning, {c}"]["median"] for c in ("alone", "in turn")]
            lines.append(f"| ({key}) {case['name']} | {' | '.join(cells)} | {ratios[0]:.2f}x, {ratios[1]:.2f}x |")
    elif cases:
        lines += ["", "Every workload at batch 256 on the default threads, ms per call (median, min-max), with and without "
                  "spinning (`session.intra_op.allow_spinning`):", "",
                  "| workload | spinning | no spinning | spinning / no spinning |", "|---|---|---|---|"]
        for key, case in cases.items():
            spin, still = case["ms"]["spinning"], case["ms"]["no spinning"]
            lines.append(f"| ({key}) {case['name']} | {spin['median']:.1f} ({spin['min']:.1f}-{spin['max']:.1f}) | "
                         f"{still['median']:.1f} ({still['min']:.1f}-{still['max']:.1f}) | {spin['median'] / still['median']:.2f}x |")
    return "\n".join(lines)
