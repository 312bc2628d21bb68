"""imc-sim's optional compiled passes: plain C libraries built at install (where a C compiler is
present) beside the module that wraps them, loaded with ctypes; each wrapper falls back to torch
operations without its library. They take CPU tensors only."""

from __future__ import annotations

import ctypes
import importlib.machinery
from pathlib import Path

from torch import Tensor

PTR, I64, F32, INT, U64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int, ctypes.c_uint64


def load_library(module_file: str, stem: str, signatures: dict[str, list]) -> ctypes.CDLL | None:
    """The library ``stem`` built beside ``module_file`` with each function's argument types
    (``signatures``, all returning void), or None where it was not built."""
    here = Path(module_file).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = here / f"{stem}{suffix}"
        if path.is_file():
            lib = ctypes.CDLL(str(path))
            for name, argtypes in signatures.items():
                fn = getattr(lib, name)
                fn.argtypes, fn.restype = argtypes, None
            return lib
    return None


def require_cpu(*tensors: Tensor | None) -> None:
    """Refuse a tensor off the CPU before any pointer of it reaches C."""
    for t in tensors:
        if t is not None and t.device.type != "cpu":
            raise RuntimeError(f"the compiled passes take CPU tensors only, got one on {t.device}; tensors "
                               "elsewhere take the torch path")


def pointer(t: Tensor | None) -> int | None:
    """The data pointer of ``t`` (None for None: a NULL in C)."""
    return None if t is None else t.data_ptr()
