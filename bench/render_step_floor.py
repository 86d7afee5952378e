"""bench/README.md's tables for bench/step_floor.py's results (found by bench/render.py)."""

from __future__ import annotations

PREFIX = "step_floor"


def _range(r: dict[str, float], digits: int = 2) -> str:
    return f"{r['median']:.{digits}f} ({r['min']:.{digits}f}-{r['max']:.{digits}f})"


def table(result: dict) -> str:
    """Batch-1 time per step: onnxruntime's LSTM against the machine's floors, in us and cycles."""
    floors = result["floors"]
    ghz = floors["clock_ghz"]["used"] if floors else None
    head = (f"{result['when']}; {result['cpu']}, {result['cores']} cores, {', '.join(result['isa'])}; "
            f"onnxruntime {result['versions']['onnxruntime']}, torch {result['versions']['torch']}; 1 thread; load average "
            f"{', '.join(map(str, result['load_before']))} before, {', '.join(map(str, result['load_after']))} after; "
            f"{result['seconds']:.0f} s{' (--quick)' if result['quick'] else ''}.")
    lines = [head, ""]
    h = result["headline_ms"]
    eager = h["torch"]["median"]
    lines.append(f"The workload at batch 1, ms per call: rnnc {_range(h['rnnc'], 3)}, rnnc int8 {_range(h['rnnc int8'], 3)}, "
                 f"PyTorch eager {_range(h['torch'], 3)} (eager / rnnc {eager / h['rnnc']['median']:.2f}x, "
                 f"eager / rnnc int8 {eager / h['rnnc int8']['median']:.2f}x).")
    s = result["steps"]
    lines.append(f"Over {', '.join(map(str, s['steps']))} steps (units 128, batch 1), the least-squares line through the median "
                 f"call: onnxruntime's LSTM {s['onnxruntime']['per_step_us']:.2f} us per step + {s['onnxruntime']['fixed_us']:.1f} us "
                 f"a call; torch.nn.LSTM {s['torch']['per_step_us']:.2f} us per step + {s['torch']['fixed_us']:.1f} us a call.")
    if floors:
        streams = ", ".join(f"{name} {v['gb_per_s']['max']:.0f} GB/s ({v['bytes_per_cycle']:.1f} B/cycle)"
                            for name, v in floors["stream"].items())
        clock = floors["clock_ghz"]
        lines.append(f"Floors: clock {ghz:.2f} GHz (the fastest 1 ms sample of dependent adds; median {clock['median']:.2f}, "
                     f"slowest {clock['min']:.2f}: how shared the core was); {floors['fma_per_cycle']['max']:.1f} float32 FMAs "
                     f"per cycle at most; reads: {streams}.")
    n = result["numpy_sgemv_us"]
    lines.append(f"numpy's sgemv (OpenBLAS), [1, 128] x [128, 512]: {_range(n['128x512'])} us a call, of which ~{n['1x16']['median']:.2f} "
                 "is a call's own cost (a [1, 1] x [1, 16] product).")
    lines += ["", "Time per step at batch 1, us (median, 10th-90th percentile; cycles at the measured clock):", ""]
    rows = ["| units | recurrent weights | onnxruntime LSTM | cycles | C matvec float32 | cycles | C matvec bfloat16 | "
            "onnxruntime int8 LSTM | weights / onnxruntime step | ORT / C float32 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["units"]:
        ort_us = row["onnxruntime_us"]["median"]
        c32 = row.get("c_fp32_us")
        c16 = row.get("c_bf16_us")
        def cycles(us: float) -> str:
            return f"{us * ghz * 1e3:,.0f}" if ghz else "-"
        ratio = f"{ort_us / c32['median']:.2f}x" if c32 else "-"
        rate = f"{row['weights_kib'] * 1024 / ort_us / 1e3:.0f} GB/s"
        rows.append(f"| {row['units']} | {row['weights_kib']:,} KiB | {_range(row['onnxruntime_us'])} | {cycles(ort_us)} | "
                    f"{_range(c32) if c32 else '-'} | {cycles(c32['median']) if c32 else '-'} | {_range(c16) if c16 else '-'} | "
                    f"{_range(row['onnxruntime_int8_us']) if 'onnxruntime_int8_us' in row else '-'} | {rate} | {ratio} |")
    lines += rows
    lines += ["", "onnxruntime's LSTM step at units 128 by batch size, us per step (median, 10th-90th percentile), against "
              "the step's recurrent product alone ([batch, 128] x [128, 512], 1 thread: OpenBLAS through numpy, and onnxruntime's "
              "MLAS in a graph of ten such MatMuls):", "",
              "| batch | LSTM step | product alone, OpenBLAS | product alone, MLAS | LSTM step per sequence | "
              "the rest (gates, bookkeeping) |", "|---|---|---|---|---|---|"]
    for b in result["batch"]:
        step = b["onnxruntime_us"]["median"]
        gemm = min(b["sgemm_us"]["median"], b["mlas_us"]["median"]) if "mlas_us" in b else b["sgemm_us"]["median"]
        mlas = _range(b["mlas_us"]) if "mlas_us" in b else "-"
        lines.append(f"| {b['batch']} | {_range(b['onnxruntime_us'])} | {_range(b['sgemm_us'])} | {mlas} | {step / b['batch']:.2f} | "
                     f"{max(0.0, step - gemm) / step:.0%} |")
    return "\n".join(lines)
