"""Checking a conversion against Keras itself: the same seeded inputs through Keras and ONNX Runtime, outputs compared.

Only where Keras is importable (it is never needed to convert). Keras never sees code from the
file, whatever its version (Keras before 3.11.3 ran a legacy ``.h5`` Lambda's bytecode even in
safe mode, CVE-2025-9905): ``keras.saving.load_model`` is never called. The model is rebuilt from
the config weightkit read, sanitized first: every Lambda weightkit knows
(`weightkit.formats.keras.lambdas`) becomes weightkit's own implementation, passed to Keras as a
custom object, and a config that names any other code (another Lambda, Python code, a class or
function from a module outside Keras, Keras's layers that wrap foreign code) is refused with the
reason before Keras builds anything. Within Keras itself only the parts that build layers are
accepted: classes from its layer, model, op, initializer, regularizer, constraint and dtype-policy
modules, functions from its activations, losses and metrics; the rest of Keras is refused too
(``keras.config.enable_unsafe_deserialization``, CVE-2025-9906; ``keras.utils.get_file``,
CVE-2025-8747; ``TFSMLayer``, which loads a SavedModel the file names, CVE-2026-1462). Keras then
loads the file's weights into it, which reads data only.

The test batch is built from the graph's declared input shapes; a batch of more than
``limits.VERIFY_BYTES`` (an 8 KB file can declare (None, 40000, 40000, 1): 23.8 GiB) is refused
before anything is allocated.

Agreement is relative: the largest difference over the largest absolute Keras value of the same
output (a random-init network whose outputs are 1e-11 passes any absolute test). Where the
installed Keras is known to compute a layer differently from the TensorFlow semantics the ONNX
follows, the result names those layers. Anything that stops Keras from building or running the
model makes the check skipped, with the reason, never failed.
"""

from __future__ import annotations

import builtins
import copy
import math
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import limits
from ..formats.keras import ConfigLayer, infer_shapes
from ..formats.keras.lambdas import known_lambda, lambda_problem
from ..model import Dim
from .padding import window_pads
from .source import open_source

__all__ = ["Verification", "Difference", "verify", "TOLERANCE", "SCALE_FLOOR"]

#: Largest accepted difference, relative to the largest absolute value of the same Keras output.
TOLERANCE = 1e-4
#: The smallest scale a difference is measured against: float32's smallest normal number.
SCALE_FLOOR = float(np.finfo(np.float32).tiny)
_UNKNOWN_SPATIAL = 64
# Keras layers that run code or load a model the file supplies
_CODE_LAYERS = frozenset({"TorchModuleWrapper", "JaxLayer", "FlaxLayer", "TFSMLayer"})
# The Keras modules whose classes (and, for functions, whose functions) build a model and nothing else.
_CLASS_MODULES = ("layers", "models", "ops", "initializers", "regularizers", "constraints", "dtype_policies",
                  "quantizers")
_FUNCTION_MODULES = ("activations", "losses", "metrics")
_AVERAGE_POOLS = frozenset({"AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D",
                            "AvgPool3D"})
_TRANSPOSED = frozenset({"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Deconvolution2D",
                         "Deconvolution3D", "Deconv2D"})
_TF = "TensorFlow's semantics"
_AXES = {1: ["steps"], 2: ["rows", "columns"], 3: ["planes", "rows", "columns"]}


@dataclass(frozen=True)
class Difference:
    """A layer the installed Keras computes differently from the TensorFlow semantics the ONNX follows.

    Attributes:
        layer: the layer's path (``outer/inner`` in nested models).
        class_name: its Keras class.
        where: what about this layer brings the difference out (``'same' padding 0+1 rows, 0+1 columns``).
        onnx: what the ONNX computes there, as TensorFlow does.
        keras: what the installed Keras computes instead, and why.
    """

    layer: str
    class_name: str
    where: str
    onnx: str
    keras: str

    def describe(self) -> str:
        return f"{self.layer} ({self.class_name}, {self.where}): the ONNX {self.onnx}; {self.keras}"


