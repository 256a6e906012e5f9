"""weightkit.ops.fingerprint: one fingerprint for the same weights, whatever file holds them."""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.ops.fingerprint import fingerprint

from ..nets import copy_keras_weights_to_torch, keras_cnn, torch_cnn


@pytest.fixture(scope="module")
def same_weights(tmp_path_factory):
    """One trained-looking network as Keras .h5, PyTorch .pt, .safetensors and ONNX (from torch)."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("fingerprint")
    rng = np.random.default_rng(1)
    net = keras_cnn()
    for weight in net.weights:
        weight.assign(rng.standard_normal(tuple(weight.shape)).astype(np.float32))
    net.save(folder / "cnn.h5")
    module = torch_cnn().eval()
    copy_keras_weights_to_torch(net, module)
    state = {k: v for k, v in module.state_dict().items() if k.split(".")[-1] != "num_batches_tracked"}
    torch.save(state, folder / "cnn.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "cnn.safetensors")
    torch.onnx.export(module, (torch.randn(1, 3, 16, 16),), str(folder / "cnn.onnx"), dynamo=False,
                      do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    return folder, state


def _fingerprint(path) -> str:
    with weightkit.load(path) as model:
        return fingerprint(model)


def test_same_weights_same_fingerprint_in_every_format(same_weights):
    folder, _ = same_weights
    found = {name: _fingerprint(folder / name) for name in ("cnn.h5", "cnn.pt", "cnn.safetensors", "cnn.onnx")}
    assert len(set(found.values())) == 1, found
    assert found["cnn.h5"].startswith("sha256:") and len(found["cnn.h5"]) == len("sha256:") + 64


def test_one_changed_value_changes_it(same_weights, tmp_path):
    import torch

    folder, state = same_weights
    changed = {k: v.clone() for k, v in state.items()}
    changed["fc.weight"][0, 0] += 1e-3
    torch.save(changed, tmp_path / "changed.pt")
    assert _fingerprint(tmp_path / "changed.pt") != _fingerprint(folder / "cnn.pt")


def test_names_and_order_do_not_matter(same_weights, tmp_path):
    import torch

    folder, state = same_weights
    torch.save({f"renamed_{i}": state[k] for i, k in enumerate(reversed(state))}, tmp_path / "renamed.pt")
    assert _fingerprint(tmp_path / "renamed.pt") == _fingerprint(folder / "cnn.pt")
