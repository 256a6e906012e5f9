"""safetensors files read exactly as the safetensors library reads them; broken ones fail clearly."""

from __future__ import annotations

import json
import struct
import tempfile
import weakref
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import safetensors
import safetensors.numpy
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import weightkit
from weightkit.cli import main
from weightkit.formats import detect
from weightkit.formats.safetensors import file as wk_safetensors
from weightkit.formats.state_dict import layers_from_state_dict
from weightkit.model import Model, Tensor


def _bytes(array) -> bytes:
    return np.ascontiguousarray(array).tobytes()


def _assert_same(model: Model, expected: dict[str, np.ndarray]) -> None:
    """Every tensor of ``model`` has the name, shape, dtype and bytes of ``expected``."""
    ours = {t.name: t for t in model.tensors()}
    assert sorted(ours) == sorted(expected)
    for name, array in expected.items():
        data = ours[name].read()
        assert data.shape == array.shape == ours[name].shape, name
        assert data.dtype == array.dtype, name
        assert _bytes(data) == _bytes(array), name


def _raw_file(path: Path, header: bytes | dict, data: bytes = b"", length: int | None = None) -> Path:
    """A safetensors-like file made by hand, so that it can break any rule."""
    if isinstance(header, dict):
        header = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)
    return path


# --------------------------------------------------------------------------- files the library wrote

NUMPY_DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
                "float16", "float32", "float64", "complex64"]


def _numpy_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tensors = {}
    for index, name in enumerate(NUMPY_DTYPES):
        values = rng.normal(size=(index % 3 + 1, 5)) * 100
        tensors[f"block.{index}.{name}"] = (values > 0) if name == "bool" else values.astype(name)
    tensors["scalar"] = np.array(3.5, dtype=np.float32)
    tensors["empty"] = np.zeros((0, 4), dtype=np.float32)
    tensors["empty_int"] = np.zeros((2, 0, 3), dtype=np.int64)
    return tensors


def test_numpy_api_files_read_bit_equal(tmp_path):
    path = tmp_path / "np.safetensors"
    safetensors.numpy.save_file(_numpy_tensors(), path, metadata={"format": "np", "note": "hello"})
    with weightkit.load(path) as model:
        assert model.format == "safetensors"
        assert model.framework == "numpy"
        assert model.metadata["safetensors_metadata"] == {"format": "np", "note": "hello"}
        _assert_same(model, safetensors.numpy.load_file(path))


TORCH_DTYPES = ["bfloat16", "float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64", "bool",
                "uint16", "uint32", "uint64", "complex64", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                "float8_e5m2fnuz", "float8_e8m0fnu"]


def _torch_tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for name in TORCH_DTYPES:
        values = torch.randn(3, 4, generator=generator) * 4
        if name == "float8_e8m0fnu":
            values = values.abs() + 0.1
        if name.startswith(("int", "uint")):
            values = values.abs()
        tensors[f"t.{name}"] = values > 0 if name == "bool" else values.to(getattr(torch, name))
    tensors["t.scalar_bf16"] = torch.tensor(1.5, dtype=torch.bfloat16)
    tensors["t.empty_f8"] = torch.zeros(0, 2, dtype=torch.float8_e5m2)
    tensors["t.f4"] = torch.arange(12, dtype=torch.uint8).reshape(2, 6).view(torch.float4_e2m1fn_x2)
    return tensors


def _torch_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""


def test_torch_api_files_read_bit_equal(tmp_path):
    path = tmp_path / "pt.safetensors"
    safetensors.torch.save_file(_torch_tensors(), path, metadata={"format": "pt"})
    with weightkit.load(path) as model, safetensors.safe_open(path, framework="pt") as reference:
        assert model.framework == "pytorch"
        ours = {t.name: t for t in model.tensors()}
        assert sorted(ours) == sorted(reference.keys())
        for name in reference.keys():
            expected = reference.get_tensor(name)
            data = ours[name].read()
            if name == "t.f4":  # torch keeps two values per byte; weightkit one per element
                assert data.shape == (2, 12) and data.dtype == ml_dtypes.float4_e2m1fn
                assert wk_safetensors._pack_f4(data).tobytes() == _torch_bytes(expected)
                continue
            assert data.shape == tuple(expected.shape), name
            assert ours[name].dtype == str(expected.dtype).removeprefix("torch."), name
            assert _bytes(data) == _torch_bytes(expected), name


