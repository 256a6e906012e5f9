"""Hostile Keras files: configs of the wrong JSON types, JSON bombs in `.keras` archives, Lambdas and
the published Keras loading attacks (issue 13 items 1, 3, 7, 10; the CVEs each case names).

Every file is written by hand (json, struct, h5py): no Keras is needed to build the corpus. A case
whose payload is code points it at ``folder / "CANARY"``; weightkit must never run it.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import marshal
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cases import Case

__all__ = ["CASES", "dense_config", "keras_archive", "legacy_h5", "lambda_code"]

# What a well-formed but small model gets through cleanly (split needs a head to cut off: these have none).
_READ = ("inspect", "inspect-tensors", "inspect-json", "identify", "diff-values", "check-junction")
_ALL_BUT_FIX = _READ + ("split", "merge", "convert")

# --- building blocks ------------------------------------------------------------------------------------------


def dense_config(*extra: dict[str, Any], units: int = 4, features: int = 8) -> dict[str, Any]:
    """A Keras 3 ``.keras`` config: Sequential(Input((features,)), Dense(units, name="d"), *extra)."""
    dtype = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
    layers = [
        {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
         "config": {"batch_shape": [None, features], "dtype": "float32", "name": "x"}},
        {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
         "config": {"name": "d", "trainable": True, "dtype": dtype, "units": units, "activation": "linear",
                    "use_bias": True}, "build_config": {"input_shape": [None, features]}},
        *extra,
    ]
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "sequential", "trainable": True, "dtype": dtype, "layers": layers}}


def _store(units: int = 4, features: int = 8, more: Callable[[Any], None] | None = None) -> bytes:
    """A Keras 3 ``model.weights.h5`` for `dense_config` (layers/dense/vars/0 and 1)."""
    import h5py
    import numpy as np

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as file:
        dense = file.create_group("layers/dense/vars")
        dense["0"] = np.ones((features, units), np.float32)
        dense["1"] = np.zeros((units,), np.float32)
        file.create_group("layers/input_layer/vars")
        file.create_group("vars")
        if more is not None:
            more(file)
    return buffer.getvalue()


def _zip(path: Path, members: list[tuple[str, int, bytes, int, int]]) -> Path:
    """Write a zip by hand: each member as (name, method, stored bytes, crc32, file size)."""
    body, directory = io.BytesIO(), io.BytesIO()
    for name, method, data, crc, size in members:
        raw = name.encode()
        offset = body.tell()
        body.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 46, 0, method, 0, 0x21, crc, len(data),
                               size & 0xFFFFFFFF, len(raw), 0) + raw + data)
        directory.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 46, 46, 0, method, 0, 0x21, crc,
                                    len(data), size & 0xFFFFFFFF, len(raw), 0, 0, 0, 0, 0, offset) + raw)
    start, listing = body.tell(), directory.getvalue()
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(listing), start, 0)
    path.write_bytes(body.getvalue() + listing + end)
    return path


def _stored(name: str, data: bytes) -> tuple[str, int, bytes, int, int]:
    return name, 0, data, zlib.crc32(data), len(data)


def _deflated(name: str, data: bytes) -> tuple[str, int, bytes, int, int]:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return name, 8, packer.compress(data) + packer.flush(), zlib.crc32(data), len(data)


def _repeated_deflate(name: str, head: bytes, chunk: bytes, times: int,
                      tail: bytes) -> tuple[str, int, bytes, int, int]:
    """``head + chunk * times + tail`` deflated in milliseconds: after a full flush deflate forgets its
    history, so every copy of ``chunk`` compresses to the same bytes, which are repeated."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = packer.compress(head) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    assert block == again, "deflate did not reset at the full flush"
    end = packer.compress(tail) + packer.flush()
    crc = zlib.crc32(head)
    for _ in range(times):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail, crc)
    return name, 8, start + block * times + end, crc, len(head) + len(chunk) * times + len(tail)


