"""Were these weights trained, or are they what a framework's initializer drew (``weights=None``)?

Two kinds of evidence, both from a bounded sample of the data. Batch norms start with
running mean 0 and variance 1 exactly, and any training step moves them: they decide
where the model has them. Kernels start
as draws from a uniform, normal or truncated normal distribution whose scale follows from
the tensor's fans (Glorot, He, LeCun, PyTorch's default) or is a fixed constant (0.01,
0.02, ...); trained kernels leave that scale and grow heavy tails, which no initializer has.
A file that matches neither picture gets no verdict: an unknown initializer must not read
as training.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from math import prod, sqrt

import numpy as np

from .. import dtypes
from ..errors import WeightkitError
from ..model import Model, Tensor
from .canonical import Unit, canonical_shape, units

__all__ = ["Training", "training_state", "SAMPLE_BYTES"]

#: At most this much tensor data is read (the rest of identify reads metadata only).
SAMPLE_BYTES = 16 * 2**20
_MAX_KERNELS = 48
_MAX_VALUES = 2**16  # of one kernel, for its distribution
_MIN_SIZE = 512  # fewer values than this say little about their distribution
# Initializers' standard deviations as a factor over 1/sqrt(fan): VarianceScaling's scales
# 1/3 (PyTorch's default Linear/Conv, LeCun uniform over 3), 1 (Glorot, LeCun), 2 (He).
_FAN_SCALES = (1 / 3, 1.0, 2.0)
# Fixed standard deviations frameworks and model definitions use (VGG, ViT, Inception, ...).
_FIXED_STDS = (0.001, 0.01, 0.02, 0.1)
# Excess kurtosis: uniform -1.2, 2σ-truncated normal about -0.8, normal 0. Above this the tails
# are heavier than any initializer draws.
_HEAVY_TAILS = 1.0


@dataclass
class Training:
    """``trained`` is True, False (freshly initialized), or None where the sample cannot tell."""

    trained: bool | None
    evidence: list[str] = field(default_factory=list)


def training_state(model: Model, *, sample_bytes: int = SAMPLE_BYTES) -> Training:
    """Whether ``model``'s weights look trained, with the evidence, from at most ``sample_bytes`` of data."""
    budget = _Budget(sample_bytes)
    evidence: list[str] = []
    pieces = units(model)
    norms_at_start, norms_moved = _batch_norm_statistics(pieces, budget)
    total_norms = norms_at_start + norms_moved
    if total_norms:
        if norms_moved:
            evidence.append(f"{norms_moved} of {total_norms} batch norms hold statistics that training moved "
                            "(mean 0 and variance 1 at initialization)")
        else:
            evidence.append(f"all {total_norms} batch norms hold their initial statistics (mean 0, variance 1)")
    fitting, heavy, sampled = _kernel_evidence(pieces, budget)
    if sampled:
        evidence.append(f"{fitting} of {sampled} sampled kernels are distributed as an initializer draws them; "
                        f"{heavy} have heavier tails than any initializer")
    if budget.failures:
        evidence.append(f"{budget.failures} tensors could not be read: {budget.first_failure}")
    return Training(_verdict(total_norms, norms_moved, fitting, heavy, sampled), evidence)


def _verdict(norms: int, norms_moved: int, fitting: int, heavy: int, sampled: int) -> bool | None:
    kernels_fresh = sampled > 0 and fitting >= 0.8 * sampled
    kernels_trained = sampled > 0 and heavy >= 0.5 * sampled and fitting <= 0.2 * sampled
    if norms:
        # Statistics move only when data goes through the model in training mode: a file whose kernels are
        # still near their initial draw (a short run, a small learning rate) was trained all the same.
        if norms_moved:
            return True
        return None if kernels_trained else False
    if kernels_fresh:
        return False
    if kernels_trained:
        return True
    return None