def test_f4_values_unpack_low_nibble_first(tmp_path):
    # PyTorch's float4_e2m1fn_x2 keeps the first value in bits 0-3: 0x21 holds 0.5 then 1.0.
    path = tmp_path / "f4.safetensors"
    safetensors.torch.save_file({"w": torch.tensor([[0x21, 0x0F]], dtype=torch.uint8).view(torch.float4_e2m1fn_x2)},
                                path)
    with weightkit.load(path) as model:
        assert model.tensors()[0].read().astype(np.float32).tolist() == [[0.5, 1.0, -6.0, 0.0]]


def test_header_is_read_but_not_the_tensor_data(tmp_path, monkeypatch):
    path = tmp_path / "lazy.safetensors"
    safetensors.numpy.save_file(_numpy_tensors(), path)

    def refuse(*args):
        raise AssertionError("tensor data was read")

    monkeypatch.setattr(wk_safetensors._Source, "read_into", refuse)
    assert main(["inspect", str(path)]) == 0
    assert main(["inspect", "--json", str(path)]) == 0


def test_misaligned_tensors_from_other_writers_read_correctly(tmp_path):
    # Three bytes first: every later tensor starts at an odd offset, and the header is not padded.
    values = np.arange(6, dtype=np.float64) / 3
    halves = np.arange(3, dtype=np.float32)
    data = b"abc" + values.tobytes() + halves.astype(ml_dtypes.bfloat16).tobytes()
    header = {"a": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]},
              "b": {"dtype": "F64", "shape": [2, 3], "data_offsets": [3, 51]},
              "c": {"dtype": "BF16", "shape": [3], "data_offsets": [51, 57]}}
    path = _raw_file(tmp_path / "odd.safetensors", json.dumps(header, separators=(",", ":")).encode() + b"  ", data)
    with weightkit.load(path) as model:
        _assert_same(model, {"a": np.frombuffer(b"abc", np.uint8), "b": values.reshape(2, 3),
                             "c": halves.astype(ml_dtypes.bfloat16)})
    reference = safetensors.numpy.load_file(path)
    assert np.array_equal(reference["b"], values.reshape(2, 3))


def test_tensors_are_grouped_into_layers_in_natural_order(tmp_path):
    path = tmp_path / "gpt.safetensors"
    tensors = {f"h.{i}.mlp.weight": np.zeros((8, 4), np.float32) for i in (0, 1, 2, 10, 11)}
    tensors["h.2.mlp.bias"] = np.zeros(8, np.float32)
    safetensors.numpy.save_file(tensors, path)
    with weightkit.load(path) as model:
        assert [layer.name for layer in model.layers] == [f"h.{i}.mlp" for i in (0, 1, 2, 10, 11)]
        layer = model.layer("h.2.mlp")
        assert layer.kind == "dense" and set(layer.tensors) == {"weight", "bias"}
        assert layer.tensors["weight"].layout == "OI"


def test_names_with_huge_numbers_sort_without_trouble(tmp_path):
    path = tmp_path / "n.safetensors"
    names = ["w." + "9" * 5000, "w.10", "w.9", "w.0010x"]
    safetensors.numpy.save_file({name: np.zeros(1, np.uint8) for name in names}, path)
    with weightkit.load(path) as model:
        assert [t.name for t in model.tensors()] == ["w.9", "w.10", "w.0010x", names[0]]