def keras_archive(folder: Path, config: Any = None, *, config_member: tuple[str, int, bytes, int, int] | None = None,
                  metadata: Any = None, metadata_member: tuple[str, int, bytes, int, int] | None = None,
                  store: bytes | None = None, name: str = "model.keras",
                  extra: list[tuple[str, int, bytes, int, int]] | None = None) -> Path:
    """A ``.keras`` archive: config.json, metadata.json and model.weights.h5 (stored unless given)."""
    text = config if isinstance(config, (bytes, str)) else json.dumps(dense_config() if config is None else config)
    meta = metadata if isinstance(metadata, (bytes, str)) else json.dumps(
        {"keras_version": "3.15.1", "date_saved": "2026-01-01@00:00:00"} if metadata is None else metadata)
    members = [metadata_member or _stored("metadata.json", meta.encode() if isinstance(meta, str) else meta),
               config_member or _stored("config.json", text.encode() if isinstance(text, str) else text),
               _stored("model.weights.h5", _store() if store is None else store), *(extra or [])]
    return _zip(folder / name, members)


def legacy_h5(folder: Path, config: Any, *, name: str = "model.h5", weights: bool = True,
              attrs: dict[str, Any] | None = None) -> Path:
    """A legacy full-model ``.h5`` (Keras 2 layout) whose model_config is ``config`` (a dict or raw text)."""
    import h5py
    import numpy as np

    path = folder / name
    with h5py.File(path, "w") as file:
        file.attrs["model_config"] = config if isinstance(config, str) else json.dumps(config)
        file.attrs["keras_version"] = "2.15.0"
        file.attrs["backend"] = "tensorflow"
        for key, value in (attrs or {}).items():
            file.attrs[key] = value
        weights_group = file.create_group("model_weights")
        names = ["d"] if weights else []
        weights_group.attrs["layer_names"] = np.array([n.encode() for n in names], dtype="S")
        for layer in names:
            group = weights_group.create_group(layer)
            group.attrs["weight_names"] = np.array([b"d/kernel:0", b"d/bias:0"], dtype="S")
            group["d/kernel:0"] = np.ones((8, 4), np.float32)
            group["d/bias:0"] = np.zeros((4,), np.float32)
    return path


def legacy_config(*extra: dict[str, Any], input_shape: list[Any] | None = None) -> dict[str, Any]:
    """A tf.keras 2 Sequential config: InputLayer, Dense "d" (4 units), then ``extra`` layers."""
    layers = [{"class_name": "InputLayer", "config": {"batch_input_shape": input_shape or [None, 8],
                                                       "dtype": "float32", "name": "x"}},
              {"class_name": "Dense", "config": {"name": "d", "trainable": True, "dtype": "float32", "units": 4,
                                                 "activation": "linear", "use_bias": True}}, *extra]
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}


def _canary_function(folder: Path) -> Callable[[Any], Any]:
    canary = str(folder / "CANARY")

    def payload(x: Any) -> Any:
        import os

        os.system(f"touch {canary}")
        open(canary, "w").close()  # the payload weightkit must never run
        return x

    return payload


def lambda_code(folder: Path) -> str:
    """A function that writes the canary, marshalled and base64-encoded as Keras 2 stores a Lambda."""
    return base64.b64encode(marshal.dumps(_canary_function(folder).__code__)).decode("ascii")


def _legacy_lambda(folder: Path) -> dict[str, Any]:
    return {"class_name": "Lambda", "config": {"name": "evil", "trainable": True, "dtype": "float32",
                                               "function": [lambda_code(folder), None, None],
                                               "function_type": "lambda", "module": "__main__",
                                               "output_shape": None, "output_shape_type": "raw", "arguments": {}}}


def _keras3_lambda(folder: Path) -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
            "config": {"name": "evil", "function": {"class_name": "__lambda__", "config": {
                "code": lambda_code(folder), "defaults": None, "closure": None}}, "arguments": {}}}


# --- wrong JSON types in configs (issue 13 item 10) ---------------------------------------------------------

