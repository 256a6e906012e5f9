"""PyTorch files under the limits: what a tensor read may allocate, clean errors from the Python API, bombs refused."""

from __future__ import annotations

import time
import zipfile

import numpy as np
import pytest

import weightkit
from tests.hostile import torch_cases as cases
from tests.hostile.zip_cases import Entry, deflated_entry, torch_zip
from weightkit import limits
from weightkit.errors import FileFormatError, UnsafeFileError, WeightkitError

torch = pytest.importorskip("torch")

FLOAT = np.float32(7).tobytes()


def _tensor(model, name: str):
    return next(t for t in model.tensors() if t.name == name)


def _zip(tmp_path, data_pkl: bytes, storage: bytes = FLOAT, name: str = "t.pt"):
    return cases.write_zip(tmp_path / name, data_pkl, {"data/0": storage})


def test_a_stride_0_view_is_read_as_a_view_never_expanded(tmp_path):
    path = _zip(tmp_path, cases.state_dict({"w": cases.tensor("0", 1, (1000, 3), (0, 0))}))
    with weightkit.load(path) as model:
        array = _tensor(model, "w").read()
    assert array.shape == (1000, 3) and not array.flags.writeable and (array == 7).all()
    assert array.base is not None and array.strides == (0, 0)


def test_a_stride_0_view_standing_for_gigabytes_is_refused_on_read(tmp_path):
    path = _zip(tmp_path, cases.state_dict({"w": cases.tensor("0", 1, (2**34,), (0,))}))
    with weightkit.load(path) as model:
        tensor = _tensor(model, "w")
        assert tensor.nbytes == 2**36  # inspect still shows what the file declares
        with pytest.raises(UnsafeFileError, match="inflate") as caught:
            tensor.read()
    assert "stride 0" in str(caught.value)


def test_expanded_tensors_saved_by_torch_read_as_torch_loads_them(tmp_path):
    path = tmp_path / "expanded.pt"
    base = torch.arange(3.0)
    saved = {"row": base.expand(4, 3), "t": torch.arange(6.0).reshape(2, 3).t(), "slice": torch.arange(10.0)[2:8:2]}
    torch.save(saved, path)
    with weightkit.load(path) as model:
        for name, value in saved.items():
            np.testing.assert_array_equal(_tensor(model, name).read(), value.numpy())


def test_a_deflated_checkpoint_reads_the_same_values(tmp_path):
    stored = tmp_path / "stored.pt"
    torch.save({"w": torch.arange(12.0).reshape(3, 4)}, stored)
    deflated = tmp_path / "deflated.pt"
    with zipfile.ZipFile(stored) as source, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename.replace("stored/", "deflated/"), source.read(info))
    with weightkit.load(deflated) as model:
        np.testing.assert_array_equal(_tensor(model, "w").read(), np.arange(12.0, dtype=np.float32).reshape(3, 4))


@pytest.mark.parametrize("rank", [65, 100_000])
def test_rank_over_64_is_a_file_format_error(tmp_path, rank):
    data = cases.state_dict({"w": cases.tensor("0", 1, (), (1,), shape_ops=b"(" + b"K\x01" * rank + b"t")})
    with pytest.raises(FileFormatError, match=f"rank {rank}: more than the 64 dimensions numpy supports"):
        weightkit.load(_zip(tmp_path, data))


def test_a_dimension_past_64_bits_is_a_file_format_error(tmp_path):
    with pytest.raises(FileFormatError, match="64-bit"):
        weightkit.load(_zip(tmp_path, cases.state_dict({"w": cases.tensor("0", 1, (2**200,), (0,))})))


@pytest.mark.parametrize("where", ["sparse layout", "device", "qtensor scale"])
def test_a_list_dag_in_a_formatted_field_is_never_formatted(tmp_path, where):
    build = {"sparse layout": cases._sparse_layout_dag, "device": cases._device_dag,
             "qtensor scale": cases._qtensor_scale_dag}[where]
    started = time.monotonic()
    with weightkit.load(_zip(tmp_path, build(), storage=b"\0")) as model:
        note = _tensor(model, "w").note
    assert time.monotonic() - started < 5
    assert "<list>" in note


def test_a_list_dag_kept_in_the_checkpoint_is_refused_by_its_expanded_size(tmp_path):
    with pytest.raises(UnsafeFileError, match="object_size"):
        weightkit.load(_zip(tmp_path, cases._list_dag_value()))


def test_a_hash_flood_is_refused_quickly(tmp_path):
    keys = [cases.I(i * (2**61 - 1)) for i in range(20_000)]
    data = b"\x80\x02}(" + b"".join(key + b"N" for key in keys) + b"u."
    started = time.monotonic()
    with pytest.raises(UnsafeFileError, match="hash_collisions"):
        weightkit.load(_zip(tmp_path, data))
    assert time.monotonic() - started < 2


def test_a_deflated_bomb_is_refused_before_it_is_inflated(tmp_path):
    storage = deflated_entry(bytes(1 << 20), 16, name="data/0")  # 16 MiB of zeros in ~16 KB
    pkl = cases.state_dict({"w": cases.tensor("0", 1 << 22, (1 << 22,), (1,))})
    path = torch_zip(tmp_path / "bomb.pt", pkl, [storage])
    with limits.raised(inflate_floor=1 << 20), pytest.raises(UnsafeFileError, match="inflate_ratio"):
        weightkit.load(path)
    with weightkit.load(path) as model:  # within the default floor: read
        assert _tensor(model, "w").read().sum() == 0


def test_bzip2_members_are_refused_by_the_python_api(tmp_path):
    import bz2
    import zlib
    byteorder = Entry("", bz2.compress(b"little"), method=12, crc=zlib.crc32(b"little"), file_size=6)
    path = torch_zip(tmp_path / "b.pt", cases.state_dict({"w": cases.tensor("0", 1, (1,), (1,))}),
                     [Entry("data/0", FLOAT)], byteorder=byteorder)
    with pytest.raises(UnsafeFileError, match="bzip2"):
        weightkit.load(path)


def test_errors_from_the_python_api_keep_their_cause(tmp_path):
    path = _zip(tmp_path, cases.state_dict({"w": cases.tensor("0", 1, (1,) * 65, (1,) * 65)}))
    with pytest.raises(WeightkitError) as caught:
        weightkit.load(path)
    assert isinstance(caught.value.__cause__, ValueError)
