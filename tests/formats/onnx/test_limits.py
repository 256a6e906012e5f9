"""Hostile ONNX graphs: cycles end, node counts and nesting are bounded, merging a graph with itself works."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import weightkit
from tests.hostile import onnx_cases
from weightkit import limits
from weightkit.arch.onnx import cut_points, propose_cut
from weightkit.errors import UnsafeFileError
from weightkit.ops.merge import merge_models, save_merged


@pytest.mark.parametrize("build", [onnx_cases._identity_cycle, onnx_cases._identity_ring], ids=["pair", "ring"])
def test_identity_cycles_are_read_without_looping(tmp_path, build):
    with weightkit.load(build(tmp_path)) as model:
        assert model.layer("mm").kind in ("dense", "matmul")
        assert cut_points(model.graph.graph) is not None


def test_graph_nodes_are_bounded_by_the_limit(tmp_path, monkeypatch):
    path = onnx_cases._huge_graph(1_001)(tmp_path)
    with limits.raised(graph_nodes=1_000), pytest.raises(UnsafeFileError, match="limit 'graph_nodes'"):
        weightkit.load(path)
    monkeypatch.setenv("WEIGHTKIT_MAX_GRAPH_NODES", "1000")
    with pytest.raises(UnsafeFileError, match="WEIGHTKIT_MAX_GRAPH_NODES"):
        weightkit.load(path)
    with limits.raised(graph_nodes=1_001), weightkit.load(path) as model:
        assert len(model.layers) == 1_001


def test_protobuf_nesting_follows_the_limit(tmp_path):
    path = onnx_cases._deep_subgraphs(tmp_path)
    with limits.raised(nesting=20), pytest.raises(UnsafeFileError, match="limit 'nesting'"):
        weightkit.load(path)
    with pytest.raises(weightkit.FileFormatError, match="more than protobuf parses"):
        weightkit.load(path)


def test_cut_points_of_a_long_chain_are_found_in_one_pass(tmp_path):
    """Every tensor of a chain is a cut point; the classifier search no longer rescans the later points."""
    with limits.raised(graph_nodes=20_000), weightkit.load(onnx_cases._huge_graph(20_000)(tmp_path)) as model:
        points = cut_points(model.graph.graph)
        assert len(points) == 19_999 and points[0] == "t0"
        assert propose_cut(model.graph.graph) is None


def test_a_graph_merged_with_itself_runs_twice(tmp_path):
    """onnx.compose refused the repeated names ("Found repeated edge names"); the second copy's are prefixed."""
    path = onnx_cases._mergeable(tmp_path)
    out = tmp_path / "twice.onnx"
    with weightkit.load(path) as first, weightkit.load(path) as second:
        with merge_models(first, second) as result:
            save_merged(result.model, out)
    onnx.checker.check_model(onnx.load(out))
    x = np.array([[1.0, -2.0, 3.0, -4.0]], dtype=np.float32)
    (y,) = ort.InferenceSession(str(out)).run(None, {"x": x})
    np.testing.assert_array_equal(y, np.maximum(np.maximum(x, 0), 0))