def _mutated(change: Callable[[dict[str, Any]], None], *, h5: bool = False) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        config = legacy_config() if h5 else dense_config()
        change(config)
        return legacy_h5(folder, config) if h5 else keras_archive(folder, config)
    return build


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set the dotted ``path`` (numbers index lists) of a config to ``value``."""
    def change(config: dict[str, Any]) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        target: Any = config
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = copy.deepcopy(value)
    return change


_WRONG_TYPES: list[tuple[str, str, Any]] = [
    ("layers-a-string", "config.layers", "layers"),
    ("layers-a-number", "config.layers", 7),
    ("layer-a-list", "config.layers.1", [1, 2, 3]),
    ("layer-config-a-list-of-numbers", "config.layers.1.config", [1, 2]),
    ("layer-config-a-string", "config.layers.1.config", "Dense"),
    ("layer-name-a-number", "config.layers.1.config.name", 12),
    ("class-name-a-list", "config.layers.1.class_name", ["Dense"]),
    ("units-a-string", "config.layers.1.config.units", "four"),
    ("units-a-list", "config.layers.1.config.units", [4]),
    ("units-negative", "config.layers.1.config.units", -4),
    ("units-huge", "config.layers.1.config.units", 2**80),
    ("units-bool", "config.layers.1.config.units", True),
    ("dtype-an-object", "config.layers.1.config.dtype", {"class_name": 3, "config": [1]}),
    ("dtype-policy-name-a-list", "config.layers.1.config.dtype", {"class_name": "DTypePolicy",
                                                                   "config": {"name": ["float32"]}}),
    ("dtype-a-list", "config.layers.1.config.dtype", ["float32"]),
    ("shape-strings", "config.layers.0.config.batch_shape", [None, "8"]),
    ("shape-negative", "config.layers.0.config.batch_shape", [None, -8]),
    ("shape-huge", "config.layers.0.config.batch_shape", [None, 2**70]),
    ("shape-bool", "config.layers.0.config.batch_shape", [None, True]),
    ("shape-a-dict", "config.layers.0.config.batch_shape", {"0": 8}),
    ("module-a-number", "config.layers.1.module", 3),
    ("inbound-nodes-a-string", "config.layers.1.inbound_nodes", "x"),
    ("initializer-class-a-dict", "config.layers.1.config.kernel_initializer", {"class_name": {"a": 1}}),
    ("trainable-a-string", "config.layers.1.config.trainable", "yes"),
    ("use-bias-a-list", "config.layers.1.config.use_bias", [True]),
]

_WRONG_TYPES_H5: list[tuple[str, str, Any]] = [
    ("h5-layers-a-string", "config.layers", "layers"),
    ("h5-layer-config-a-number", "config.layers.1.config", 5),
    ("h5-name-a-dict", "config.layers.1.config.name", {"n": 1}),
    ("h5-batch-input-shape-strings", "config.layers.0.config.batch_input_shape", ["a", "b"]),
    ("h5-dim-ordering-a-list", "config.layers.1.config.dim_ordering", ["th"]),
    ("h5-units-a-float", "config.layers.1.config.units", 4.5),
]


def _functional_with_garbage_inbound(folder: Path) -> Path:
    config = {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
              "config": {"name": "f", "layers": [
                  {"module": "keras.layers", "class_name": "InputLayer", "name": "x",
                   "config": {"batch_shape": [None, 8], "dtype": "float32", "name": "x"}, "inbound_nodes": []},
                  {"module": "keras.layers", "class_name": "Dense", "name": "d", "config": {"name": "d", "units": 4},
                   "inbound_nodes": [{"args": 5, "kwargs": [1]}, [7, "x"], {"keras_history": [3, "a"]}]}],
                  "input_layers": [["x", 0, 0]], "output_layers": "d"}}
    return keras_archive(folder, config)


# --- JSON bombs in .keras archives (issue 13 items 3 and 7) -------------------------------------------------

def _zeros_bomb(folder: Path) -> Path:
    """config.json: ~250 MiB of ``[0,0,...]`` deflated to ~250 KB (under main's old 256 MiB bound)."""
    member = _repeated_deflate("config.json", b"[", b"0," * (1 << 19), 250, b"0]")
    return keras_archive(folder, config_member=member)


def _lists_bomb(folder: Path) -> Path:
    """config.json: 60 MiB of empty lists (under JSON_BYTES), 20M lists of 56 bytes each when parsed (1.3 GB)."""
    member = _repeated_deflate("config.json", b"[", b"[]," * (1 << 18), 80, b"[]]")
    return keras_archive(folder, config_member=member)


# ``[``, 1 GiB of spaces, ``]`` compressed with bzip2 (the stream takes minutes to make; its 785 bytes are kept).
_BZIP2_STREAM = (
    "QlpoOTFBWSZTWYQoeocFfjgSAMAAAAgACCAAUGYE1I3EVAS6kkgqrahUBLzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoC"
    "XMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8"
    "BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAA"
    "wgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJc"
    "xQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwF"
    "fjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADC"
    "ATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzF"
    "BWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1m1ImW/AV+"
    "OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUFZJlNZtSJlvwFfjhAAwAAACCAAMIB"
    "NRkKgJakKgJcxQVkmU1m1ImW/AV+OEADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWbUiZb8BX44QAMAAAAggADCATUZCoCWpCoCXMUF"
    "ZJlNZy0cmKgCKUxoAwAAABAACAAggAFBmmgUqPTKJEhvqVUqi3lEiQ4XckU4UJAb8PvT"
)
_BZIP2_CRC = 0xbc8e5f8d


def _bzip2_config(folder: Path) -> Path:
    """config.json compressed with bzip2, declaring 2 bytes, decoding to 1 GiB (zipfile inflates bzip2 in one call)."""
    data = base64.b64decode("".join(_BZIP2_STREAM))
    return keras_archive(folder, config_member=("config.json", 12, data, _BZIP2_CRC, 2))


def _deep(text_depth: int, key: str | None = None) -> str:
    inner = "[" * text_depth + "]" * text_depth
    return inner if key is None else json.dumps(dense_config())[:-1] + f', "{key}": {inner}}}'


def _nested_models(levels: int) -> dict[str, Any]:
    """Sequentials inside Sequentials, ``levels`` deep (three JSON levels each): weightkit's own recursion."""
    config = dense_config()
    for level in range(levels):
        config = {"class_name": "Sequential", "config": {"name": f"s{level}", "layers": [config]}}
    return config


# --- Lambdas and the published Keras attacks -----------------------------------------------------------------

def _cve_2024_3660_h5(folder: Path) -> Path:
    """CVE-2024-3660 / CVE-2025-9905: a legacy .h5 Lambda whose marshalled bytecode writes the canary."""
    return legacy_h5(folder, legacy_config(_legacy_lambda(folder)))


def _cve_2024_3660_keras(folder: Path) -> Path:
    """CVE-2024-3660 in a .keras: a Keras 3 ``__lambda__`` function record carrying the canary's bytecode."""
    return keras_archive(folder, dense_config(_keras3_lambda(folder)))


def _cve_2025_1550(folder: Path) -> Path:
    """CVE-2025-1550: config.json names arbitrary modules: os.system as a layer, builtins.exec with arguments."""
    canary = str(folder / "CANARY")
    system = {"module": "os", "class_name": "system", "registered_name": "system",
              "config": {"name": "system", "command": f"touch {canary}"}}
    exec_lambda = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None, "config": {
        "name": "run", "function": {"module": "builtins", "class_name": "function", "config": "exec",
                                    "registered_name": "function"},
        "arguments": {"source": f"open({canary!r}, 'w')"}}}
    return keras_archive(folder, dense_config(system, exec_lambda))


