"""Finding the tensors in what a PyTorch pickle holds, and naming them by their path.

A file may hold a state_dict, a training checkpoint wrapping one (``state_dict``,
``model``, ``ema``, ``optimizer``, ``epoch`` ...), a whole pickled ``nn.Module``, a
TorchScript module, a single tensor, or any nesting of these. `describe` walks the
unpickled records once and says which tensors are the model's weights (named as
``model.load_state_dict`` would see them), which are other collections (optimizer
state ...), which module classes were pickled, and which plain values sit beside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ... import limits
from .._parsers.numpy_pickle import NumpyArray
from .._parsers.unpickler import ClassRef, Global, PickledDict, PickledObject
from .pickle import TorchTensor

__all__ = ["Contents", "ModuleRecord", "describe", "short_class_name"]

#: Wrapper keys that hold the model's own weights, most specific first.
MAIN_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net", "network", "module",
             "model_ema", "state_dict_ema", "ema", "params", "weights", "generator", "netG", "G")
_OPTIMIZER_HINTS = ("optim", "scheduler", "scaler", "amp")
_MAX_PLAIN_ITEMS = 16


@dataclass
class ModuleRecord:
    """A pickled module (``nn.Module`` or TorchScript object): its path, class and plain settings."""

    path: str
    class_name: str
    config: dict[str, Any] = field(default_factory=dict)
    leaf: bool = True


@dataclass
class Contents:
    """What a checkpoint holds: the weights, other tensor collections, modules and plain values."""

    kind: str
    weights: list[tuple[str, TorchTensor]] = field(default_factory=list)
    weights_key: str | None = None
    extras: dict[str, list[tuple[str, TorchTensor]]] = field(default_factory=dict)
    modules: list[ModuleRecord] = field(default_factory=list)
    wrapper: dict[str, Any] = field(default_factory=dict)
    buffers: set[int] = field(default_factory=set)


def describe(root: Any) -> Contents:
    """Sort the unpickled ``root`` into weights, extras, modules and plain values."""
    if isinstance(root, TorchTensor):
        return Contents("tensor", weights=[("tensor", root)])
    if isinstance(root, PickledObject):
        walker = _Walker()
        tensors = walker.collect(root)
        kind = "torchscript module" if root.class_name.startswith("__torch__") else "pickled module"
        return Contents(kind if walker.modules else "object", weights=tensors, modules=walker.modules,
                        buffers=walker.buffers)
    if isinstance(root, dict) and _is_flat_state_dict(root):
        return Contents("state_dict", weights=[(_key(k), v) for k, v in root.items() if isinstance(v, TorchTensor)])
    if isinstance(root, dict):
        return _describe_wrapper(root)
    walker = _Walker()
    tensors = walker.collect(root)
    return Contents("tensors" if tensors else "object", weights=tensors, modules=walker.modules,
                    buffers=walker.buffers)


def _is_flat_state_dict(value: dict[Any, Any]) -> bool:
    tensors = sum(isinstance(v, TorchTensor) for v in value.values())
    return tensors > 0 and all(isinstance(v, TorchTensor) or v is None for v in value.values())


def _describe_wrapper(root: dict[Any, Any]) -> Contents:
    collections: dict[str, list[tuple[str, TorchTensor]]] = {}
    walker = _Walker()
    module_spans: dict[str, tuple[int, int]] = {}
    contents = Contents("checkpoint")
    top_level: list[tuple[str, TorchTensor]] = []
    for raw_key, value in root.items():
        key = _key(raw_key)
        if isinstance(value, TorchTensor):
            top_level.append((key, value))
            contents.wrapper[key] = _summary(value, 1)
            continue
        before = len(walker.modules)
        tensors = walker.collect(value)
        module_spans[key] = (before, len(walker.modules))
        if tensors:
            collections[key] = tensors
        contents.wrapper[key] = _summary(value, len(tensors))
    if top_level:
        collections[""] = top_level
    main = _main_key(collections)
    if main is not None:
        contents.weights, contents.weights_key = collections.pop(main), main or None
        if main:
            contents.wrapper[main] = f"weights: {_count(len(contents.weights))}" + _module_note(root, main)
    for key, tensors in collections.items():
        if not key:
            contents.extras["top_level"] = tensors
            continue
        group = "optimizer" if _is_optimizer(key) and "optimizer" not in contents.extras else key
        contents.extras[group] = [(f"{key}.{name}", tensor) for name, tensor in tensors]
        contents.wrapper[key] = f"{group if group == 'optimizer' else 'extras'}: {_count(len(tensors))}"
    if main:
        contents.modules = walker.modules[slice(*module_spans[main])]
    contents.buffers = walker.buffers
    return contents


def _module_note(root: dict[Any, Any], key: str) -> str:
    value = next((v for k, v in root.items() if _key(k) == key), None)
    return f" (pickled {short_class_name(value.class_name)})" if isinstance(value, PickledObject) else ""


def _main_key(collections: dict[str, list[tuple[str, TorchTensor]]]) -> str | None:
    if not collections:
        return None
    for key in MAIN_KEYS:
        if key in collections:
            return key
    candidates = {k: v for k, v in collections.items() if not _is_optimizer(k)} or collections
    return max(candidates, key=lambda k: sum(_numel(t) for _, t in candidates[k]))


def _is_optimizer(key: str) -> bool:
    return any(hint in key.lower() for hint in _OPTIMIZER_HINTS)


def _numel(tensor: TorchTensor) -> int:
    return math.prod(tensor.shape)


class _Walker:
    """Depth-first walk naming every tensor by its path; each container is entered once."""

    def __init__(self) -> None:
        self.max_depth = limits.NESTING.value
        self.seen: set[int] = set()
        self.modules: list[ModuleRecord] = []
        self.buffers: set[int] = set()

    def collect(self, value: Any) -> list[tuple[str, TorchTensor]]:
        """Every tensor reachable from ``value`` not reached before, named by its path from it."""
        found: list[tuple[str, TorchTensor]] = []
        self._visit(value, "", found, 0)
        return found

    def _visit(self, value: Any, path: str, found: list[tuple[str, TorchTensor]], depth: int) -> None:
        if isinstance(value, TorchTensor):
            found.append((path, value))
            return
        if not isinstance(value, dict | list | tuple | PickledObject) or depth > self.max_depth:
            return
        if id(value) in self.seen:
            return
        self.seen.add(id(value))
        if isinstance(value, PickledObject):
            self._visit_object(value, path, found, depth)
            return
        for key, item in _children(value):
            self._visit(item, _join(path, key), found, depth + 1)

    def _visit_object(self, obj: PickledObject, path: str, found: list[tuple[str, TorchTensor]], depth: int) -> None:
        attributes = obj.attributes()
        if _is_nn_module(attributes):
            self._visit_nn_module(obj, attributes, path, found, depth)
            return
        is_script = obj.class_name.startswith("__torch__")
        if is_script:
            record = ModuleRecord(path, obj.class_name, _plain_config(attributes))
            record.leaf = not any(isinstance(v, PickledObject) for v in attributes.values())
            self.modules.append(record)
        for key, item in [*attributes.items(), *_children(obj.items), *_children(obj.list_items)]:
            self._visit(item, _join(path, key), found, depth + 1)

    def _visit_nn_module(self, obj: PickledObject, attributes: dict[str, Any], path: str,
                         found: list[tuple[str, TorchTensor]], depth: int) -> None:
        submodules = attributes.get("_modules")
        submodules = submodules if isinstance(submodules, dict) else {}
        record = ModuleRecord(path, obj.class_name, _plain_config(attributes),
                              leaf=not any(isinstance(v, PickledObject) for v in submodules.values()))
        self.modules.append(record)
        for group in ("_parameters", "_buffers"):
            tensors = attributes.get(group)
            for key, item in _children(tensors) if isinstance(tensors, dict) else ():
                if isinstance(item, TorchTensor):
                    found.append((_join(path, key), item))
                    if group == "_buffers":
                        self.buffers.add(id(item))
        for key, item in submodules.items():
            self._visit(item, _join(path, _key(key)), found, depth + 1)


def _is_nn_module(attributes: dict[str, Any]) -> bool:
    return "_modules" in attributes and ("_parameters" in attributes or "_buffers" in attributes)


def _children(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(_key(k), v) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [(str(i), v) for i, v in enumerate(value)]
    return []


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    if isinstance(key, bool | float) or key is None or (isinstance(key, int) and key.bit_length() <= 64):
        return str(key)
    return f"<{type(key).__name__}>"


def short_class_name(class_name: str) -> str:
    """``__torch__.torch.nn.modules.conv.___torch_mangle_3.Conv2d`` → ``Conv2d``."""
    return class_name.rsplit(".", 1)[-1]


def _plain_config(attributes: dict[str, Any]) -> dict[str, Any]:
    """A module's public plain settings (``in_features``, ``kernel_size`` ...), JSON-ready."""
    config = {}
    for key, value in attributes.items():
        if isinstance(key, str) and not key.startswith("_") and key != "training" and _is_plain(value, 0):
            config[key] = _jsonable(value)
    return config