def test_file_found_by_content_whatever_its_name(tmp_path):
    path = tmp_path / "weights.bin"
    safetensors.numpy.save_file({"x": np.ones(2, np.float32)}, path)
    chosen, _ = detect(path)
    assert chosen.name == "safetensors"
    with weightkit.load(path) as model:
        assert model.metadata == {} and model.framework is None


def test_closed_model_refuses_reads(tmp_path):
    path = tmp_path / "a.safetensors"
    safetensors.numpy.save_file({"x": np.ones(2, np.float32)}, path)
    model = weightkit.load(path)
    tensor = model.tensors()[0]
    model.close()
    with pytest.raises(weightkit.ModelClosedError, match="closed"):
        tensor.read()


def test_6bit_tensors_are_listed_but_not_decoded(tmp_path):
    header = {"m": {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [0, 3]}}
    path = _raw_file(tmp_path / "f6.safetensors", header, b"\x00\x01\x02")
    with weightkit.load(path) as model:
        tensor = model.tensors()[0]
        assert (tensor.dtype, tensor.shape, tensor.nbytes) == ("float6_e2m3fn", (4,), 3)
        with pytest.raises(weightkit.UnsupportedError, match="6-bit"):
            tensor.read()


# --------------------------------------------------------------------------- real files


def test_real_file_with_custom_metadata(real_weights):
    path = real_weights / "safetensors" / "custommeta__cvtest_model.safetensors"
    with weightkit.load(path) as model:
        assert model.metadata["safetensors_metadata"] == {"version": "1.0", "git_tag": "v1.45"}
        assert model.framework is None
        assert [(layer.name, layer.kind) for layer in model.layers] == [("fc1", "dense"), ("fc2", "dense")]
        _assert_same(model, safetensors.numpy.load_file(path))


def test_real_file_written_by_tinygrad(real_weights, capsys):
    path = real_weights / "safetensors" / "tinygrad__mnist_model.safetensors"
    with weightkit.load(path) as model:
        assert "safetensors_metadata" not in model.metadata
        assert [t.shape for t in model.tensors()] == [(128, 784), (10, 128)]
        _assert_same(model, safetensors.numpy.load_file(path))
    assert main(["inspect", str(path)]) == 0
    assert "l1" in capsys.readouterr().out


# --------------------------------------------------------------------------- broken files

F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
_VALID = {"a": F32_2}

