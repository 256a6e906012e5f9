"""What a PyTorch pickle may name, mapped to weightkit's own stand-ins.

The allowlist mirrors torch's ``weights_only`` unpickler (``torch/_weights_only_unpickler.py``):
tensor rebuild functions, storage classes, dtypes, ``torch.Size``, ``torch.device``,
qschemes, plus the few helpers TorchScript archives and torch 0.3 module pickles
use. Each name maps to a builder here that records *what* the tensor is (storage
key, offset, shape, stride, dtype) as a `TorchTensor`; no torch code exists or runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ... import dtypes
from .._parsers.numpy_pickle import NUMPY_ALLOWLIST
from .._parsers.unpickler import BASE_ALLOWLIST, Allowlist, ClassRef, Global, shown

__all__ = [
    "TorchDtype",
    "StorageKind",
    "StorageRef",
    "TorchTensor",
    "TORCH_ALLOWLIST",
    "element_size",
    "storage_from_pid",
    "is_state_dict",
]

#: torch dtype attribute names → weightkit dtype names (torch-only types keep torch's name).
_DTYPES = {
    "float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16",
    "int8": "int8", "int16": "int16", "short": "int16", "int32": "int32", "int": "int32",
    "int64": "int64", "long": "int64", "uint8": "uint8", "uint16": "uint16", "uint32": "uint32",
    "uint64": "uint64", "bool": "bool", "complex64": "complex64", "cfloat": "complex64",
    "complex128": "complex128", "cdouble": "complex128", "complex32": "complex32", "chalf": "complex32",
    "float8_e4m3fn": "float8_e4m3fn", "float8_e5m2": "float8_e5m2", "float8_e4m3fnuz": "float8_e4m3fnuz",
    "float8_e5m2fnuz": "float8_e5m2fnuz", "float8_e8m0fnu": "float8_e8m0fnu",
    "float4_e2m1fn_x2": "float4_e2m1fn_x2",
    "qint8": "qint8", "quint8": "quint8", "qint32": "qint32", "quint4x2": "quint4x2", "quint2x4": "quint2x4",
    "bits8": "bits8", "bits16": "bits16", "bits1x8": "bits1x8", "bits2x4": "bits2x4", "bits4x2": "bits4x2",
    **{f"int{n}": f"int{n}" for n in range(1, 8)}, **{f"uint{n}": f"uint{n}" for n in range(1, 8)},
}

#: Legacy storage classes (``torch.FloatStorage``) → element dtype.
_STORAGES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "BFloat16Storage": "bfloat16",
    "ComplexDoubleStorage": "complex128", "ComplexFloatStorage": "complex64",
    "QInt8Storage": "qint8", "QInt32Storage": "qint32", "QUInt8Storage": "quint8",
    "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
}

#: Bytes per element of torch-only types weightkit's dtype table does not know.
_TORCH_ONLY_SIZES = {"float4_e2m1fn_x2": 1, "bits8": 1, "bits16": 2, "bits1x8": 1, "bits2x4": 1, "bits4x2": 1,
                     **{f"int{n}": 1 for n in range(1, 8)}, **{f"uint{n}": 1 for n in range(1, 8)}}

#: numpy's most dimensions (a format fact, not a resource limit): a larger rank cannot be an array.
NUMPY_MAX_DIMS = 64
#: The largest tensor dimension or stride (numpy indexes with signed 64-bit integers).
_MAX_EXTENT = 2**63 - 1

_QSCHEMES = ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric",
             "per_channel_affine_float_qparams")


def element_size(dtype: str) -> int:
    """Bytes one element of ``dtype`` takes in a torch storage."""
    size = dtypes.bits_of(dtype) // 8 if dtype in dtypes.BITS and dtypes.bits_of(dtype) >= 8 else 0
    return size or _TORCH_ONLY_SIZES.get(dtype, 1)


@dataclass(frozen=True, eq=False)
class TorchDtype:
    """``torch.float32`` and friends, by weightkit name."""

    name: str


@dataclass(frozen=True, eq=False)
class StorageKind:
    """A storage class: ``torch.FloatStorage`` (typed) or ``torch.UntypedStorage`` (bytes)."""

    dtype: str
    name: str


@dataclass(eq=False)
class StorageRef:
    """One storage the pickle refers to: its key, element type, device and element count.

    ``base``/``base_offset`` describe legacy-format storage views (a window of elements
    of another storage).
    """

    key: str
    dtype: str
    location: str
    numel: int
    base: StorageRef | None = None
    base_offset: int = 0

    @property
    def nbytes(self) -> int:
        return self.numel * element_size(self.dtype)


@dataclass(eq=False)
class TorchTensor:
    """A tensor as the pickle describes it (offset, shape and stride in elements); data stays in the file."""

    shape: tuple[int, ...]
    dtype: str
    storage: StorageRef | None = None
    offset: int = 0
    stride: tuple[int, ...] = ()
    requires_grad: bool = False
    parameter: bool = False
    class_name: str | None = None
    note: str | None = None
    conj: bool = False
    neg: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)

    def __pickle_build__(self, state: Any) -> None:
        """BUILD on a tensor: torch 0.3's Variable state, legacy ``set_`` arguments, or Python attributes."""
        if isinstance(state, tuple) and len(state) == 4 and isinstance(state[0], StorageRef):
            _set_view(self, state[0], state[1], state[2], state[3])
        elif isinstance(state, tuple) and len(state) == 3 and isinstance(state[0], bool):
            self.requires_grad = state[0]
        elif isinstance(state, dict):
            self.attributes.update({str(k): v for k, v in state.items()})
        elif state is not None:
            raise ValueError("BUILD state of a tensor is neither a state tuple nor a dict")

    def __pickle_children__(self) -> list[Any]:
        """The file's values this record holds, for the unpickler's size accounting."""
        return list(self.attributes.values())