def _cve_2025_9906(folder: Path) -> Path:
    """CVE-2025-9906: keras.config.enable_unsafe_deserialization named before a Lambda carrying code."""
    unlock = {"module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization",
              "registered_name": "enable_unsafe_deserialization"}
    config = dense_config(_keras3_lambda(folder))
    config["config"]["layers"][1]["config"]["activation"] = unlock
    return keras_archive(folder, config)


def _cve_2025_8747(folder: Path) -> Path:
    """CVE-2025-8747 (the 9906 report's file download): keras.utils.get_file named as a function."""
    fetch = {"module": "keras.utils", "class_name": "function", "config": "get_file", "registered_name": "get_file"}
    config = dense_config()
    config["config"]["layers"][1]["config"]["activation"] = fetch
    return keras_archive(folder, config)


def _cve_2026_1462(folder: Path) -> Path:
    """CVE-2026-1462: a TFSMLayer naming a SavedModel to load (and run) from the file's own path."""
    saved = {"module": "keras.layers", "class_name": "TFSMLayer", "registered_name": None,
             "config": {"name": "tfsm", "filepath": str(folder / "saved"), "call_endpoint": "serve"}}
    return keras_archive(folder, dense_config(saved))


def _cve_2026_1669(folder: Path) -> Path:
    """CVE-2026-1669: model.weights.h5 in a .keras whose kernel is an HDF5 external dataset (a file beside it)."""
    secret = folder / "secret.txt"
    secret.write_bytes(b"password=hunter2" * 2)

    def external(file: Any) -> None:
        del file["layers/dense/vars/0"]
        file["layers/dense/vars"].create_dataset("0", shape=(8, 4), dtype="<f4", external=[(str(secret), 0, 128)])

    return keras_archive(folder, store=_store(more=external))


