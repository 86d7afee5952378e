"""bench/README.md's tables for bench/bf16_training.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "bf16_training"

SYSTEMS = ("rnnc fp32", "rnnc bf16", "pytorch fp32")


def _span(r: dict, digits: int = 0, scale: float = 1.0) -> str:
    return f"{r['median'] * scale:,.{digits}f} ({r['min'] * scale:,.{digits}f}-{r['max'] * scale:,.{digits}f})"


def _load(part: dict) -> str:
    load = part["load_average"]
    return f"load average {load['before'][0]:.2f} before, {load['after'][0]:.2f} after"


def _speed(part: dict) -> list[str]:
    best = part["limit"]
    lines = [f"Training throughput, {part['threads']} thread{'s' if part['threads'] > 1 else ''}, {part['date']}, {_load(part)}; {part['reps']} timed epochs "
             f"of each, interleaved; limit {best['median']:.0f} GFLOP/s ({best['best']}, {best['min']:.0f}-{best['max']:.0f}). "
             "samples/s, median (min-max):", "",
             "| workload | rnnc fp32 | rnnc bf16 | hand-written PyTorch fp32 | bf16 / fp32 (paired) | rnnc fp32 / PyTorch (paired) "
             "| % of limit: rnnc fp32, bf16, PyTorch |", "|---|---|---|---|---|---|---|"]
    for key, w in part["workloads"].items():
        pct = w["percent_of_limit"]
        lines.append(f"| ({key}) {w['title']} | " + " | ".join(_span(w[name]) for name in SYSTEMS)
                     + f" | {_span(w['bf16_over_fp32'], 2)} | {_span(w['fp32_over_pytorch'], 2)} | "
                     + ", ".join(f"{pct[name]:.0f}%" for name in SYSTEMS) + " |")
    return lines


def _quality(part: dict) -> list[str]:
    lines = [f"Trained models, {part['date']}, {_load(part)}: `rnnc train` at each precision, seeds "
             f"{', '.join(str(s) for s in next(iter(part['specs'].values()))['seeds'])}; the kept model's validation metric "
             "(the restored best epoch's under early stopping), median (each seed's); untimed, under nice:", "",
             "| spec | metric | fp32 | bf16 | bf16 - fp32 |", "|---|---|---|---|---|"]
    for spec, e in part["specs"].items():
        accuracy = e["metric"].endswith("accuracy")
        scale, digits = (100, 1) if accuracy else (1, 4)

        def cell(p: dict, scale: float = scale, digits: int = digits) -> str:
            return f"{p['median'] * scale:.{digits}f} (" + ", ".join(f"{v * scale:.{digits}f}" for v in p["values"]) + ")"

        unit = " points" if accuracy else ""
        lines.append(f"| {spec} | {e['metric']}{' %' if accuracy else ''} | {cell(e['fp32'])} | {cell(e['bf16'])} | "
                     f"{e['difference']:+.{digits}f}{unit} |")
    return lines


def table(result: dict) -> str:
    """bench/bf16_training.py's tables: bf16 against fp32 training speed, and the trained models' validation metrics."""
    lines = [f"{result['cpu']} ({', '.join(result['isa'])}).", ""]
    for key in sorted(k for k in result if k.startswith("speed")):
        lines += [*_speed(result[key]), ""]
    if "quality" in result:
        lines += [*_quality(result["quality"]), ""]
    return "\n".join(lines).rstrip()
