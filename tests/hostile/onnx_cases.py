"""Hostile ONNX files: graph cycles and huge graphs, external data that leaves the model's folder or
names its byte range in numbers Python's int() misreads, and a graph merged with itself."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.hostile.cases import Case

_SECRET = b"secret bytes a model must not read \n" * 2  # 72 bytes: a 4x4 float32 fits in them


def _model(nodes: list, initializers: list, *, shape: tuple[int, ...] = (1, 4)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _save(folder: Path, proto: onnx.ModelProto, name: str = "model.onnx") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return path


def _weight() -> TensorProto:
    return numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")


# ---- graphs ------------------------------------------------------------------------------------


def _identity_cycle(folder: Path) -> Path:
    """``Identity(W) -> A`` and ``Identity(A) -> W``: following Identity aliases from A never ends."""
    nodes = [helper.make_node("Identity", ["W"], ["A"], name="alias_a"),
             helper.make_node("Identity", ["A"], ["W"], name="alias_w"),
             helper.make_node("MatMul", ["x", "A"], ["h"], name="mm"),
             helper.make_node("MatMul", ["h", "W"], ["y"], name="mm2")]
    return _save(folder, _model(nodes, [_weight()]))


def _identity_ring(folder: Path) -> Path:
    """A ring of eight Identity nodes over an initializer, each also read by a MatMul."""
    names = [f"r{i}" for i in range(8)]
    nodes = [helper.make_node("Identity", ["W"], [names[0]], name="enter")]
    nodes += [helper.make_node("Identity", [names[i]], [names[(i + 1) % 8]], name=f"ring{i}") for i in range(8)]
    nodes += [helper.make_node("MatMul", ["x", names[3]], ["y"], name="mm")]
    return _save(folder, _model(nodes, [_weight()]))


def _chain_bytes(count: int) -> bytes:
    """A GraphProto of ``count`` Relu nodes in a chain, encoded by hand (fast for big counts)."""
    from weightkit.formats._parsers import protobuf as wire

    parts = []
    for index in range(count):
        source = "x" if index == 0 else f"t{index - 1}"
        target = "y" if index == count - 1 else f"t{index}"
        parts.append(wire.encode_len_field(1, wire.encode_string_field(1, source) + wire.encode_string_field(2, target)
                                           + wire.encode_string_field(4, "Relu")))
    return b"".join(parts)


def _huge_graph(count: int):
    def build(folder: Path) -> Path:
        from weightkit.formats._parsers import protobuf as wire

        proto = _model([], [])
        graph = proto.graph.SerializeToString() + _chain_bytes(count)
        proto.ClearField("graph")
        path = folder / "huge.onnx"
        path.write_bytes(proto.SerializeToString() + wire.encode_len_field(7, graph))
        return path

    return build


def _deep_subgraphs(folder: Path) -> Path:
    """If nodes nested 40 deep (120 protobuf levels, more than protobuf parses) over a big tensor: refused,
    no recursion error."""
    from weightkit.formats._parsers import protobuf as wire

    bottom = numpy_helper.from_array(np.zeros(1024, np.float32), "deep").SerializeToString()
    graph = wire.encode_len_field(5, bottom)  # a big tensor, so weightkit's own walk goes all the way down
    for _ in range(40):
        attribute = (wire.encode_len_field(1, b"then_branch") + wire.encode_int_field(20, 5)
                     + wire.encode_len_field(6, graph))
        graph = wire.encode_len_field(1, wire.encode_string_field(4, "If") + wire.encode_len_field(5, attribute))
    path = folder / "deep.onnx"
    path.write_bytes(wire.encode_int_field(1, 8) + wire.encode_len_field(7, graph))
    return path


# ---- external data -----------------------------------------------------------------------------


def _external(folder: Path, location: str, *, offset: str = "0", length: str | None = "64",
              data: bytes | None = None) -> Path:
    """A MatMul model whose 4x4 weight is external data at ``location`` (written when ``data`` is given)."""
    tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 4], data_location=TensorProto.EXTERNAL)
    entries = {"location": location, "offset": offset}
    if length is not None:
        entries["length"] = length
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    path = _save(folder / "model", _model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], [tensor]))
    if data is not None:
        (path.parent / location).write_bytes(data)
    return path


def _secret(folder: Path) -> Path:
    secret = folder / "outside" / "secret.bin"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_bytes(_SECRET)
    return secret


def _number_case(name: str, offset: str = "0", length: str | None = "64") -> Case:
    return Case(f"onnx/external-{name}", "issue 13 item 8", match="ASCII digits", commands=("inspect", "inspect-json"),
                build=lambda folder: _external(folder, "w.bin", offset=offset, length=length, data=bytes(64)))


def _linked(folder: Path, target: str | Path, name: str = "w.bin") -> Path:
    path = _external(folder, name)
    os.symlink(target, path.parent / name)
    return path


def _parent_symlink(folder: Path) -> Path:
    secret = _secret(folder)
    path = _external(folder, "linked/secret.bin")
    os.symlink(secret.parent, path.parent / "linked")
    return path


def _hard_link(folder: Path) -> Path:
    secret = _secret(folder)
    path = _external(folder, "w.bin")
    os.link(secret, path.parent / "w.bin")
    return path


def _fifo(folder: Path) -> Path:
    path = _external(folder, "w.bin")
    os.mkfifo(path.parent / "w.bin")
    return path


def _directory(folder: Path) -> Path:
    path = _external(folder, "w.bin")
    (path.parent / "w.bin").mkdir()
    return path


def _hf_cache(folder: Path, blobs_target: Path | None = None) -> Path:
    """An ONNX model in a Hugging Face cache: model and data are relative links into ``blobs``."""
    repo = folder / "models--org--net"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    blobs = repo / "blobs"
    if blobs_target is None:
        blobs.mkdir()
        data = np.eye(4, dtype=np.float32).tobytes()
        (blobs / "b1").write_bytes(data)
        real = _external(folder / "staging", "w.bin")
        (blobs / "b0").write_bytes(real.read_bytes())
    else:
        os.symlink(blobs_target, blobs)
    os.symlink("../../blobs/b0", snapshot / "model.onnx")
    os.symlink("../../blobs/b1", snapshot / "w.bin")
    return snapshot / "model.onnx"


def _hf_cache_escape(folder: Path) -> Path:
    """The same layout, but ``blobs`` is a link to a folder elsewhere holding the 'model' and a secret."""
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "b1").write_bytes(_SECRET[:64])
    real = _external(folder / "staging", "w.bin")
    (elsewhere / "b0").write_bytes(real.read_bytes())
    return _hf_cache(folder, elsewhere)


# ---- merging -----------------------------------------------------------------------------------


def _mergeable(folder: Path) -> Path:
    """x[1,4] -> MatMul(W) -> Relu -> y[1,4]: its output fits its own input, so `merge A A` joins it to itself."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
             helper.make_node("Relu", ["h"], ["y"], name="relu")]
    return _save(folder, _model(nodes, [_weight()]))


