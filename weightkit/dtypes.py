"""Element types by one name across formats: numpy's names, ml_dtypes' for the rest.

Files carry types numpy lacks (bfloat16, float8 kinds, 4-bit types, quantized
integers); weightkit names them as strings so that looking at a file never needs
those types to exist, and turns them into numpy dtypes only when data is read.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BITS", "bits_of", "nbytes_of", "to_numpy", "from_numpy", "is_float"]

#: Bits per element of every type weightkit names.
BITS: dict[str, int] = {
    "bool": 8,
    "uint8": 8, "int8": 8, "uint16": 16, "int16": 16,
    "uint32": 32, "int32": 32, "uint64": 64, "int64": 64,
    "float16": 16, "bfloat16": 16, "float32": 32, "float64": 64,
    "complex32": 32, "complex64": 64, "complex128": 128,
    "float8_e4m3fn": 8, "float8_e5m2": 8, "float8_e4m3fnuz": 8,
    "float8_e5m2fnuz": 8, "float8_e8m0fnu": 8,
    "float6_e2m3fn": 6, "float6_e3m2fn": 6, "float4_e2m1fn": 4,
    "int4": 4, "uint4": 4, "int2": 2, "uint2": 2,
    "qint8": 8, "quint8": 8, "qint32": 32, "quint4x2": 8, "quint2x4": 8,
    "string": 0,
}

_ML_DTYPES = {
    "bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
    "float8_e8m0fnu", "float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn", "int4", "uint4",
    "int2", "uint2",
}


def bits_of(dtype: str) -> int:
    """Bits one element of ``dtype`` takes in a file (0 when unknown or variable)."""
    return BITS.get(dtype, 0)


def nbytes_of(dtype: str, count: int) -> int:
    """Bytes that ``count`` elements of ``dtype`` take, packed (sub-byte types round up)."""
    return (bits_of(dtype) * count + 7) // 8


def is_float(dtype: str) -> bool:
    """True for every floating-point type, including bfloat16 and the float8 kinds."""
    return dtype.startswith(("float", "bfloat", "complex"))


def to_numpy(dtype: str) -> np.dtype:
    """The numpy dtype for ``dtype``; types numpy lacks come from ml_dtypes.

    Raises:
        KeyError: for types with no numpy equivalent (quantized, complex32).
    """
    if dtype in _ML_DTYPES:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, dtype))
    if dtype in ("string", "complex32") or dtype.startswith(("qint", "quint")):
        raise KeyError(dtype)
    return np.dtype(dtype)


def from_numpy(dtype: np.dtype) -> str:
    """weightkit's name for a numpy (or ml_dtypes) dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind in "SUO":
        return "string"
    return dtype.name