BROKEN = {
    # name: (header or raw header bytes, data, declared header length or None, expected message part)
    "too_small": (None, b"\x01\x02\x03", None, "too small"),
    "length_past_eof": (b'{"a":1}', b"", 1000, "only 7 bytes follow"),
    "huge_length": (b"{}", b"", 2**40, "at most 100,000,000"),
    "bad_utf8": (b'{"a\xff":1}', b"", None, "not UTF-8"),
    "bad_json": (b'{"a": {"dtype":', b"", None, "not valid JSON"),
    "not_an_object": (b"[1, 2, 3]", b"", None, "must start with '{'"),
    "leading_space": (b" " + json.dumps(_VALID).encode(), bytes(8), None, "must start with '{'"),
    "nan": (b'{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 4]}}', b"", None, "shape must be a list"),
    "deep_nesting": (b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}", b"", None, "limit 'nesting'"),
    "entry_not_object": ({"a": 5}, b"", None, "not an object"),
    "entry_missing_field": ({"a": {"dtype": "F32", "shape": [1]}}, b"", None, "no data_offsets"),
    "unknown_dtype": ({"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, bytes(16), None,
                      "unknown dtype 'F128'"),
    "dtype_not_string": ({"a": {"dtype": 7, "shape": [1], "data_offsets": [0, 1]}}, b"x", None, "unknown dtype 7"),
    "float_shape": ({"a": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, bytes(8), None,
                    "shape must be a list of non-negative integers"),
    "bool_shape": ({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, bytes(4), None,
                   "shape must be"),
    "negative_offset": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, b"", None,
                        "data_offsets must be a list of 2 non-negative integers"),
    "three_offsets": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}, bytes(4), None,
                      "list of 2"),
    "first_not_at_zero": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8), None,
                          "must begin at offset 0"),
    "overlap": ({"a": F32_2, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12), None,
                "overlap tensor 'a'"),
    "gap": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
             "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, bytes(12), None, "gap of 4 bytes"),
    "end_before_begin": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                          "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, bytes(4), None,
                         "end before they begin"),
    "size_mismatch": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, bytes(4), None,
                      "hold 4 bytes but F32[2] needs 8"),
    "odd_f4_count": ({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, bytes(2), None,
                     "not a whole number of bytes"),
    "numel_overflow": ({"a": {"dtype": "F32", "shape": [2**32, 2**32, 2], "data_offsets": [0, 8]}}, bytes(8), None,
                       "more than a 64-bit size"),
    "bits_overflow": ({"a": {"dtype": "F64", "shape": [2**61], "data_offsets": [0, 8]}}, bytes(8), None,
                      "more than a 64-bit size"),
    "dim_past_u64": ({"a": {"dtype": "F32", "shape": [2**70], "data_offsets": [0, 8]}}, bytes(8), None,
                     "below 2**64"),
    "trailing_bytes": (_VALID, bytes(8) + b"extra", None, "5 unexpected bytes after the last tensor"),
    "truncated_buffer": (_VALID, bytes(6), None, "tensors need"),
    "metadata_not_map": ({"__metadata__": "pt", **_VALID}, bytes(8), None, "map of strings to strings"),
    "metadata_number": ({"__metadata__": {"version": 1}, **_VALID}, bytes(8), None,
                        "__metadata__['version'] must be a string"),
    "duplicate_keys": (b'{"a":' + json.dumps(F32_2).encode() + b',"a":' + json.dumps(F32_2).encode() + b"}",
                       bytes(8), None, "duplicate key 'a'"),
    "duplicate_field": (b'{"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}', bytes(8), None,
                        "duplicate key 'dtype'"),
}

#: Cases the safetensors library itself accepts: the format's README forbids them, and weightkit follows it.
LIBRARY_ACCEPTS = {"leading_space", "duplicate_keys"}


def _broken_file(tmp_path: Path, case: str) -> Path:
    header, data, length, _ = BROKEN[case]
    path = tmp_path / f"{case}.safetensors"
    if header is None:
        path.write_bytes(data)
        return path
    return _raw_file(path, header, data, length)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_is_one_clear_line_and_exit_2(tmp_path, capsys, case):
    path = _broken_file(tmp_path, case)
    assert main(["inspect", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"weightkit: error: {path}: ")
    assert BROKEN[case][3] in err
    assert "--debug" not in err  # a weightkit error, not a crash


@pytest.mark.parametrize("case", sorted(set(BROKEN) - LIBRARY_ACCEPTS))
def test_safetensors_library_refuses_the_same_files(tmp_path, case):
    path = _broken_file(tmp_path, case)
    with pytest.raises(safetensors.SafetensorError):
        with safetensors.safe_open(path, framework="np") as handle:
            for name in handle.keys():
                handle.get_tensor(name)


def test_broken_file_without_safetensors_name_is_still_an_error(tmp_path, capsys):
    path = _raw_file(tmp_path / "model.bin", {"a": F32_2}, bytes(5))
    assert main(["inspect", str(path)]) == 2
    assert "tensors need" in capsys.readouterr().err


def _valid_file_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.safetensors"
        safetensors.numpy.save_file({"layer.0.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
                                     "layer.0.bias": np.arange(2, dtype=np.int16),
                                     "flag": np.array(True)}, path, metadata={"format": "np"})
        return path.read_bytes()


_VALID_BYTES = _valid_file_bytes()
_mutation = st.one_of(
    st.tuples(st.just("set"), st.integers(0, len(_VALID_BYTES) - 1), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(_VALID_BYTES) - 1), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, len(_VALID_BYTES)), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, len(_VALID_BYTES) - 1), st.just(0)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buffer = bytearray(data)
    for kind, position, value in mutations:
        position = min(position, max(len(buffer) - 1, 0))
        if kind == "set" and buffer:
            buffer[position] = value
        elif kind == "cut":
            del buffer[position:]
        elif kind == "insert":
            buffer.insert(position, value)
        elif kind == "delete" and buffer:
            del buffer[position]
    return bytes(buffer)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(_mutation, min_size=1, max_size=4))