def _cve_2026_0897(folder: Path) -> Path:
    """CVE-2026-0897 (HDF5 DoS in weight loading): a kernel declaring 2**40 float32 values in a tiny file."""
    def huge(file: Any) -> None:
        del file["layers/dense/vars/0"]
        file["layers/dense/vars"].create_dataset("0", shape=(2**20, 2**20), dtype="<f4", chunks=(1024, 1024))

    return keras_archive(folder, dense_config(units=2**20, features=2**20), store=_store(more=huge))


def _path_traversal(folder: Path) -> Path:
    """Path traversal in .keras extraction: asset members named ../../CANARY (weightkit extracts nothing)."""
    return keras_archive(folder, extra=[_stored("assets/../../CANARY", b"x"), _stored("/tmp/CANARY-abs", b"x")])


def _verify_batch_bomb(folder: Path) -> Path:
    """An .h5 of a few KB declaring input (None, 40000, 40000, 1): convert --verify's batch would be 23.8 GiB+."""
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 40000, 40000, 1], "dtype": "float32",
                                                "name": "x"}},
        {"class_name": "GlobalAveragePooling2D", "config": {"name": "g", "data_format": "channels_last"}},
        {"class_name": "Dense", "config": {"name": "d", "units": 4, "activation": "linear", "use_bias": True}}]}}
    import h5py
    import numpy as np

    path = legacy_h5(folder, config, weights=False)
    with h5py.File(path, "a") as file:
        group = file["model_weights"]
        group.attrs["layer_names"] = np.array([b"d"], dtype="S")
        layer = group.create_group("d")
        layer.attrs["weight_names"] = np.array([b"d/kernel:0", b"d/bias:0"], dtype="S")
        layer["d/kernel:0"] = np.ones((1, 4), np.float32)
        layer["d/bias:0"] = np.zeros((4,), np.float32)
    return path


def _flatten_of_huge_dims(folder: Path) -> Path:
    """Declared sizes near 2**63 that shape inference multiplies (Flatten of 4000 of them): no huge ints."""
    shape = [None, *([2**62] * 4000)]
    config = dense_config({"module": "keras.layers", "class_name": "Flatten", "config": {"name": "f"}})
    config["config"]["layers"][0]["config"]["batch_shape"] = shape
    return keras_archive(folder, config)


# --- hostile marshal data in a Lambda (lambdas.py's reader) -------------------------------------------------

