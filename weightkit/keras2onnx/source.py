"""Where a conversion's architecture and weights come from: one full-model file, or weights plus ``--arch``.

The architecture is a Keras config (from a full-model ``.h5``/``.keras``, or a JSON
file as written by ``model.to_json()`` or found in a ``.keras`` archive); the weights
are the file's layers by path. A Keras 3 ``.weights.h5`` is re-read with the
architecture, because only the config tells which group holds which layer.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FileFormatError, UnsupportedError, UsageError
from ..formats.keras import ConfigLayer
from ..formats.keras.arch_file import ArchitectureRecord, model_architecture, read_architecture
from ..model import Layer, Model, Tensor

__all__ = ["KerasSource", "WeightIndex", "open_source"]

@dataclass
class KerasSource:
    """An architecture with the weights that go with it.

    Attributes:
        record: the raw ``{"class_name", "config"}`` architecture record.
        root: the same, parsed.
        weights: the weights file's layers by path (``conv1``, ``outer/inner``), as a `WeightIndex`.
        keras_major: 1, 2 or 3: which Keras defined the architecture.
        model: the weights file as read (closed by `close`).
    """

    record: dict[str, Any]
    root: ConfigLayer
    weights: WeightIndex
    keras_major: int
    model: Model
    arch_path: str | None = None
    _extra: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for resource in self._extra:
            resource.close()
        self.model.close()


def open_source(path: str | os.PathLike[str], arch: str | os.PathLike[str] | None = None) -> KerasSource:
    """Read ``path`` (and ``arch``) into a `KerasSource`; tensor data is read later, when emitted.

    Raises:
        UsageError: a weights-only file without ``arch``.
        UnsupportedError: not a Keras file.
        FileFormatError: the file or the architecture cannot be read.
    """
    from ..formats import read as load

    model = load(path)
    try:
        if model.framework != "keras":
            raise UnsupportedError(f"convert reads Keras files; this is {model.format}", path=os.fspath(path))
        found = _architecture(model, path, arch)
        record, version, root = found.record, found.keras_version, _checked(found.root, arch or path)
        extra: list[Any] = []
        weights = _weights(model, root, arch is not None, extra)
        major = _keras_major(version, record)
        return KerasSource(record, root, weights, major, model, os.fspath(arch) if arch else None, extra)
    except BaseException:
        model.close()
        raise


def _architecture(model: Model, path: Any, arch: Any) -> ArchitectureRecord:
    """The architecture: the file's own, or the one ``arch`` holds."""
    if arch is None:
        if model.config is None:
            raise UsageError(f"{path} holds weights only (no architecture)",
                             hint="pass --arch with a Keras JSON config or a full-model file of the same architecture")
        return model_architecture(model, path)
    return read_architecture(arch)


def _checked(root: ConfigLayer, path: Any) -> ConfigLayer:
    if not root.layers:
        raise FileFormatError(f"the architecture ({root.class_name}) has no layers", path=path)
    return root


class WeightIndex:
    """The weights file's layers by path, as the converter asks for them, and what it never asked for.

    A weights-only ``.h5`` has no config to say which folders of a nested model's
    group are layers; when ``outer/inner`` is not a layer of the file, the tensors
    under ``outer`` whose names sit in a folder named ``inner`` are.

    Args:
        layers: the file's layers, as the architecture finds them.
        unreachable: layers of the file (by path) that the architecture has no place for at all
            (a Keras 3 store re-read with the architecture leaves them out of ``layers``).
    """

    def __init__(self, layers: list[Layer], unreachable: list[tuple[str, Layer]] | None = None):
        self._layers = layers
        self._unreachable = unreachable or []
        self._given: set[int] = set()
        self._by_path: dict[str, Layer] = {}
        for top in layers:
            for path, layer in top.walk():
                self._by_path.setdefault(path, layer)

    def get(self, path: str) -> Layer | None:
        """The layer at ``path`` (its tensors count as used from now on), or None."""
        found = self._find(path)
        if found is not None:
            self._given.update(id(tensor) for tensor in found.all_tensors())
        return found

    def unused(self) -> list[tuple[str, list[Tensor]]]:
        """``(path, tensors)`` for each layer of the file with tensors no layer of the architecture was given."""
        left = []
        for top in self._layers:
            for path, layer in top.walk():
                tensors = [t for t in layer.tensors.values() if id(t) not in self._given]
                if tensors:
                    left.append((path, tensors))
        return left + [(path, list(layer.tensors.values())) for path, layer in self._unreachable if layer.tensors]

    def _find(self, path: str) -> Layer | None:
        found = self._by_path.get(path)
        if found is not None and (found.tensors or found.layers) or "/" not in path:
            return found
        top, leaf = path.split("/", 1)[0], path.rsplit("/", 1)[-1]
        outer = self._by_path.get(top)
        if outer is None:
            return found
        tensors = {t.role or t.name: t for t in outer.all_tensors()
                   if "/" in t.name and (f"/{t.name.rsplit('/', 1)[0]}").endswith(f"/{leaf}")}
        if not tensors:
            return found
        layer = self._by_path[path] = Layer(leaf, tensors=tensors)
        return layer


def _weights(model: Model, root: ConfigLayer, separate_arch: bool, extra: list[Any]) -> WeightIndex:
    if model.format == "keras-v3-weights" and separate_arch and model.source:
        layers = _reread_keras3_store(Path(model.source), root, extra)
        return WeightIndex(layers, _left_out(model.layers, layers))
    return WeightIndex(model.layers)


def _left_out(stored: list[Layer], reread: list[Layer]) -> list[tuple[str, Layer]]:
    """Layers of a Keras 3 store (read without a config) whose groups the architecture's re-read skipped."""
    kept = set(_groups(reread))
    return [(path, layer) for group, (path, layer) in _groups(stored).items()
            if group not in kept and layer.tensors]


def _groups(layers: list[Layer], group: str = "", path: str = "",
            found: dict[str, tuple[str, Layer]] | None = None) -> dict[str, tuple[str, Layer]]:
    """Each layer by the store group it was read from (``sequential/dense_1``), with its path by name."""
    found = {} if found is None else found
    for layer in layers:
        if layer.stored_as is None:  # not in the file
            continue
        key = f"{group}/{layer.stored_as}" if group else layer.stored_as
        where = f"{path}/{layer.name}" if path else layer.name
        found[key] = (where, layer)
        _groups(layer.layers, key, where, found)
    return found


def _reread_keras3_store(path: Path, root: ConfigLayer, extra: list[Any]) -> list[Layer]:
    from ..formats._parsers.hdf5 import H5Source
    from ..formats.keras import store as keras_v3

    source = H5Source(path)
    extra.append(source)
    layers, _ = keras_v3.read_store(source, root)
    return layers


def _keras_major(version: str | None, record: dict[str, Any]) -> int:
    """The major version recorded; without one, Keras 3 configs are told by their module names."""
    if version:
        match = re.match(r"(\d+)", str(version))
        if match:
            return int(match.group(1))
    text = json.dumps(record)[:200_000]
    return 3 if '"module"' in text or "__keras_tensor__" in text else 2
