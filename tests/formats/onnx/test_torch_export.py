"""Models exported by real torch.onnx.export: every weight reads back equal to the network's state_dict.

What the exporters do (torch 2.13), and so what these tests expect:
- Both exporters fold an eval-mode BatchNorm into the Conv before it. The TorchScript
  exporter renames the folded tensors (``onnx::Conv_25``); the dynamo exporter keeps
  the Conv's own names (``conv.weight``) for the folded values, and names a new bias
  ``conv.weight_bias``. Folded tensors are checked by value against the folding formula.
- With ``do_constant_folding=False`` (TorchScript) or ``optimize=False`` (dynamo) the
  BatchNormalization nodes stay, under the state_dict's names.
- Linear becomes Gemm (weight as stored, transB=1), or MatMul with the weight transposed
  into a new initializer (``onnx::MatMul_204``, ``val_88``); MultiheadAttention's
  in_proj_weight is transposed the same way.
- LSTM/GRU weights are re-ordered into ONNX's gate order and stacked per direction;
  the LSTM's two biases are concatenated.
- The TorchScript exporter stores equal tensors once and names copies with Identity nodes.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

import weightkit
from tests.formats.onnx.test_read import assert_reads_like_onnx

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")  # the dynamo exporter (torch.onnx.export's default) needs it

EXPORTS = {
    "torchscript": {"dynamo": False},
    "torchscript-unfolded": {"dynamo": False, "do_constant_folding": False},
    "dynamo": {"dynamo": True},
    "dynamo-unoptimized": {"dynamo": True, "optimize": False},
}


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.relu(self.bn2(self.dw(x)))
        return self.fc(x.mean((2, 3)))


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4, bias=False))

    def forward(self, x):
        return self.body(x)


class Recurrent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 6)
        self.lstm = torch.nn.LSTM(6, 5, batch_first=True)
        self.gru = torch.nn.GRU(5, 4, batch_first=True)

    def forward(self, tokens):
        y, _ = self.lstm(self.emb(tokens))
        z, _ = self.gru(y)
        return z


class Block(torch.nn.Module):
    """A pre-norm transformer block: LayerNorm, multi-head attention, LayerNorm, MLP."""

    def __init__(self):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(8)
        self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
        self.ln2 = torch.nn.LayerNorm(8)
        self.ff = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 8))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.ff(self.ln2(x))


NETWORKS = {
    "cnn": (CNN, lambda: (torch.randn(1, 3, 8, 8),)),
    "mlp": (MLP, lambda: (torch.randn(2, 6),)),
    "recurrent": (Recurrent, lambda: (torch.randint(0, 10, (2, 3)),)),
    "block": (Block, lambda: (torch.randn(2, 3, 8),)),
}
WEIGHT_ROLES = {"weight", "bias", "recurrent_weight", "running_mean", "running_var"}
CASES = [("cnn", e) for e in EXPORTS] + [
    (n, e) for n in ("mlp", "recurrent", "block") for e in ("torchscript", "dynamo")]


def randomized(network: torch.nn.Module) -> torch.nn.Module:
    """Random values everywhere (BN statistics too), so that no two tensors are equal by chance."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in network.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    return network.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Export each (network, exporter) once; returns (onnx path, state_dict as numpy)."""
    folder = tmp_path_factory.mktemp("torch_onnx")
    cache: dict[tuple[str, str], tuple[Path, dict[str, np.ndarray]]] = {}

    def export(network_name: str, exporter: str) -> tuple[Path, dict[str, np.ndarray]]:
        if (network_name, exporter) not in cache:
            make, inputs = NETWORKS[network_name]
            torch.manual_seed(0)
            network = randomized(make())
            path = folder / f"{network_name}-{exporter}" / "model.onnx"
            path.parent.mkdir()
            logging.disable(logging.WARNING)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(network, inputs(), path, **EXPORTS[exporter])
            logging.disable(logging.NOTSET)
            state = {k: v.detach().numpy().copy() for k, v in network.state_dict().items()}
            cache[network_name, exporter] = path, state
        return cache[network_name, exporter]

    return export


