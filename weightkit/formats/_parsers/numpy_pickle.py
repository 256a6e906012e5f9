"""Numpy scalars and arrays inside checkpoints (``best_acc`` as ``np.float64``), built without numpy's unpickling.

Training checkpoints often hold numpy values beside their tensors. Pickle rebuilds
them by calling ``numpy.core.multiarray.scalar``/``_reconstruct`` and setting state on
``numpy.dtype``; here those names map to builders that accept only plain numeric and
boolean dtypes and build the value from its bytes, with sizes checked first.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ...errors import UnsafeFileError
from .unpickler import Allowlist, Global, shown

__all__ = ["NUMPY_ALLOWLIST", "NumpyDtype", "NumpyArray"]

_SAFE_CODE = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248]|c(8|16))\Z")


class NumpyDtype:
    """``numpy.dtype(code)`` for a plain numeric code; BUILD may set its byte order."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True):
        if isinstance(code, str) and code.lstrip("<>|=").startswith("O"):
            raise UnsafeFileError(f"the pickle builds a numpy array of Python objects (dtype {shown(code)!r}); "
                                  "refused: unpickling its items could run code", hint="the file may be malicious")
        if not isinstance(code, str) or not _SAFE_CODE.match(code):
            raise ValueError(f"numpy dtype {shown(code)!r} is not a plain numeric type")
        self.dtype = np.dtype(code)

    def __pickle_build__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise ValueError("numpy dtype state is malformed")
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


class NumpyArray:
    """An ndarray from ``_reconstruct`` plus BUILD ``(version, shape, dtype, fortran, bytes)``."""

    def __init__(self, *args: Any):
        self.array: np.ndarray | None = None

    def __pickle_build__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise ValueError("numpy array state is malformed")
        _, shape, dtype, fortran, data = state
        if not isinstance(dtype, NumpyDtype) or not isinstance(data, bytes | bytearray):
            raise ValueError("numpy array state holds no plain data")
        if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
            raise ValueError("numpy array shape is malformed")
        if math.prod(shape) * dtype.dtype.itemsize != len(data):
            raise ValueError("numpy array data does not match its shape")
        flat = np.frombuffer(bytes(data), dtype=dtype.dtype)
        self.array = flat.reshape(shape, order="F" if fortran else "C")

    def __repr__(self) -> str:
        return "<ndarray>" if self.array is None else f"<ndarray {self.array.dtype}{list(self.array.shape)}>"


def _scalar(dtype: Any, data: Any) -> bool | int | float | complex:
    if not isinstance(dtype, NumpyDtype) or not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise ValueError("numpy scalar is not a plain value of its dtype")
    return np.frombuffer(data, dtype=dtype.dtype)[0].item()


def _reconstruct(cls: Any, shape: Any = (0,), typecode: Any = b"b") -> NumpyArray:
    if not (isinstance(cls, Global) and cls.qualname == "numpy.ndarray"):
        raise ValueError("numpy _reconstruct of something other than ndarray")
    return NumpyArray()


def _numpy_allowlist() -> Allowlist:
    allow = Allowlist()
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allow.add(module, "scalar", _scalar)
        allow.add(module, "_reconstruct", _reconstruct)
    allow.add("numpy", "dtype", NumpyDtype)
    allow.add("numpy", "ndarray")
    return allow


#: numpy names a checkpoint may use for plain scalars and arrays.
NUMPY_ALLOWLIST = _numpy_allowlist()