@dataclass
class Verification:
    """The outcome of comparing ONNX Runtime with Keras on one seeded batch.

    Attributes:
        ran: False when verification was skipped or refused (``reason`` says why).
        max_abs_diff: largest absolute difference over all outputs.
        max_abs_output: largest absolute Keras output value.
        max_rel_diff: largest difference over the largest absolute value of the same output (floored at
            `SCALE_FLOOR`), the measure ``tolerance`` applies to.
        passed: ``max_rel_diff <= tolerance``; None when not run.
        differences: layers where the installed Keras is known to differ from the ONNX's TF semantics.
        substituted: Lambda layers Keras ran as weightkit's implementation, not the file's code.
    """

    ran: bool
    reason: str = ""
    max_abs_diff: float | None = None
    max_abs_output: float | None = None
    tolerance: float = TOLERANCE
    passed: bool | None = None
    keras: str | None = None
    max_rel_diff: float | None = None
    differences: list[Difference] = field(default_factory=list)
    substituted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: the verdict, both measures of the difference, and the reason where weightkit knows it."""
        if not self.ran:
            return f"skipped: {self.reason}"
        if self.max_rel_diff is None:
            return f"FAILED: {self.reason}"
        verdict = "ok" if self.passed else "FAILED, above tolerance"
        line = (f"{verdict}: largest difference {self.max_rel_diff:.3g} of the output's scale "
                f"(absolute {self.max_abs_diff:.3g}, outputs up to {self.max_abs_output:.3g}; "
                f"tolerance {self.tolerance:g}) against {self.keras}")
        return f"{line}; {self.reason}" if self.reason else line


class _Refused(Exception):
    """The config names code that Keras would have to run to build the model."""


def verify(path: str | os.PathLike[str], onnx_model: Any, *, arch: str | os.PathLike[str] | None = None,
           nchw: bool = False, tolerance: float = TOLERANCE, seed: int = 0, batch: int = 2) -> Verification:
    """Run Keras (the model rebuilt from ``path``'s config, or ``arch``'s, with ``path``'s weights) and ONNX Runtime.

    Args:
        onnx_model: the converted ModelProto, or the path of the written ``.onnx`` file.

    Raises:
        WeightkitError: ``path`` or ``arch`` cannot be read (as when converting).
    """
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except Exception as exc:  # noqa: BLE001  # ImportError, or any error of a backend that fails to start: reported
        return Verification(False, f"Keras is not importable ({type(exc).__name__}: {_first_line(exc)})")
    session = _session(onnx_model)
    _check_batch_size(session, batch, path)  # before Keras builds anything or a batch is drawn
    record, root = _architecture(path, arch)
    try:
        sanitized, functions, substituted = _sanitized_config(record)
    except _Refused as exc:
        return Verification(False, f"refused: {exc}; building it would run the file's code, which weightkit never does")
    try:
        model = _rebuild(keras, sanitized, functions, path, legacy=_is_hdf5(arch if arch is not None else path))
    except Exception as exc:  # noqa: BLE001  # Keras raises any type from a user's config: reported, not a crash
        return Verification(False, f"Keras {keras.__version__} cannot load the file "
                                   f"({type(exc).__name__}: {_first_line(exc)})", substituted=substituted)
    label = f"Keras {keras.__version__} ({keras.backend.backend()} backend)"
    inputs = _inputs(session, seed, batch)
    keras_inputs = [_to_keras(x) if nchw else x for _, x in inputs]
    try:
        expected = _keras_outputs(keras, model, keras_inputs, nchw)
    except Exception as exc:  # noqa: BLE001  # a user's model can fail in Keras with any type: reported
        return Verification(False, f"{label} cannot run the model ({type(exc).__name__}: {_first_line(exc)})",
                            substituted=substituted)
    result = _compare(expected, session.run(None, dict(inputs)), tolerance, label)
    result.substituted = substituted
    result.differences = known_differences(keras, root, [tuple(x.shape) for x in keras_inputs])
    if result.passed is False and result.differences:
        result.reason = _explained(result.differences, label)
    return result


def _architecture(path: Any, arch: Any) -> tuple[dict[str, Any], ConfigLayer]:
    """The raw config record (a copy: it is rewritten) and its parsed tree, read as the converter reads them."""
    source = open_source(path, arch)
    try:
        return copy.deepcopy(source.record), source.root
    finally:
        source.close()


# --- the config Keras builds from ----------------------------------------------------------------------------

def _sanitized_config(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """``record`` with every known Lambda pointing at weightkit's function, those functions, and the Lambdas replaced.

    Raises:
        _Refused: the config names code that is not Keras's own.
    """
    blocks: dict[str, int] = {}
    substituted: list[str] = []
    sanitized = _sanitized(record, blocks, substituted)
    return sanitized, {name: _space_to_depth(block) for name, block in blocks.items()}, substituted


def _sanitized(node: Any, blocks: dict[str, int], substituted: list[str]) -> Any:
    if isinstance(node, list):
        return [_sanitized(item, blocks, substituted) for item in node]
    if not isinstance(node, dict):
        return node
    _refuse_code(node)
    is_lambda = node.get("class_name") == "Lambda" and isinstance(node.get("config"), dict)
    return {key: _substituted_lambda(value, blocks, substituted) if is_lambda and key == "config"
            else _sanitized(value, blocks, substituted) for key, value in node.items()}


def _refuse_code(node: dict[str, Any]) -> None:
    """Raise `_Refused` if this config object is, or names, code outside Keras."""
    kind = node.get("class_name")
    if kind == "__lambda__":
        raise _Refused("the config holds Python code (a Keras 3 lambda function)")
    if kind in _CODE_LAYERS:
        raise _Refused(f"layer {_name(node)!r} is a {kind}, which runs code the file supplies")
    for key, value in node.items():
        if key.endswith("_type") and value == "lambda":
            raise _Refused(f"the config holds marshalled Python code ({key} of {kind or 'a layer'} {_name(node)!r})")
    if kind is not None and "module" in node and not _keras_owned(node.get("module"), kind, node.get("config")):
        what = "function" if kind == "function" else "class"
        raise _Refused(f"the config names the {what} {node.get('config') if kind == 'function' else kind!r} "
                       f"of module {node.get('module')!r}, which is not Keras")


def _keras_owned(module: Any, kind: str, config: Any) -> bool:
    """Whether Keras resolves this object within the model-building parts of Keras (or fails), no other code."""
    if module is None:
        return True
    if module == "keras" or (isinstance(module, str) and module.startswith("keras.")):
        parts = module.split(".")[1:]
        if parts[:1] == ["src"]:
            parts = parts[1:]
        allowed = _FUNCTION_MODULES if kind == "function" else _CLASS_MODULES
        return (not parts and kind != "function") or (bool(parts) and parts[0] in allowed)
    # Keras 3 writes named functions as module 'builtins'; older Keras would hand back any builtin by that name
    return module == "builtins" and kind == "function" and isinstance(config, str) and config not in vars(builtins)


def _name(node: dict[str, Any]) -> str:
    config = node.get("config")
    return str(node.get("name") or (config.get("name") if isinstance(config, dict) else None) or "?")


def _substituted_lambda(config: dict[str, Any], blocks: dict[str, int], substituted: list[str]) -> dict[str, Any]:
    """A known Lambda's config with weightkit's function in place of the file's (which is dropped unread)."""
    name = str(config.get("name", "?"))
    known = known_lambda(config)
    if known is None:
        raise _Refused(f"Lambda layer {name!r} is not one weightkit knows ({lambda_problem(config)})")
    function = f"weightkit_space_to_depth_x{known.block_size}"
    blocks[function] = known.block_size
    substituted.append(f"{name}: space_to_depth, block size {known.block_size}")
    kept: dict[str, Any] = {key: _sanitized(config[key], blocks, substituted)
                            for key in ("name", "trainable", "dtype") if key in config}
    reference = {"module": "builtins", "class_name": "function", "config": function, "registered_name": "function"}
    return {**kept, "function": reference, "arguments": {}}


def _space_to_depth(block: int) -> Any:
    """TensorFlow's NHWC ``space_to_depth`` in keras.ops: channel ``(row·block + column)·C + c``."""
    import keras

    def space_to_depth(x: Any) -> Any:
        _, height, width, channels = x.shape
        x = keras.ops.reshape(x, (-1, height // block, block, width // block, block, channels))
        x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return keras.ops.reshape(x, (-1, height // block, width // block, block * block * channels))

    return space_to_depth


def _rebuild(keras: Any, record: dict[str, Any], functions: dict[str, Any], path: Any, *, legacy: bool) -> Any:
    """The Keras model of the sanitized ``record``, with the weights of ``path`` loaded by Keras.

    ``legacy``: the config comes from a legacy ``.h5``, which Keras builds with its legacy deserializer.
    """
    with keras.saving.custom_object_scope(functions):
        model = _from_legacy_config(record, functions) if legacy else _from_keras3_config(keras, record, functions)
    model.load_weights(os.fspath(path))
    return model


def _is_hdf5(path: Any) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == b"\x89HDF\r\n\x1a\n"


def _from_keras3_config(keras: Any, record: dict[str, Any], functions: dict[str, Any]) -> Any:
    """As Keras builds a ``.keras`` archive's config.json (its ``saving_lib``), uncompiled and in safe mode."""
    from keras.src.saving import serialization_lib

    with serialization_lib.ObjectSharingScope(), serialization_lib.SafeModeScope(True):
        return keras.saving.deserialize_keras_object({**record, "compile_config": None}, custom_objects=functions,
                                                     safe_mode=True)


def _from_legacy_config(record: dict[str, Any], functions: dict[str, Any]) -> Any:
    """As Keras builds a legacy ``.h5``'s model_config (its ``legacy_h5_format``), in safe mode."""
    from keras.src.legacy.saving import saving_options, saving_utils
    from keras.src.saving import serialization_lib

    with saving_options.keras_option_scope(use_legacy_config=True), serialization_lib.SafeModeScope(True):
        return saving_utils.model_from_config(record, custom_objects=functions)


# --- running both --------------------------------------------------------------------------------------------

def _session(onnx_model: Any) -> Any:
    import onnxruntime

    source = onnx_model if isinstance(onnx_model, (str, os.PathLike)) else onnx_model.SerializeToString()
    return onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])


def _input_shapes(session: Any, batch: int) -> list[tuple[str, list[int]]]:
    """The graph's input shapes as the test batch has them (symbolic batch → ``batch``, other symbols → 64)."""
    return [(info.name, [d if isinstance(d, int) else (batch if axis == 0 else _UNKNOWN_SPATIAL)
                         for axis, d in enumerate(info.shape)]) for info in session.get_inputs()]


def _check_batch_size(session: Any, batch: int, path: Any) -> None:
    """Refuse a test batch of more than ``limits.VERIFY_BYTES``: 12 bytes an element at its peak (drawn as
    float64, then copied to float32)."""
    total = 0
    for _, shape in _input_shapes(session, batch):
        count = 1
        for size in shape:
            count *= max(size, 0)
            if count > limits.VERIFY_BYTES.value:
                break  # already too big: the product of huge sizes is not computed further
        total += 12 * count
    limits.VERIFY_BYTES.check(total, "the test batch for --verify (the model's declared input shape)", path=path)


def _inputs(session: Any, seed: int, batch: int) -> list[tuple[str, np.ndarray]]:
    """Seeded standard-normal inputs of the graph's shapes (symbolic batch → ``batch``)."""
    rng = np.random.default_rng(seed)
    return [(name, rng.standard_normal(shape).astype(np.float32)) for name, shape in _input_shapes(session, batch)]


def _keras_outputs(keras: Any, model: Any, arrays: list[np.ndarray], nchw: bool) -> list[np.ndarray]:
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
    worst, scale, relative = 0.0, 0.0, 0.0
    for want, got in zip(expected, actual):
        if want.shape != got.shape:
            return Verification(True, f"output shapes differ: Keras {want.shape}, ONNX {got.shape}", passed=False,
                                keras=label)
        difference, size = _largest_difference(want, got), float(np.max(np.abs(want))) if want.size else 0.0
        worst, scale = max(worst, difference), max(scale, size)
        relative = max(relative, difference / max(size, SCALE_FLOOR) if difference else 0.0)
    return Verification(True, "", worst, scale, tolerance, bool(relative <= tolerance), label, relative)


def _largest_difference(want: np.ndarray, got: np.ndarray) -> float:
    """max |want - got|; infinite where only one of them is NaN (NaN in both at one place agrees)."""
    if not want.size:
        return 0.0
    gap = np.abs(want.astype(np.float64) - got.astype(np.float64))
    gap = np.where(np.isnan(want) & np.isnan(got), 0.0, gap)
    largest = float(np.max(gap))
    return math.inf if math.isnan(largest) else largest


# --- where the installed Keras is known to differ -------------------------------------------------------------

def known_differences(keras: Any, root: ConfigLayer, inputs: list[tuple[Dim, ...]]) -> list[Difference]:
    """The layers of ``root`` that the installed Keras computes differently from TensorFlow, for these input shapes.

    Both are Keras's torch backend: ``same`` average pooling whose padding is uneven (it pads by repeating
    the edge values, which the average then counts; TF leaves the padded cells out), and before Keras 3.15
    transposed convolutions it could not crop as TF does (the backend warns about those).
    """
    if keras.backend.backend() != "torch":
        return []
    old_transpose = _version(keras.__version__) < (3, 15)
    found = []
    for path, layer, sources in _layers_with_inputs(root, list(inputs)):
        if layer.class_name in _AVERAGE_POOLS:
            found += _uneven_average_pool(path, layer, sources[0] if sources else None)
        elif layer.class_name in _TRANSPOSED and old_transpose:
            found += _uncroppable_transpose(path, layer)
    return found


def _layers_with_inputs(root: ConfigLayer, inputs: list[Any], prefix: str = ""
                        ) -> Iterator[tuple[str, ConfigLayer, list[Any]]]:
    """Every layer (nested models walked) with the shapes of its inputs."""
    shapes = infer_shapes(root, inputs)
    previous = inputs[0] if inputs else None
    for layer in root.layers:
        sources = [shapes.get(name) for name in layer.inbound] if layer.inbound else [previous]
        previous = shapes.get(layer.name)
        if layer.is_model:
            yield from _layers_with_inputs(layer, sources, f"{prefix}{layer.name}/")
        else:
            yield f"{prefix}{layer.name}", layer, sources


def _uneven_average_pool(path: str, layer: ConfigLayer, shape: Any) -> list[Difference]:
    config = layer.config
    if str(config.get("padding", "valid")).lower() != "same" or shape is None:
        return []
    rank = len(shape) - 2
    pool = _ints(config.get("pool_size", 2), rank)
    strides = _ints(config.get("strides") or pool, rank)
    sizes = list(shape[2:] if config.get("data_format") == "channels_first" else shape[1:-1])
    pads, _ = window_pads("same", sizes, pool, strides, [1] * rank)
    if pads is None or pads[:rank] == pads[rank:]:
        return []
    axes = _AXES[rank] if rank in _AXES else [f"axis {axis + 1}" for axis in range(rank)]
    where = "'same' padding " + ", ".join(f"{begin}+{end} {axis}" for axis, begin, end
                                          in zip(axes, pads[:rank], pads[rank:]))
    return [Difference(path, layer.class_name, where, "leaves the padded cells out of each average, as TensorFlow does",
                       "Keras's torch backend pads by repeating the edge values and counts them in the average")]


def _uncroppable_transpose(path: str, layer: ConfigLayer) -> list[Difference]:
    """Keras < 3.15's own test (``_convert_conv_transpose_padding_args_from_keras_to_torch``) for a torch mismatch."""
    config = layer.config
    rank = 1 if "1D" in layer.class_name else 3 if "3D" in layer.class_name else 2
    kernel, strides = _ints(config.get("kernel_size", 1), rank), _ints(config.get("strides", 1), rank)
    dilations = _ints(config.get("dilation_rate", 1), rank)
    output_padding = config.get("output_padding")
    extras = [None] * rank if output_padding is None else _ints(output_padding, rank)
    same = str(config.get("padding", "valid")).lower() == "same"
    for k, s, d, extra in zip(kernel, strides, dilations, extras):
        span = (k - 1) * d + 1
        if same:
            extra = s - span % 2 if extra is None else extra
            pad = max(-((span % 2 - span + extra) // 2), 0)
            out_pad = 2 * pad + span % 2 - span + extra
        else:
            pad, out_pad = 0, max(span, s) - span if extra is None else extra
        if (pad > 0 and out_pad > 0) or out_pad >= s:
            return [Difference(path, layer.class_name, f"kernel {k}, stride {s}, padding {config.get('padding')!r}",
                               "crops the full output as TensorFlow does",
                               "Keras's torch backend before 3.15 crops it on the other side")]
    return []


def _explained(differences: list[Difference], label: str) -> str:
    layers = "; ".join(difference.describe() for difference in differences)
    return (f"expected where {label} departs from {_TF}, which the ONNX follows: {layers} "
            f"(TensorFlow, or Keras on another backend, is the reference there)")


def _ints(value: Any, rank: int) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)] * rank


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