def forms(state: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
    """The bytes each state_dict weight may be stored as: as is, transposed, or in ONNX's gate order."""
    found = {key: [value.tobytes()] + ([np.ascontiguousarray(value.T).tobytes()] if value.ndim == 2 else [])
             for key, value in state.items() if np.issubdtype(value.dtype, np.floating)}
    for prefix, order in (("lstm", [0, 3, 1, 2]), ("gru", [1, 0, 2])):
        if f"{prefix}.weight_ih_l0" not in state:
            continue
        gates = lambda a, order=order: np.concatenate([np.split(a, len(order))[i] for i in order])  # noqa: E731
        for kind in ("ih", "hh"):
            found[f"{prefix}.weight_{kind}_l0"] = [gates(state[f"{prefix}.weight_{kind}_l0"])[None].tobytes()]
        bias = np.concatenate([gates(state[f"{prefix}.bias_ih_l0"]), gates(state[f"{prefix}.bias_hh_l0"])])[None]
        found[f"{prefix}.bias_ih_l0"] = found[f"{prefix}.bias_hh_l0"] = [bias.tobytes()]
    return found


def folded_conv(state: dict[str, np.ndarray], conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """The Conv weight and bias an exporter makes by folding BatchNorm ``bn`` into Conv ``conv``."""
    factor = state[f"{bn}.weight"] / np.sqrt(state[f"{bn}.running_var"] + 1e-5)
    bias = state.get(f"{conv}.bias", np.zeros_like(factor))
    return (state[f"{conv}.weight"] * factor[:, None, None, None],
            (bias - state[f"{bn}.running_mean"]) * factor + state[f"{bn}.bias"])


def bn_folded(network_name: str, exporter: str) -> bool:
    return network_name == "cnn" and exporter in ("torchscript", "dynamo")


@pytest.mark.parametrize("network_name, exporter", CASES)
def test_every_weight_is_the_state_dicts(exported, network_name, exporter):
    path, state = exported(network_name, exporter)
    with weightkit.load(path) as model:
        assert model.format == "onnx" and model.metadata["writer"].startswith("pytorch")
        assert assert_reads_like_onnx(model, path) >= 1
        tensors = [t for t in model.tensors() if t.role in WEIGHT_ROLES]  # not shape or scale constants
        folded = {"conv", "dw", "bn", "bn2"} if bn_folded(network_name, exporter) else set()
        expected = {key: f for key, f in forms(state).items() if key.split(".")[0] not in folded}
        known = {data for f in expected.values() for data in f}
        unexplained = []
        for tensor in tensors:
            data = tensor.read().tobytes()
            if tensor.name in expected:
                assert data == state[tensor.name].tobytes(), tensor.name  # a kept name keeps its value
            elif data not in known:
                unexplained.append(tensor.name)
        assert len(unexplained) == (4 if folded else 0), unexplained  # folded: the convs' weights and biases
        stored = {t.read().tobytes() for t in tensors}
        missing = [key for key, f in expected.items() if not stored.intersection(f)]
        assert not missing, missing


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_folded_batch_norm_matches_the_formula(exported, exporter):
    path, state = exported("cnn", exporter)
    with weightkit.load(path) as model:
        convs = [layer for layer in model.layers if layer.kind in ("conv2d", "depthwise_conv2d")]
        assert [layer.kind for layer in convs] == ["conv2d", "depthwise_conv2d"]
        assert not [layer for layer in model.layers if layer.kind == "batch_norm"]
        for layer, (conv, bn) in zip(convs, (("conv", "bn"), ("dw", "bn2"))):
            weight, bias = folded_conv(state, conv, bn)
            np.testing.assert_allclose(layer.tensors["weight"].read(), weight, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(layer.tensors["bias"].read(), bias, rtol=1e-5, atol=1e-6)
            assert layer.tensors["weight"].layout == "OIHW"


@pytest.mark.parametrize("exporter", ["torchscript-unfolded", "dynamo-unoptimized"])
def test_kept_batch_norm_has_its_four_tensors(exported, exporter):
    path, state = exported("cnn", exporter)
    with weightkit.load(path) as model:
        norms = [layer for layer in model.layers if layer.kind == "batch_norm"]
        assert len(norms) == 2
        for layer, bn in zip(norms, ("bn", "bn2")):
            assert {role: t.name for role, t in layer.tensors.items()} == {
                "weight": f"{bn}.weight", "bias": f"{bn}.bias", "running_mean": f"{bn}.running_mean",
                "running_var": f"{bn}.running_var"}
            assert layer.tensors["running_var"].read().tobytes() == state[f"{bn}.running_var"].tobytes()
        fc = next(layer for layer in model.layers if layer.kind == "dense")
        assert fc.tensors["weight"].name == "fc.weight" and fc.tensors["weight"].layout == "OI"


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_layer_kinds_of_each_network(exported, exporter):
    kinds = {}
    for network_name in ("mlp", "recurrent", "block"):
        path, _ = exported(network_name, exporter)
        with weightkit.load(path) as model:
            kinds[network_name] = [layer.kind for layer in model.layers if set(layer.tensors) & WEIGHT_ROLES]
            if network_name == "recurrent":
                lstm = next(layer for layer in model.layers if layer.kind == "lstm")
                assert set(lstm.tensors) >= {"weight", "recurrent_weight", "bias"}
                assert model.inputs[0].dtype == "int64"
    assert kinds["mlp"] == ["dense", "dense"]
    assert kinds["recurrent"][:3] == ["embedding", "lstm", "gru"]
    assert kinds["block"].count("layer_norm") == 2 and kinds["block"].count("dense") >= 3


@pytest.mark.parametrize("network_name, exporter", [("cnn", "torchscript-unfolded"), ("cnn", "dynamo"),
                                                    ("recurrent", "dynamo"), ("block", "torchscript")])
def test_written_back_runs_like_the_export(exported, tmp_path, network_name, exporter):
    import onnx
    import onnxruntime as ort

    path, _ = exported(network_name, exporter)
    with weightkit.load(path) as model:
        weightkit.save(model, tmp_path / "copy.onnx")
        feed = {spec.name: NETWORKS[network_name][1]()[0].numpy() for spec in model.inputs}
    onnx.checker.check_model(str(tmp_path / "copy.onnx"), full_check=True)
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feed)  # noqa: E731
    for ours, theirs in zip(run(tmp_path / "copy.onnx"), run(path)):
        assert ours.tobytes() == theirs.tobytes()