def _marshal_lambda(payload: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        layer = _legacy_lambda(folder)
        layer["config"]["function"] = [base64.b64encode(payload).decode(), None, None]
        return legacy_h5(folder, legacy_config(layer))
    return build


_MARSHAL = [
    ("marshal-deep-tuples", b"(" + struct.pack("<i", 1) * 1 + b"(\x01\x00\x00\x00" * 100_000 + b"N"),
    ("marshal-huge-count", b"(" + struct.pack("<i", 2**31 - 1) + b"N" * 100),
    ("marshal-huge-long", b"l" + struct.pack("<i", -(2**31 - 1)) + b"\x00" * 64),
    ("marshal-truncated-code", marshal.dumps((lambda x: x).__code__)[:40]),
    ("marshal-ref-loop", b"\xa8\x01\x00\x00\x00r\x00\x00\x00\x00"),
]


# --- the list ----------------------------------------------------------------------------------------------

def _archive_with(config: str | None = None, metadata: str | None = None) -> Callable[[Path], Path]:
    return lambda folder: keras_archive(folder, config, metadata=metadata)


def _h5_with(config: str) -> Callable[[Path], Path]:
    return lambda folder: legacy_h5(folder, config)


def _h5_training_config(text: str) -> Callable[[Path], Path]:
    return lambda folder: legacy_h5(folder, legacy_config(), attrs={"training_config": text})


_ITEM10 = "issue 13 item 10 (.keras configs whose values have the wrong JSON type)"
_ITEM7 = "issue 13 item 7 (deeply nested JSON)"

CASES: list[Case] = [
    *(Case(f"keras/config-{name}", _ITEM10, _mutated(_set(path, value)), commands=_ALL_BUT_FIX)
      for name, path, value in _WRONG_TYPES),
    *(Case(f"keras/config-{name}", _ITEM10, _mutated(_set(path, value), h5=True), commands=_ALL_BUT_FIX)
      for name, path, value in _WRONG_TYPES_H5),
    Case("keras/config-inbound-nodes-garbage", _ITEM10, _functional_with_garbage_inbound, commands=_ALL_BUT_FIX),
    Case("keras/config-json-zeros-bomb", "issue 13 item 3 (256 MiB of JSON zeros deflated to 260 KB)", _zeros_bomb,
         match="json_bytes"),
    Case("keras/config-json-empty-lists-bomb", "issue 13 item 7 (JSON amplification: 60 MiB, 1.3 GB parsed)",
         _lists_bomb, match="entries"),
    Case("keras/config-json-bzip2", "issue 13 item 7 (bzip2 config.json declaring 2 bytes, holding 1 GiB)",
         _bzip2_config),
    Case("keras/config-json-deep-100k", _ITEM7, _archive_with(config=_deep(100_000)), match="nesting"),
    Case("keras/config-json-deep-300-key", _ITEM7, _archive_with(config=_deep(300, "extra")), match="nesting"),
    Case("keras/metadata-json-deep", _ITEM7, _archive_with(metadata=_deep(100_000)), match="nesting"),
    Case("keras/config-nested-models-300", _ITEM7, _archive_with(config=json.dumps(_nested_models(300))),
         match="nesting"),
    Case("keras/h5-model-config-deep", _ITEM7, _h5_with(_deep(100_000)), match="nesting"),
    Case("keras/h5-nested-models-300", _ITEM7, _h5_with(json.dumps(_nested_models(300))), match="nesting"),
    Case("keras/h5-training-config-deep", _ITEM7, _h5_training_config(_deep(100_000)), match="nesting"),
    Case("keras/cve-2024-3660-lambda-h5", "CVE-2024-3660", _cve_2024_3660_h5, expect="ok", commands=_READ),
    Case("keras/cve-2024-3660-lambda-h5-convert", "CVE-2024-3660, CVE-2025-9905 (convert --verify)",
         _cve_2024_3660_h5, commands=("convert",), match="Lambda"),
    Case("keras/cve-2024-3660-lambda-keras", "CVE-2024-3660", _cve_2024_3660_keras, expect="ok", commands=_READ),
    Case("keras/cve-2024-3660-lambda-keras-convert", "CVE-2024-3660", _cve_2024_3660_keras, commands=("convert",)),
    Case("keras/cve-2025-1550-module-names", "CVE-2025-1550", _cve_2025_1550, expect="ok", commands=_READ),
    Case("keras/cve-2025-1550-module-names-convert", "CVE-2025-1550", _cve_2025_1550, commands=("convert",)),
    Case("keras/cve-2025-9906-unsafe-then-lambda", "CVE-2025-9906", _cve_2025_9906, expect="ok", commands=_READ),
    Case("keras/cve-2025-9906-unsafe-then-lambda-convert", "CVE-2025-9906", _cve_2025_9906, commands=("convert",)),
    Case("keras/cve-2025-8747-get-file", "CVE-2025-8747", _cve_2025_8747, expect="ok", commands=_READ),
    Case("keras/cve-2026-1462-tfsmlayer", "CVE-2026-1462", _cve_2026_1462, expect="ok", commands=_READ),
    Case("keras/cve-2026-1669-external-dataset", "CVE-2026-1669 (HDF5 external dataset in a .keras)", _cve_2026_1669,
         match="external"),
    Case("keras/cve-2026-0897-huge-dataset", "CVE-2026-0897 (oversized HDF5 dataset in weight loading)",
         _cve_2026_0897, commands=("diff-values", "convert")),
    Case("keras/path-traversal-assets", "path traversal in .keras extraction (Keras asset members)", _path_traversal,
         expect="ok", commands=_READ),
    Case("keras/verify-batch-40000x40000", "issue 13 item 3 (convert --verify batch from the declared shape)",
         _verify_batch_bomb, expect="ok", commands=_READ),
    Case("keras/verify-batch-40000x40000-convert", "issue 13 item 3 (convert --verify asks for 23.8 GiB)",
         _verify_batch_bomb, commands=("convert",), match="verify_bytes"),
    Case("keras/shape-flatten-huge-dims", "issue 13 item 3 (products of huge declared sizes)", _flatten_of_huge_dims,
         expect="ok", commands=("inspect", "inspect-json", "check-junction")),
    *(Case(f"keras/lambda-{name}", "lambdas.py's bounded marshal reader (hostile marshal data)",
           _marshal_lambda(payload), expect="ok", commands=("inspect", "inspect-json", "check-junction"))
      for name, payload in _MARSHAL),
]
