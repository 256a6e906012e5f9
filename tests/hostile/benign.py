"""Small valid files of every format: the companions the corpus runs hostile files against, and fuzz seeds.

`make_benign(folder)` writes them once (a Keras 3 model on the torch backend saved as .keras, .h5
and .weights.h5; a torch state_dict in the zip and the legacy format; safetensors; a sharded
safetensors index; an ONNX graph, also with external data) and returns a `Benign` naming them.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

# kind → file name in the benign folder (its suffix is the one an output of that kind gets)
FILES = {
    "keras": "benign.keras",
    "h5": "benign.h5",
    "weights_h5": "benign.weights.h5",
    "torch": "benign.pt",
    "torch_legacy": "benign_legacy.pt",
    "safetensors": "benign.safetensors",
    "sharded": "sharded/model.safetensors.index.json",
    "onnx": "benign.onnx",
    "onnx_external": "external/benign_ext.onnx",
}
SUFFIX = {"keras": ".keras", "h5": ".h5", "weights_h5": ".weights.h5", "torch": ".pt", "torch_legacy": ".pt",
          "safetensors": ".safetensors", "sharded": ".safetensors", "onnx": ".onnx", "onnx_external": ".onnx"}


@dataclass(frozen=True)
class Benign:
    """The folder of benign files, by kind."""

    folder: Path

    def path(self, kind: str) -> Path:
        return self.folder / FILES[kind]

    def suffix(self, kind: str) -> str:
        """The suffix an output made from a file of this kind gets (merge -o, check --fix)."""
        return SUFFIX[kind]


_SHARED: list[Benign] = []


def shared() -> Benign:
    """One benign set per process, made on first use (case builders and fuzz seeds read from it)."""
    if not _SHARED:
        folder = Path(tempfile.mkdtemp(prefix="weightkit-benign-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _SHARED.append(make_benign(folder))
    return _SHARED[0]


def seed(kind: str) -> bytes:
    """The bytes of the benign file of `kind` (see FILES)."""
    return shared().path(kind).read_bytes()


def make_benign(folder: Path) -> Benign:
    """Write every benign file into `folder` (made by Keras, PyTorch, safetensors and onnx themselves)."""
    folder.mkdir(parents=True, exist_ok=True)
    _keras_files(folder)
    state = _torch_files(folder)
    _safetensors_files(folder, state)
    _onnx_files(folder)
    return Benign(folder)


def _keras_files(folder: Path) -> None:
    """A tiny image model (conv, batch norm, pool, dense) in Keras 3's three formats."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3), name="image"), keras.layers.Conv2D(4, 3, name="stem"),
                              keras.layers.BatchNormalization(name="bn"),
                              keras.layers.GlobalAveragePooling2D(name="pool"), keras.layers.Dense(2, name="fc")],
                             name="tiny")
    model.save(folder / FILES["keras"])
    model.save(folder / FILES["h5"])
    model.save_weights(folder / FILES["weights_h5"])


def _torch_files(folder: Path) -> dict:
    """A conv/bn/linear state_dict saved by torch.save, in the zip format and the legacy one."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(OrderedDict(conv=torch.nn.Conv2d(3, 4, 3), bn=torch.nn.BatchNorm2d(4),
                                          fc=torch.nn.Linear(4, 2)))
    state = net.state_dict()
    torch.save(state, folder / FILES["torch"])
    torch.save(state, folder / FILES["torch_legacy"], _use_new_zipfile_serialization=False)
    return state


def _safetensors_files(folder: Path, state: dict) -> None:
    """The float tensors of `state` as one safetensors file and as a two-shard index."""
    from safetensors.torch import save_file

    tensors = {name: value.contiguous() for name, value in state.items() if value.dtype.is_floating_point}
    save_file(tensors, folder / FILES["safetensors"], metadata={"format": "pt"})
    index = folder / FILES["sharded"]
    index.parent.mkdir(exist_ok=True)
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map, total = {}, 0
    for shard, keys in shards.items():
        save_file({key: tensors[key] for key in keys}, index.parent / shard, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(keys, shard))
        total += sum(tensors[key].numel() * tensors[key].element_size() for key in keys)
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))


def _onnx_files(folder: Path) -> None:
    """Conv → Relu → GlobalAveragePool → Flatten → Gemm, with its initializers inline and as external data."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
               "conv.bias": rng.standard_normal(4).astype(np.float32),
               "fc.weight": rng.standard_normal((2, 4)).astype(np.float32),
               "fc.bias": rng.standard_normal(2).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["image", "conv.weight", "conv.bias"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                            ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
                              [numpy_helper.from_array(value, name) for name, value in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="weightkit-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save_model(model, folder / FILES["onnx"])
    external = folder / FILES["onnx_external"]
    external.parent.mkdir(exist_ok=True)
    onnx.save_model(model, external, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="benign_ext.onnx.data", size_threshold=0)