def test_fuzzed_files_raise_only_weightkit_errors(mutations):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.safetensors"
        path.write_bytes(_mutate(_VALID_BYTES, mutations))
        try:
            with weightkit.load(path) as model:
                for tensor in model.tensors():
                    tensor.read()
        except weightkit.WeightkitError:
            pass


# --------------------------------------------------------------------------- writing


def test_round_trip_is_bit_identical_and_byte_identical_to_the_library(tmp_path):
    source = tmp_path / "source.safetensors"
    expected = _numpy_tensors()
    safetensors.numpy.save_file(expected, source)
    with weightkit.load(source) as model:
        weightkit.save(model, tmp_path / "copy.safetensors")
    copy = safetensors.numpy.load_file(tmp_path / "copy.safetensors")
    assert sorted(copy) == sorted(expected)
    for name, array in expected.items():
        assert copy[name].dtype == array.dtype and _bytes(copy[name]) == _bytes(array), name
    # The reference writer, given the same tensors and metadata, writes the very same bytes.
    safetensors.numpy.save_file(expected, tmp_path / "library.safetensors", metadata={"format": "pt"})
    assert (tmp_path / "copy.safetensors").read_bytes() == (tmp_path / "library.safetensors").read_bytes()


def test_torch_dtypes_round_trip(tmp_path):
    source = tmp_path / "pt.safetensors"
    tensors = _torch_tensors()
    safetensors.torch.save_file(tensors, source)
    with weightkit.load(source) as model:
        wk_safetensors.write(model, tmp_path / "copy.safetensors", metadata={"origin": "test"})
    with safetensors.safe_open(tmp_path / "copy.safetensors", framework="pt") as copy:
        assert copy.metadata() == {"format": "pt", "origin": "test"}
        assert sorted(copy.keys()) == sorted(tensors)
        for name, tensor in tensors.items():
            assert copy.get_tensor(name).dtype == tensor.dtype, name
            assert _torch_bytes(copy.get_tensor(name)) == _torch_bytes(tensor), name
    # Same layout as the reference writer (its metadata map has no fixed order, so compare parsed headers).
    safetensors.torch.save_file(tensors, tmp_path / "library.safetensors", metadata={"format": "pt", "origin": "test"})
    ours, theirs = _split(tmp_path / "copy.safetensors"), _split(tmp_path / "library.safetensors")
    assert list(ours[0].items()) == list(theirs[0].items())
    assert ours[1:] == theirs[1:]


def _split(path: Path) -> tuple[dict, int, bytes]:
    """(header as parsed, header length, byte buffer) of a safetensors file."""
    data = path.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + length]), length, data[8 + length:]


def test_keras_file_to_safetensors(fixtures, tmp_path):
    target = tmp_path / "cnn.safetensors"
    with weightkit.load(fixtures / "tfkeras" / "tfk_cnn_full.h5") as model:
        expected = {t.name: t.read() for t in model.tensors()}
        weightkit.save(model, target)
    loaded = safetensors.numpy.load_file(target)
    assert sorted(loaded) == sorted(expected)
    for name, array in expected.items():
        assert loaded[name].dtype == array.dtype and _bytes(loaded[name]) == _bytes(array), name
    with safetensors.safe_open(target, framework="np") as handle:
        assert handle.metadata() == {"format": "pt"}


