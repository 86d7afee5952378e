"""Reading and writing the Open Inference Protocol's tensors (KServe v2 / Triton HTTP).

`read_request(body, header_length)` parses an infer request: JSON alone, or with the
binary tensor extension (`Inference-Header-Content-Length`: the JSON's size, each
binary input's bytes after it in order, `parameters.binary_data_size` giving their
sizes; `parameters.binary_data_output` asks every output in binary). Each input
becomes a numpy array of its datatype and shape; anything else is a `BadRequest`
naming the field and what was expected. `write_response` gives the response body and
headers: JSON tensors, or binary ones for the outputs a client asks as `binary_data`
(as tritonclient does by default).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "INT16": np.int16,
          "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_, "FP16": np.float16}
MAX_ELEMENTS = 50_000_000  # a shape asking for more than this is refused before any allocation


class BadRequest(Exception):
    """A request the server refuses: `status` (4xx) and one line."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except BadRequest:
        raise
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"the body is not valid JSON: {err}") from None
    except RecursionError:
        raise BadRequest("the body nests lists or objects too deeply to be a tensor") from None


def _no_constant(name: str) -> Any:
    raise BadRequest(f"the body holds {name}; NaN and infinities are not data")


def read_request(body: bytes, header_length: str | None) -> tuple[dict[str, np.ndarray], list[dict[str, Any]] | None, bool]:
    """(arrays by input name, the `outputs` the client asked for or None, whether it
    asked every output in binary)."""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise BadRequest(f"Inference-Header-Content-Length must be an integer, got {header_length!r}") from None
        if not 0 < size <= len(body):
            raise BadRequest(f"Inference-Header-Content-Length {size} is outside the body's {len(body)} bytes")
        request, binary = parse_json(body[:size]), body[size:]
    else:
        request, binary = parse_json(body), b""
    if not isinstance(request, dict):
        raise BadRequest("the body must be a JSON object with 'inputs': [{name, shape, datatype, data}]")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("'inputs' must be a non-empty list of {name, shape, datatype, data}")
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for i, entry in enumerate(inputs):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise BadRequest(f"inputs[{i}] must be an object with a string 'name'")
        name = entry["name"]
        if name in arrays:
            raise BadRequest(f"inputs[{i}]: input '{name}' is given twice")
        arrays[name], used = _tensor(entry, f"inputs[{i}] ('{name}')", binary, offset)
        offset += used
    if offset != len(binary):
        raise BadRequest(f"the body has {len(binary) - offset} bytes after its tensors' binary data")
    outputs = request.get("outputs")
    if outputs is not None and (not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs)):
        raise BadRequest("'outputs' must be a list of {name}")
    parameters = request.get("parameters")
    all_binary = not outputs and isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    return arrays, outputs, all_binary


def _tensor(entry: dict[str, Any], where: str, binary: bytes, offset: int) -> tuple[np.ndarray, int]:
    shape, datatype = entry.get("shape"), entry.get("datatype")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequest(f"{where}: 'shape' must be a list of non-negative integers, got {json.dumps(shape)}")
    if datatype not in DTYPES:
        raise BadRequest(f"{where}: 'datatype' must be one of {', '.join(DTYPES)}, got {json.dumps(datatype)}")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise BadRequest(f"{where}: shape {shape} holds {count:,} values, more than {MAX_ELEMENTS:,}", 413)
    dtype = np.dtype(DTYPES[datatype])
    parameters = entry.get("parameters") or {}
    if isinstance(parameters, dict) and "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if not isinstance(size, int) or size != count * dtype.itemsize or offset + size > len(binary):
            raise BadRequest(f"{where}: binary_data_size {size} does not match shape {shape} of {datatype} "
                             f"({count * dtype.itemsize} bytes) within the body")
        return np.frombuffer(binary, dtype.newbyteorder("<"), count, offset).reshape(shape).astype(dtype), size
    if "data" not in entry:
        raise BadRequest(f"{where}: no 'data' (a flat or nested list of {count} numbers)")
    flat = _flatten(entry["data"], where)
    if len(flat) != count:
        raise BadRequest(f"{where}: 'data' holds {len(flat)} values, shape {shape} needs {count}")
    allowed = ALLOWED["BOOL" if datatype == "BOOL" else dtype.kind]
    bad = None if set(map(type, flat)) <= allowed else next(v for v in flat if type(v) not in allowed)
    if bad is not None:
        raise BadRequest(f"{where}: 'data' holds {json.dumps(bad)}, not a {datatype} value")
    try:
        return np.asarray(flat, dtype=dtype).reshape(shape), 0
    except OverflowError:
        raise BadRequest(f"{where}: 'data' holds a value outside {datatype}'s range") from None


# the JSON types a tensor's values may have, by datatype kind (bool is no number here)
ALLOWED: dict[str, set[type]] = {"BOOL": {bool}, "i": {int}, "u": {int}, "f": {int, float}}


def _flatten(data: Any, where: str) -> list[Any]:
    """The values of a nested list in order (a list of plain values is copied whole)."""
    if not isinstance(data, list):
        raise BadRequest(f"{where}: 'data' must be a list of numbers, got {type(data).__name__}")
    flat: list[Any] = []
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if type(item) is not list:
            flat.append(item)
        elif list in set(map(type, item)):
            stack.extend(reversed(item))
        else:
            flat.extend(item)
    return flat


def write_response(model: str, arrays: dict[str, np.ndarray], asked: list[dict[str, Any]] | None,
                   all_binary: bool = False) -> tuple[bytes, dict[str, str]]:
    """(body, extra headers) for these output arrays, in `asked`'s order when given;
    every one in binary with `all_binary`."""
    if all_binary:
        asked = [{"name": name, "parameters": {"binary_data": True}} for name in arrays]
    names = [o["name"] for o in asked] if asked else list(arrays)
    if unknown := [n for n in names if n not in arrays]:
        raise BadRequest(f"unknown output '{unknown[0]}'; the model gives: {', '.join(arrays)}")
    binary = {o["name"] for o in asked or [] if (o.get("parameters") or {}).get("binary_data")}
    outputs, chunks = [], []
    for name in names:
        value = np.ascontiguousarray(arrays[name])
        datatype = "INT64" if value.dtype.kind in "iu" else "FP32"
        value = value.astype(np.int64 if datatype == "INT64" else np.float32)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(value.shape)}
        if name in binary:
            chunk = value.astype(value.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = value.ravel().tolist()
        outputs.append(entry)
    header = json.dumps({"model_name": model, "outputs": outputs}).encode()
    if not chunks:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(chunks), {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}
