"""The matrix products of rnnc's CPU recurrent layers, each run by the library that
computes it fastest on this machine.

Two routes compute a float32 product `a @ b` of 2-D CPU tensors: `torch` (torch's own
BLAS: MKL in the x86 wheels, which runs slower code on AMD processors) and `openblas`
(numpy's BLAS, OpenBLAS in numpy's wheels, called on the tensors' memory with no copy:
`np.matmul(a.numpy(), b.numpy(), out=out.numpy())`). `pick` returns the route for one
product of given shapes, layout and thread count; the recurrent layers pick once per
call and run it every step. Batched (3-D) products, other dtypes and anything numpy
cannot view stay on torch.

The choice, under `RNNC_GEMM=auto` (the default): the first time a machine meets a
product, both routes are timed on it (median of `REPS`) and `openblas` is chosen only
if it is at least `MARGIN` faster, so timing noise between two near-equal routes does
not decide. The choice is kept in a file, `$XDG_CACHE_HOME/rnnc/gemm-<key>.json`
(`~/.cache` without the variable), keyed by the CPU model, its flags and the library
versions, so every later run on the machine makes the same choice and training stays
deterministic for a seed (the routes round differently). `RNNC_GEMM=torch` or
`RNNC_GEMM=openblas` forces a route for every product (tests; a machine whose cache
should not be written).

`auto` considers `openblas` only on one thread (torch's intra-op count 1: the sharded
steps' threads, small models, `--threads 1`) and where threadpoolctl is installed (to
give OpenBLAS that count). On more threads the two libraries' thread pools contend:
OpenBLAS's threads spin after each product on the cores torch's OpenMP threads need
next, and on a 2-core EPYC a [64,128]x[128,512] torch product took 3.1 ms right after
a numpy product against 0.06-0.16 ms after a torch one (bench/README.md, "GEMM
choice"). Forced, `openblas` runs on every thread count.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import choice_file
from .choice_file import ChoiceFile

ROUTES = ("torch", "openblas")
ENV = "RNNC_GEMM"
REPS = 5
MARGIN = 0.9  # openblas must take at most this share of torch's time to be chosen

Product = Callable[..., Tensor]  # torch.mm's or torch.addmm's signature, out= included

_blas: dict[str, Any] = {"controller": None, "threads": None, "checked": False}
_routes: dict[tuple[Any, ...], str] = {}  # this process's choices by shapes and strides (no string key to build)


def setting() -> str:
    """`RNNC_GEMM`: auto (default), torch or openblas; anything else is a usage error."""
    return choice_file.setting(ENV, ROUTES)


def pick(a: Tensor, b: Tensor, bias: Tensor | None = None, out: Tensor | None = None) -> Product:
    """The fastest route for `bias + a @ b` (`torch.addmm`'s signature when `bias` is
    given, else `torch.mm`'s) at these shapes, strides and torch's thread count."""
    mode = setting()
    if mode == "torch" or (mode == "auto" and torch.get_num_threads() > 1) or not _viewable(a, b, bias, out):
        return torch.mm if bias is None else torch.addmm  # more than one thread: two thread pools on the same cores contend
    if mode == "openblas":
        return _openblas_mm if bias is None else _openblas_addmm
    route = _route("mm" if bias is None else "addmm", a, b, bias, False)
    if route == "openblas":
        return _openblas_mm if bias is None else _openblas_addmm
    return torch.mm if bias is None else torch.addmm


def pick_accumulate(out: Tensor, a: Tensor, b: Tensor) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """The fastest route for `out += a @ b` in place, called as `route(out, a, b)`."""
    mode = setting()
    if mode == "torch" or (mode == "auto" and torch.get_num_threads() > 1) or not _viewable(a, b, out):
        return _torch_accumulate
    if mode == "auto" and _route("+=", a, b, None, True) == "torch":
        return _torch_accumulate
    return _openblas_accumulate


def _route(kind: str, a: Tensor, b: Tensor, bias: Tensor | None, accumulate: bool) -> str:
    """`auto`'s route on one thread for this product: this process's, the cache file's,
    or measured now (torch where threadpoolctl is missing) and remembered."""
    fast = (kind, a.shape, a.stride(), b.shape, b.stride(), torch.get_num_threads())
    route = _routes.get(fast)
    if route is None:
        key = ("+=" if accumulate else "") + _key(a, b, bias)
        route = _store.get(key)
        if route is None:
            route = _measure(a, b, bias, accumulate) if _controller() is not None else "torch"
            _store.remember(key, route)
        _routes[fast] = route
    return route


def _torch_accumulate(out: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return out.addmm_(a, b)


def _openblas_accumulate(out: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """out += a @ b through numpy's BLAS (the product into a new array, then added)."""
    _match_threads()
    return out.add_(torch.from_numpy(np.matmul(_numpy(a), _numpy(b))))


def _viewable(*tensors: Tensor | None) -> bool:
    """Whether numpy can run the product on these tensors' memory as they are."""
    for t in tensors:
        if t is not None and not (t.is_cpu and t.dtype is torch.float32 and t.ndim <= 2 and not t.is_conj() and not t.is_neg()):
            return False
    a, b = tensors[0], tensors[1]
    return a is not None and b is not None and a.ndim == 2 and b.ndim == 2


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


def _openblas_mm(a: Tensor, b: Tensor, *, out: Tensor | None = None) -> Tensor:
    """torch.mm through numpy's BLAS, on the tensors' memory."""
    _match_threads()
    if out is None:
        out = torch.empty(a.shape[0], b.shape[1], dtype=a.dtype)
    np.matmul(_numpy(a), _numpy(b), out=_numpy(out))
    return out


def _openblas_addmm(bias: Tensor, a: Tensor, b: Tensor, *, out: Tensor | None = None) -> Tensor:
    """torch.addmm (beta = alpha = 1) through numpy's BLAS: the product, then the bias added."""
    return _openblas_mm(a, b, out=out).add_(bias)


def _controller() -> Any:
    """threadpoolctl's controller of numpy's BLAS, or None without threadpoolctl."""
    if not _blas["checked"]:
        _blas["checked"] = True
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return None
        _blas["controller"] = ThreadpoolController().select(user_api="blas")
    return _blas["controller"]


def _match_threads() -> None:
    """OpenBLAS's thread count set to torch's (where threadpoolctl can)."""
    threads = torch.get_num_threads()
    controller = _controller()
    if controller is not None and _blas["threads"] != threads:
        controller.limit(limits=threads)
        _blas["threads"] = threads


def _time(route: Product, args: tuple[Tensor, ...], out: Tensor) -> float:
    for _ in range(2):
        route(*args, out=out)
    times = []
    for _ in range(REPS):
        start = time.perf_counter()
        route(*args, out=out)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure(a: Tensor, b: Tensor, bias: Tensor | None, accumulate: bool = False) -> str:
    """Both routes timed on copies of the operands (same layout): the faster by `MARGIN`."""
    with torch.no_grad():
        a, b = a.detach().clone(memory_format=torch.preserve_format), b.detach().clone(memory_format=torch.preserve_format)
        out = torch.zeros(a.shape[0], b.shape[1])
        if accumulate:
            plain = _time(lambda x, y, out: _torch_accumulate(out, x, y), (a, b), out)
            blas = _time(lambda x, y, out: _openblas_accumulate(out, x, y), (a, b), out)
            return "openblas" if blas <= MARGIN * plain else "torch"
        args = (a, b) if bias is None else (bias.detach(), a, b)
        plain = _time(torch.mm if bias is None else torch.addmm, args, out)
        blas = _time(_openblas_mm if bias is None else _openblas_addmm, args, out)
    return "openblas" if blas <= MARGIN * plain else "torch"


def _key(a: Tensor, b: Tensor, bias: Tensor | None) -> str:
    return (f"{'addmm' if bias is not None else 'mm'} {list(a.shape)}{list(a.stride())} "
            f"{list(b.shape)}{list(b.stride())} threads={torch.get_num_threads()}")


@functools.cache
def machine() -> dict[str, str]:
    """What a choice depends on: the CPU model and flags, torch's, numpy's and its BLAS's versions."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())
    flags = next((hashlib.sha1(line.encode()).hexdigest()[:12] for line in lines if line.startswith("flags")), "")
    controller = _controller()
    blas = "" if controller is None else ", ".join(f"{p.internal_api} {p.version}" for p in controller.lib_controllers)
    return {"cpu": cpu, "flags": flags, "torch": torch.__version__, "numpy": np.__version__, "blas": blas}


_store = ChoiceFile("gemm", ROUTES, machine)


def cache_path() -> Path:
    """This machine's cache file of choices."""
    return _store.path()


def forget() -> None:
    """Drop this process's choices (tests; the cache file is read again on the next pick)."""
    _routes.clear()
    _store.forget()