def _is_plain(value: Any, depth: int) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple) and depth < 2 and len(value) <= _MAX_PLAIN_ITEMS:
        return all(_is_plain(v, depth + 1) for v in value)
    return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if type(value) is int and value.bit_length() > 64:
        return f"<int of {value.bit_length()} bits>"
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "…"
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _summary(value: Any, tensor_count: int) -> Any:
    """A wrapper entry as JSON-ready data: plain values as they are, everything else described."""
    if _is_plain(value, 0):
        return _jsonable(value)
    if isinstance(value, dict) and not tensor_count and len(value) <= _MAX_PLAIN_ITEMS and \
            all(_is_plain(v, 1) for v in value.values()):
        return {_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, TorchTensor):
        return f"tensor {value.dtype}{list(value.shape)}"
    if tensor_count:
        return _count(tensor_count)
    if isinstance(value, PickledObject):
        attributes = value.attributes()
        if attributes and len(attributes) <= _MAX_PLAIN_ITEMS and all(_is_plain(v, 1) for v in attributes.values()):
            return {"class": value.class_name, **{_key(k): _jsonable(v) for k, v in attributes.items()}}
        return f"<{value.class_name} object>"
    if isinstance(value, NumpyArray):
        return repr(value)
    if isinstance(value, Global | ClassRef):
        return f"<{value.qualname}>"
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict | list | tuple | set | frozenset):
        kind = value.class_name if isinstance(value, PickledDict) else type(value).__name__
        return f"<{kind} of {len(value)} items>"
    return f"<{type(value).__name__}>"


def _count(tensors: int) -> str:
    return f"{tensors} tensor" if tensors == 1 else f"{tensors} tensors"
