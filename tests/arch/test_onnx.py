"""weightkit.arch.onnx: ONNX graphs cut at tensors, checked with onnx.checker and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

import weightkit
from weightkit.arch import architecture_of
from weightkit.arch.onnx import OnnxGraph
from weightkit.errors import UsageError

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from tests.nets import torch_resnet

    folder = tmp_path_factory.mktemp("arch_onnx")
    torch.onnx.export(torch_resnet().eval(), torch.randn(1, 3, 8, 8), folder / "net.onnx", dynamo=False,
                      input_names=["x"], output_names=["y"])
    return folder / "net.onnx"


def test_an_onnx_file_gets_the_onnx_architecture(exported):
    with weightkit.load(exported) as model:
        assert isinstance(architecture_of(model), OnnxGraph)


def test_boundaries_are_tensors_outside_residual_blocks_with_their_shapes(exported):
    with weightkit.load(exported) as model:
        cuts = OnnxGraph().boundaries(model)
    names = [c.at for c in cuts]
    assert "/layer1/layer1.0/conv1/Conv_output_0" not in names  # the skip connection crosses it
    assert "y" not in names and "x" not in names
    assert all(c.shape and c.shape[0] == 1 for c in cuts)


def test_proposal_is_the_tensor_entering_global_pooling(exported):
    with weightkit.load(exported) as model:
        proposal = OnnxGraph().propose(model)
    assert proposal.at.endswith("Relu_1_output_0") and proposal.shape == (1, 8, 8, 8)
    assert "starts the classifier" in proposal.reason


def test_cut_parts_run_in_onnxruntime_and_join_back(exported, tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype("float32")
    with weightkit.load(exported) as model:
        at = OnnxGraph().propose(model).at
        backbone, head = OnnxGraph().cut(model, at)
    with backbone, head, OnnxGraph().join(backbone, head) as joined:  # the parts keep the file open
        for part, name in ((backbone, "b.onnx"), (head, "h.onnx"), (joined, "j.onnx")):
            weightkit.save(part, tmp_path / name)
    expected = ort.InferenceSession(exported).run(None, {"x": x})[0]
    features = ort.InferenceSession(tmp_path / "b.onnx").run(None, {"x": x})[0]
    session = ort.InferenceSession(tmp_path / "h.onnx")
    assert np.array_equal(session.run(None, {session.get_inputs()[0].name: features})[0], expected)
    onnx.checker.check_model(str(tmp_path / "j.onnx"), full_check=True)
    assert np.array_equal(ort.InferenceSession(tmp_path / "j.onnx").run(None, {"x": x})[0], expected)


def test_a_cut_inside_a_block_is_refused(exported):
    with weightkit.load(exported) as model, pytest.raises(UsageError, match="cross"):
        OnnxGraph().cut(model, "/layer1/layer1.0/conv1/Conv_output_0")