def test_writer_header_follows_the_reference_conventions(tmp_path):
    model = Model(layers=[])
    model.layers = layers_from_state_dict([
        Tensor.from_array("b.w", np.ones(3, np.float16)), Tensor.from_array("a.w", np.ones(3, np.float16)),
        Tensor.from_array("z.n", np.array(7, np.int64)), Tensor.from_array("m.f", np.ones(1, np.uint8))])
    path = tmp_path / "x.safetensors"
    wk_safetensors.write(model, path)
    data = path.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    assert length % 8 == 0 and data[8 + length - 1:8 + length] in (b" ", b"}")
    header = json.loads(data[8:8 + length])
    assert list(header) == ["__metadata__", "z.n", "a.w", "b.w", "m.f"]
    assert header["__metadata__"] == {"format": "pt"}


def test_writer_streams_one_tensor_at_a_time(tmp_path):
    alive: list[weakref.ref] = []

    def loader(index):
        def load():
            assert sum(ref() is not None for ref in alive) == 0, "an earlier tensor is still in memory"
            array = np.full((64, 64), index, np.float32)
            alive.append(weakref.ref(array))
            return array
        return load

    tensors = [Tensor(f"layer{i}.weight", (64, 64), "float32", loader=loader(i)) for i in range(5)]
    model = Model(layers=layers_from_state_dict(tensors))
    wk_safetensors.write(model, tmp_path / "s.safetensors")
    assert len(alive) == 5
    assert safetensors.numpy.load_file(tmp_path / "s.safetensors")["layer3.weight"][0, 0] == 3


def test_writer_refuses_what_safetensors_cannot_hold(tmp_path):
    path = tmp_path / "bad.safetensors"
    model = Model(layers=layers_from_state_dict(
        [Tensor.from_array("ok", np.ones(2, np.float32)), Tensor.from_array("c", np.ones(2, np.complex128))]))
    with pytest.raises(weightkit.UnsupportedError, match="'c' has dtype complex128"):
        weightkit.save(model, path)
    with pytest.raises(weightkit.UsageError, match="strings to strings"):
        wk_safetensors.write(Model(), path, metadata={"epoch": 3})
    assert list(tmp_path.iterdir()) == []


def test_writer_keeps_existing_files_unless_forced(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"keep")
    model = Model(layers=layers_from_state_dict(
        [Tensor.from_array("w", np.ones(2, np.float32))]))
    with pytest.raises(weightkit.UsageError, match="already exists"):
        weightkit.save(model, path)
    assert path.read_bytes() == b"keep"
    weightkit.save(model, path, force=True)
    assert safetensors.numpy.load_file(path)["w"].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("name", ["entries-over-limit", "metadata-keys-over-limit"])
def test_header_bombs_stop_at_the_entries_limit(tmp_path, name):
    """Entries are counted while the header is parsed (10^6 tensors or 4·10^6 metadata keys never build)."""
    from tests.hostile.safetensors_cases import CASES
    from weightkit import limits

    case = next(c for c in CASES if c.name == f"safetensors/{name}")
    path = case.build(tmp_path)
    with limits.raised(entries=100_000), pytest.raises(weightkit.UnsafeFileError, match="limit 'entries'"):
        weightkit.load(path)


@pytest.mark.parametrize("shape", [[1] * 65, [0, 2**62, 2**62], [2**63, 2**63, 0], [0, 2**64 - 1]])
def test_shapes_no_array_can_have_are_refused_when_opening(tmp_path, shape):
    """numpy raised ValueError on read ("maximum supported dimension", "array is too big"); now the header
    is refused. (The safetensors library opens all but [2**63, 2**63, 0] and fails in numpy on reading.)"""
    header = json.dumps({"a": {"dtype": "U8", "shape": shape, "data_offsets": [0, 1 if 0 not in shape else 0]}})
    path = tmp_path / "bad.safetensors"
    data = b"" if 0 in shape else b"\0"
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + data)
    with pytest.raises(weightkit.FileFormatError, match="at most 64|64-bit size"):
        weightkit.load(path)
