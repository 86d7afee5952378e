"""`export.quantize: int8`: the lowered model's weights stored as int8, at export time.

onnxruntime's dynamic quantisation (`onnxruntime.quantization.quantize_dynamic`) rewrites
`LSTM` to `DynamicQuantizeLSTM`, `MatMul` (per-step dense layers) to an integer product,
and `Gather` (embeddings) to a lookup in an int8 table: each weight tensor becomes
int8 with one scale, and the activations are quantised on the fly, batch by batch, at
run time. The graph keeps its float32 inputs and outputs and its metadata (plus
`quantize: int8`); the quantised kernels are part of onnxruntime, so `rnnc.runtime`
runs the model with nothing more installed. `GRU`, `RNN`, `Gemm` (a dense layer on the
last state) and convolutions stay float32: onnxruntime has no integer kernel for the
first three, and int8 convolutions would need calibration data (static quantisation).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import onnx
from onnx import helper

# What to quantise: the operators with a dynamic int8 kernel in onnxruntime's CPU
# provider that rnnc's lowering emits (Conv would need static, calibrated quantisation).
OPERATORS = ["LSTM", "MatMul", "Gather"]


class _Quiet(logging.Filter):
    """Drops the quantiser's advice to run its pre-processing (shape inference and graph
    optimisation, which the session does itself at load time)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


def quantize_int8(proto: onnx.ModelProto) -> onnx.ModelProto:
    """`proto` with int8 weights (dynamic quantisation); metadata kept, `quantize` added."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # imports onnx; export-time only

    quiet = _Quiet()
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        with tempfile.TemporaryDirectory(prefix="rnnc-quantize-") as folder:
            out = Path(folder) / "int8.onnx"
            quantize_dynamic(proto, out, op_types_to_quantize=OPERATORS, weight_type=QuantType.QInt8)
            quantized = onnx.load(out)
    finally:
        root.removeFilter(quiet)
    props = {p.key: p.value for p in proto.metadata_props}
    props["quantize"] = "int8"
    del quantized.metadata_props[:]
    helper.set_model_props(quantized, props)
    quantized.producer_name, quantized.producer_version = proto.producer_name, proto.producer_version
    return quantized
