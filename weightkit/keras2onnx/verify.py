"""Checking a conversion against Keras itself: the same file, the same seeded inputs, both outputs compared.

Only where Keras is importable (it is never needed to convert). Keras loads the
file in safe mode (``compile=False``; KERAS_BACKEND defaults to torch), so a file
whose Lambda code Keras would have to run is skipped, not run. Anything that stops
Keras from loading the file makes the check skipped, with the reason, never failed.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["Verification", "verify", "TOLERANCE"]

#: Largest accepted difference: absolute, or relative to the largest output value where that exceeds 1.
TOLERANCE = 1e-4
_UNKNOWN_SPATIAL = 64


@dataclass
class Verification:
    """The outcome of comparing ONNX Runtime with Keras on one seeded batch.

    Attributes:
        ran: False when verification was skipped (``reason`` says why).
        max_abs_diff: largest absolute difference over all outputs.
        max_abs_output: largest absolute Keras output value (the scale of the tolerance).
        passed: ``max_abs_diff <= tolerance * max(1, max_abs_output)``; None when skipped.
    """

    ran: bool
    reason: str = ""
    max_abs_diff: float | None = None
    max_abs_output: float | None = None
    tolerance: float = TOLERANCE
    passed: bool | None = None
    keras: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(path: str | os.PathLike[str], onnx_model: Any, *, arch: str | os.PathLike[str] | None = None,
           nchw: bool = False, tolerance: float = TOLERANCE, seed: int = 0, batch: int = 2) -> Verification:
    """Run Keras (loading ``path``, or ``arch`` plus ``path``'s weights) and ONNX Runtime on the same input.

    Args:
        onnx_model: the converted ModelProto, or the path of the written ``.onnx`` file.
    """
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except Exception as exc:  # noqa: BLE001  # ImportError, or any error of a backend that fails to start: reported
        return Verification(False, f"Keras is not importable ({type(exc).__name__}: {_first_line(exc)})")
    try:
        model = _load_keras(keras, path, arch)
    except Exception as exc:  # noqa: BLE001  # Keras raises any type from a user's config: reported, not a crash
        return Verification(False, f"Keras {keras.__version__} cannot load the file "
                                   f"({type(exc).__name__}: {_first_line(exc)})")
    label = f"Keras {keras.__version__} ({keras.backend.backend()} backend)"
    session = _session(onnx_model)
    inputs = _inputs(session, nchw, seed, batch)
    try:
        expected = _keras_outputs(keras, model, [x for _, x in inputs], nchw)
    except Exception as exc:  # noqa: BLE001  # a user's model can fail in Keras with any type: reported
        return Verification(False, f"{label} cannot run the model ({type(exc).__name__}: {_first_line(exc)})")
    actual = session.run(None, dict(inputs))
    return _compare(expected, actual, tolerance, label)


def _load_keras(keras: Any, path: Any, arch: Any) -> Any:
    if arch is None:
        return keras.saving.load_model(os.fspath(path), compile=False)
    with open(arch, "rb") as handle:
        is_json = handle.read(64).lstrip()[:1] in (b"{", b"[")
    if is_json:
        with open(arch, encoding="utf-8") as handle:
            model = keras.models.model_from_json(handle.read())
    else:
        model = keras.saving.load_model(os.fspath(arch), compile=False)
    model.load_weights(os.fspath(path))
    return model


def _session(onnx_model: Any) -> Any:
    import onnxruntime

    source = onnx_model if isinstance(onnx_model, (str, os.PathLike)) else onnx_model.SerializeToString()
    return onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])


def _inputs(session: Any, nchw: bool, seed: int, batch: int) -> list[tuple[str, np.ndarray]]:
    """Seeded standard-normal inputs of the graph's shapes (symbolic batch → ``batch``)."""
    rng = np.random.default_rng(seed)
    inputs = []
    for info in session.get_inputs():
        shape = [d if isinstance(d, int) else (batch if axis == 0 else _UNKNOWN_SPATIAL)
                 for axis, d in enumerate(info.shape)]
        inputs.append((info.name, rng.standard_normal(shape).astype(np.float32)))
    return inputs


def _keras_outputs(keras: Any, model: Any, arrays: list[np.ndarray], nchw: bool) -> list[np.ndarray]:
    arrays = [_to_keras(x) if nchw else x for x in arrays]
    result = model(arrays[0] if len(arrays) == 1 else arrays, training=False)
    if isinstance(result, dict):
        result = list(result.values())
    outputs = result if isinstance(result, (list, tuple)) else [result]
    converted = [np.asarray(keras.ops.convert_to_numpy(o)) for o in outputs]
    return [_from_keras(o) if nchw else o for o in converted]


def _to_keras(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, 1, -1) if x.ndim >= 3 else x


def _from_keras(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, -1, 1) if x.ndim >= 3 else x


def _compare(expected: list[np.ndarray], actual: list[np.ndarray], tolerance: float, label: str) -> Verification:
    if len(expected) != len(actual):
        return Verification(True, f"Keras gives {len(expected)} outputs, ONNX {len(actual)}", passed=False, keras=label)
    worst, scale = 0.0, 0.0
    for want, got in zip(expected, actual):
        if want.shape != got.shape:
            return Verification(True, f"output shapes differ: Keras {want.shape}, ONNX {got.shape}", passed=False,
                                keras=label)
        worst = max(worst, float(np.max(np.abs(want.astype(np.float64) - got))) if want.size else 0.0)
        scale = max(scale, float(np.max(np.abs(want))) if want.size else 0.0)
    passed = bool(worst <= tolerance * max(1.0, scale))
    return Verification(True, "", worst, scale, tolerance, passed, label)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