def storage_from_pid(pid: Any, storages: dict[str, StorageRef], key_prefix: str = "") -> StorageRef:
    """The `StorageRef` for a ``('storage', type, key, location, numel[, view])`` persistent id.

    ``storages`` caches storages by key, so tensors that share a storage share one ref;
    ``key_prefix`` places the key in the file (``data/`` or ``constants/`` in a zip).
    """
    if not isinstance(pid, tuple) or len(pid) not in (5, 6) or _text(pid[0]) != "storage":
        raise ValueError(f"persistent id is not a storage reference ({type(pid).__name__})")
    kind, key, location, numel = pid[1], _text(pid[2]), _text(pid[3]), pid[4]
    if not isinstance(kind, Global) or not isinstance(kind.value, StorageKind):
        raise ValueError("storage reference does not name a storage class")
    if not isinstance(key, str) or not isinstance(location, str) or not _count(numel):
        raise ValueError("storage reference has a malformed key, location or size")
    key = key_prefix + key
    root = storages.get(key)
    if root is None:
        root = storages[key] = StorageRef(key, kind.value.dtype, location, numel)
    view = pid[5] if len(pid) == 6 else None
    if view is None:
        return root
    return _storage_view(root, view, storages)


def _storage_view(root: StorageRef, view: Any, storages: dict[str, StorageRef]) -> StorageRef:
    if not isinstance(view, tuple) or len(view) != 3 or not all(_count(v) for v in view[1:]):
        raise ValueError("storage view metadata is malformed")
    view_key = _text(view[0])
    if not isinstance(view_key, str):
        raise ValueError("storage view key is malformed")
    if view_key not in storages:
        storages[view_key] = StorageRef(view_key, root.dtype, root.location, view[2], base=root, base_offset=view[1])
    return storages[view_key]


def _text(value: Any) -> Any:
    return value.decode("ascii") if isinstance(value, bytes) else value


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list):
        raise ValueError(f"tensor {what} is not a list of non-negative integers")
    if len(value) > NUMPY_MAX_DIMS:
        raise ValueError(f"tensor {what} of rank {len(value)}: more than the {NUMPY_MAX_DIMS} dimensions numpy "
                         "supports")
    if not all(_count(v) and v <= _MAX_EXTENT for v in value):
        raise ValueError(f"tensor {what} is not a list of non-negative 64-bit integers")
    return tuple(value)


def _set_view(tensor: TorchTensor, storage: Any, offset: Any, size: Any, stride: Any) -> TorchTensor:
    if not isinstance(storage, StorageRef):
        raise ValueError("tensor storage is not a storage reference")
    if not _count(offset):
        raise ValueError("tensor storage offset is not a non-negative integer")
    tensor.storage, tensor.offset = storage, offset
    tensor.shape, tensor.stride = _ints(size, "size"), _ints(stride, "stride")
    if len(tensor.shape) != len(tensor.stride):
        raise ValueError("tensor size and stride differ in length")
    return tensor


# --- rebuild functions (torch/_utils.py), as record builders ----------------------------


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any) -> TorchTensor:
    dtype = storage.dtype if isinstance(storage, StorageRef) else "uint8"
    return _set_view(TorchTensor((), dtype), storage, offset, size, stride)


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       hooks: Any = None, metadata: Any = None) -> TorchTensor:
    tensor = _rebuild_tensor(storage, offset, size, stride)
    return _finish(tensor, requires_grad, metadata)