class _Budget:
    """Reads tensors until the sample's bytes are spent; a tensor that cannot be read is counted, not raised."""

    def __init__(self, limit: int):
        self.left = limit
        self.failures = 0
        self.first_failure = ""

    def read(self, tensor: Tensor) -> np.ndarray | None:
        if tensor.loader is None or not dtypes.is_float(tensor.dtype) or tensor.nbytes > self.left:
            return None
        self.left -= tensor.nbytes
        try:
            return np.asarray(tensor.read(), dtype=np.float64)
        except (WeightkitError, ValueError, TypeError) as exc:
            self.failures += 1
            self.first_failure = self.first_failure or f"{tensor.name}: {exc}"
            return None


def _batch_norm_statistics(pieces: list[Unit], budget: _Budget) -> tuple[int, int]:
    """How many batch norms hold their initial statistics, and how many hold others."""
    at_start = moved = 0
    for unit in pieces:
        mean, var = unit.tensors.get("running_mean"), unit.tensors.get("running_var")
        if mean is None or var is None:
            continue
        mean_values, var_values = budget.read(mean), budget.read(var)
        if mean_values is None or var_values is None:
            continue
        if not mean_values.any() and (var_values == 1).all():
            at_start += 1
        else:
            moved += 1
    return at_start, moved


def _kernel_evidence(pieces: list[Unit], budget: _Budget) -> tuple[int, int, int]:
    """Of an even sample of the model's kernels: how many fit an initializer, how many are heavy-tailed."""
    fitting = heavy = sampled = 0
    for tensor in _sample(_kernels(pieces)):
        values = budget.read(tensor)
        if values is None:
            continue
        sampled += 1
        values = values.ravel()
        if values.size > _MAX_VALUES:  # an even stride over the tensor: enough for its moments, and cheap
            values = values[::values.size // _MAX_VALUES + 1]
        std = float(values.std())
        if std == 0:
            continue
        excess_kurtosis = float(np.mean(((values - values.mean()) / std) ** 4)) - 3
        if excess_kurtosis > _HEAVY_TAILS:
            heavy += 1
        elif _fits_initializer(values, std, excess_kurtosis, tensor):
            fitting += 1
    return fitting, heavy, sampled


def _kernels(pieces: list[Unit]) -> list[Tensor]:
    return [t for unit in pieces if unit.kind != "batch_norm"
            for t in unit.tensors.values() if t.ndim >= 2 and t.size >= _MIN_SIZE]


def _sample(kernels: list[Tensor]) -> Iterator[Tensor]:
    """At most `_MAX_KERNELS`, spread evenly from the first layer to the last."""
    if len(kernels) <= _MAX_KERNELS:
        yield from kernels
        return
    step = len(kernels) / _MAX_KERNELS
    for index in range(_MAX_KERNELS):
        yield kernels[int(index * step)]


def _fits_initializer(values: np.ndarray, std: float, excess_kurtosis: float, tensor: Tensor) -> bool:
    """Centred, light-tailed, and at a scale some initializer gives a tensor of this shape."""
    size = values.size
    # The sampling error of a standard deviation, with room for the truncated and uniform cases.
    tolerance = max(0.05, 4 * sqrt((excess_kurtosis + 2) / (4 * size)))
    if abs(float(values.mean())) > 4 * std / sqrt(size) + 1e-3 * std:
        return False
    if excess_kurtosis < -1.4:  # lighter than uniform: constants, two values
        return False
    return any(abs(std / candidate - 1) <= tolerance for candidate in _initial_stds(tensor))


def _initial_stds(tensor: Tensor) -> Iterator[float]:
    yield from _FIXED_STDS
    for fan in _fans(tensor):
        for scale in _FAN_SCALES:
            yield sqrt(scale / fan)


def _fans(tensor: Tensor) -> set[float]:
    """Fan in, fan out and their mean, as PyTorch counts them and, for a Keras depthwise kernel, as Keras does."""
    shape = canonical_shape(tensor)
    receptive = prod(shape[2:])
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    fans = {fan_in, fan_out, (fan_in + fan_out) / 2}
    if tensor.layout == "HWCM" and len(tensor.shape) == 4:
        height, width, channels, multiplier = tensor.shape
        keras_in, keras_out = height * width * channels, height * width * multiplier
        fans |= {keras_in, keras_out, (keras_in + keras_out) / 2}
    return {fan for fan in fans if fan > 0}