CASES: list[Case] = [
    Case("onnx/identity-cycle", "issue 13 item 2", _identity_cycle, expect="ok",
         commands=("inspect", "inspect-tensors", "inspect-json", "diff-values")),
    Case("onnx/identity-ring", "issue 13 item 2", _identity_ring, expect="ok",
         commands=("inspect", "inspect-tensors", "inspect-json", "diff-values")),
    Case("onnx/graph-nodes-over-limit", "issue 13 item 8", _huge_graph(100_001), match="graph_nodes",
         commands=("inspect", "inspect-json"), env={"WEIGHTKIT_MAX_GRAPH_NODES": "100000"}),
    Case("onnx/deep-subgraphs", "issue 13 item 8 (nesting)", _deep_subgraphs, commands=("inspect",)),
    _number_case("offset-arabic-indic-digits", offset="\u0660"),
    _number_case("length-arabic-indic-digits", length="\u0666\u0664"),
    _number_case("offset-superscript-two", offset="\u00b2"),
    _number_case("offset-5000-digits", offset="9" * 5000),
    _number_case("length-fullwidth-digits", length="\uff16\uff14"),
    _number_case("offset-underscore", offset="0_0"),
    Case("onnx/external-range-past-end", "issue 13 item 8", match="has only",
         build=lambda f: _external(f, "w.bin", offset="8", length="64", data=bytes(64)), commands=("inspect",)),
    Case("onnx/external-parent-traversal", "CVE-2022-25882", match="'..'", commands=("inspect",),
         build=lambda f: (_secret(f), _external(f, "../outside/secret.bin"))[1]),
    Case("onnx/external-nested-traversal", "CVE-2024-27318", match="'..'", commands=("inspect",),
         build=lambda f: (_secret(f), _external(f, "sub/../../outside/secret.bin"))[1]),
    Case("onnx/external-backslash-traversal", "CVE-2024-27318", match="'..'", commands=("inspect",),
         build=lambda f: (_secret(f), _external(f, "sub\\..\\..\\outside\\secret.bin"))[1]),
    Case("onnx/external-absolute-path", "CVE-2022-25882", match="absolute", commands=("inspect",),
         build=lambda f: _external(f, str(_secret(f)))),
    Case("onnx/external-dev-zero", "issue 13 item 8", match="absolute", commands=("inspect",),
         build=lambda f: _external(f, "/dev/zero")),
    Case("onnx/external-symlink-out", "CVE-2026-27489 (symlink escape)", match="outside the model's folder",
         commands=("inspect",), build=lambda f: _linked(f, _secret(f))),
    Case("onnx/external-symlink-dev-zero", "symlink escape", match="outside the model's folder",
         commands=("inspect",), build=lambda f: _linked(f, "/dev/zero")),
    Case("onnx/external-parent-symlink", "parent-directory symlink escape", match="outside the model's folder",
         commands=("inspect",), build=_parent_symlink),
    Case("onnx/external-hard-link", "hard-link escape", match="hard links", commands=("inspect",), build=_hard_link),
    Case("onnx/external-fifo", "issue 13 item 9 (FIFO)", match="not a regular file", commands=("inspect",),
         build=_fifo),
    Case("onnx/external-directory", "issue 13 item 8", match="not a regular file", commands=("inspect",),
         build=_directory),
    Case("onnx/hf-cache-external-data", "issue 13 item 4 (the allowed layout)", _hf_cache, expect="ok",
         commands=("inspect", "inspect-tensors", "diff-values")),
    Case("onnx/hf-cache-blobs-elsewhere", "issue 13 item 4", _hf_cache_escape, match="outside the model's folder",
         commands=("inspect",)),
    Case("onnx/merge-with-itself", "issue 13 item 8", _mergeable, expect="ok", commands=("merge",)),
]