def _rebuild_tensor_v3(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any,
                       dtype: Any, metadata: Any = None) -> TorchTensor:
    if not isinstance(dtype, Global) or not isinstance(dtype.value, TorchDtype):
        raise ValueError("_rebuild_tensor_v3 dtype is not a torch dtype")
    tensor = _set_view(TorchTensor((), dtype.value.name), storage, offset, size, stride)
    return _finish(tensor, requires_grad, metadata)


def _finish(tensor: TorchTensor, requires_grad: Any, metadata: Any) -> TorchTensor:
    tensor.requires_grad = bool(requires_grad)
    if isinstance(metadata, dict):
        tensor.conj = bool(metadata.get("conj", False))
        tensor.neg = bool(metadata.get("neg", False))
    return tensor


def _rebuild_parameter(data: Any, requires_grad: Any = True, hooks: Any = None, state: Any = None) -> TorchTensor:
    if not isinstance(data, TorchTensor):
        raise ValueError("Parameter data is not a tensor")
    data.parameter = True
    data.requires_grad = bool(requires_grad)
    if isinstance(state, dict):
        data.attributes.update({str(k): v for k, v in state.items()})
    return data


def _parameter(data: Any = None, requires_grad: Any = True) -> TorchTensor:
    """``torch.nn.Parameter(tensor)`` as torch 0.3 pickled it (REDUCE, then a BUILD of Variable state)."""
    if data is None:
        data = TorchTensor((0,), "float32")
    return _rebuild_parameter(data, requires_grad)


def _rebuild_qtensor(storage: Any, offset: Any, size: Any, stride: Any, qparams: Any, requires_grad: Any,
                     hooks: Any = None) -> TorchTensor:
    if not isinstance(qparams, tuple):
        raise ValueError("quantized tensor parameters are not a tuple")
    tensor = _rebuild_tensor(storage, offset, size, stride)
    scheme = qparams[0] if qparams else None
    scheme_name = scheme.value if isinstance(scheme, Global) and isinstance(scheme.value, str) else "unknown scheme"
    detail = ""
    if scheme_name == "per_tensor_affine" and len(qparams) == 3:
        detail = f", scale {shown(qparams[1])}, zero point {shown(qparams[2])}"
    elif len(qparams) == 4:
        detail = f", axis {shown(qparams[3])}"
    tensor.note = f"quantized tensor ({tensor.dtype}, {scheme_name}{detail}); its integer data is not read"
    tensor.requires_grad = bool(requires_grad)
    return tensor


def _rebuild_sparse_tensor(layout: Any, data: Any) -> TorchTensor:
    if not isinstance(data, tuple) or len(data) < 3:
        raise ValueError("sparse tensor data is malformed")
    name = _layout_name(layout)
    values = data[1] if len(data) in (3, 4) and name == "torch.sparse_coo" else data[2]
    size = next((part for part in reversed(data) if isinstance(part, tuple | list)), ())
    dtype = values.dtype if isinstance(values, TorchTensor) else "float32"
    return TorchTensor(_ints(size, "size"), dtype, note=f"sparse tensor ({name}); not read")


def _layout_name(layout: Any) -> str:
    """``torch.sparse_coo`` and friends as text, whatever value the file put there."""
    if isinstance(layout, Global | ClassRef):
        return shown(layout.qualname)
    return shown(layout) if isinstance(layout, str) else f"unknown layout {shown(layout)}"


def _rebuild_sparse_csr_tensor(layout: Any, data: Any) -> TorchTensor:
    return _rebuild_sparse_tensor(layout, data)


def _rebuild_meta_tensor_no_storage(dtype: Any, size: Any, stride: Any, requires_grad: Any = False) -> TorchTensor:
    name = dtype.value.name if isinstance(dtype, Global) and isinstance(dtype.value, TorchDtype) else "float32"
    return TorchTensor(_ints(size, "size"), name, note="meta tensor: the file holds its shape, no data")


def _rebuild_nested_tensor(buffer: Any, sizes: Any, strides: Any, offsets: Any) -> TorchTensor:
    dtype = buffer.dtype if isinstance(buffer, TorchTensor) else "float32"
    shape = buffer.shape if isinstance(buffer, TorchTensor) else (0,)
    return TorchTensor(shape, dtype, note="nested tensor (its flat buffer shape shown); not read")


def _rebuild_wrapper_subclass(cls: Any, dtype: Any, size: Any, *rest: Any) -> TorchTensor:
    name = dtype.value.name if isinstance(dtype, Global) and isinstance(dtype.value, TorchDtype) else "float32"
    class_name = shown(cls.qualname) if isinstance(cls, Global | ClassRef) else "tensor subclass"
    return TorchTensor(_ints(size, "size"), name, class_name=class_name,
                       note=f"tensor subclass {class_name} stored without data in this file")


def _rebuild_device_tensor(data: Any, dtype: Any, device: Any, requires_grad: Any) -> TorchTensor:
    if isinstance(data, TorchTensor) and isinstance(dtype, Global) and getattr(dtype.value, "name", None) == data.dtype:
        data.requires_grad = bool(requires_grad)
        return data
    name = dtype.value.name if isinstance(dtype, Global) and isinstance(dtype.value, TorchDtype) else "float32"
    shape = data.shape if isinstance(data, TorchTensor) else ()
    return TorchTensor(shape, name, note=f"tensor for device {shown(device)} stored through numpy; not read")


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any = None) -> TorchTensor:
    if not isinstance(func, Global) or func.builder is None or not func.module.startswith("torch._utils"):
        raise ValueError("_rebuild_from_type_v2 does not wrap a tensor rebuild function")
    if not isinstance(args, tuple):
        raise ValueError("_rebuild_from_type_v2 arguments are not a tuple")
    tensor = func.builder(*args)
    if not isinstance(tensor, TorchTensor):
        raise ValueError("_rebuild_from_type_v2 did not rebuild a tensor")
    if isinstance(new_type, ClassRef):
        tensor.class_name = new_type.qualname
    if isinstance(state, dict):
        tensor.attributes.update({str(k): v for k, v in state.items()})
    return tensor


def _empty_tensor(*args: Any) -> TorchTensor:
    """``torch.Tensor`` created by NEWOBJ; a following BUILD gives its storage view."""
    return TorchTensor((0,), "float32")


def _size(dims: Any = ()) -> tuple[int, ...]:
    return _ints(dims, "size")


def _device(kind: Any, index: Any = None) -> str:
    if not isinstance(kind, str) or not (index is None or isinstance(index, int)):
        raise ValueError("torch.device arguments are malformed")
    return kind if index is None else f"{kind}:{index}"


def _get_layout(name: Any) -> str:
    if not isinstance(name, str):
        raise ValueError("torch layout name is not text")
    return name


def _passthrough(value: Any, *rest: Any) -> Any:
    """TorchScript's ``build_intlist``/``restore_type_tag``: the value itself."""
    return value


def _thnn_backend(*args: Any) -> str:
    """torch 0.3 pickled each module's THNN backend as a call to this; a marker is enough."""
    return "thnn"


def _torch_allowlist() -> Allowlist:
    allow = Allowlist()
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                 "_rebuild_qtensor", "_rebuild_sparse_tensor", "_rebuild_sparse_csr_tensor",
                 "_rebuild_meta_tensor_no_storage", "_rebuild_nested_tensor", "_rebuild_wrapper_subclass"):
        allow.add("torch._utils", name, globals()[name])
    allow.add("torch._utils", "_rebuild_parameter_with_state", _rebuild_parameter)
    for name in ("_rebuild_device_tensor_from_numpy", "_rebuild_device_tensor_from_cpu_tensor",
                 "_rebuild_xla_tensor", "_rebuild_mlc_tensor"):
        allow.add("torch._utils", name, _rebuild_device_tensor)
    for module in ("torch._tensor", "torch.tensor"):
        allow.add(module, "_rebuild_from_type_v2", _rebuild_from_type_v2)
    allow.add("torch.serialization", "_get_layout", _get_layout)
    allow.add("torch", "Size", _size)
    allow.add("torch", "device", _device)
    allow.add("torch", "Tensor", _empty_tensor)
    allow.add("torch.nn.parameter", "Parameter", _parameter)
    allow.add("torch.nn.backends.thnn", "_get_thnn_function_backend", _thnn_backend)
    for name in ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist", "build_complexlist",
                 "restore_type_tag"):
        allow.add("torch.jit._pickle", name, _passthrough)
    for torch_name, name in _DTYPES.items():
        allow.add("torch", torch_name, value=TorchDtype(name))
    for storage, dtype in _STORAGES.items():
        for module in ("torch", "torch.cuda"):
            allow.add(module, storage, value=StorageKind(dtype, storage))
    for module in ("torch", "torch.storage", "torch.cuda"):
        allow.add(module, "UntypedStorage", value=StorageKind("uint8", "UntypedStorage"))
    for scheme in _QSCHEMES:
        allow.add("torch", scheme, value=scheme)
    for storage, dtype in _STORAGES.items():
        tensor_class = storage.replace("Storage", "Tensor")
        for module in ("torch", "torch.cuda"):
            allow.add(module, tensor_class, value=dtype)
    return BASE_ALLOWLIST.merged(NUMPY_ALLOWLIST).merged(allow)


#: Every global a PyTorch pickle may name.
TORCH_ALLOWLIST = _torch_allowlist()


def is_state_dict(value: Any) -> bool:
    """True for a dict whose values are all tensors (a ``state_dict``)."""
    return isinstance(value, dict) and bool(value) and all(isinstance(v, TorchTensor) for v in value.values())

