"""HDF5 safety: the structure is walked and checked when the file opens, with pyfive (no libhdf5).

Data that lives elsewhere, does not exist, or links in circles is refused before anything
is resolved or read; the builders are the hostile corpus's (tests/hostile/hdf5_cases.py).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zlib

import h5py
import numpy as np
import pytest

import weightkit
from tests.hostile import hdf5_cases as cases
from weightkit import limits
from weightkit.errors import FileFormatError, UnsafeFileError, UnsupportedError
from weightkit.formats._parsers.hdf5 import H5Source, attr_json, attr_text, name_list


def _refused(path, error, match):
    with pytest.raises(error, match=match):
        weightkit.load(path)


def test_dataset_declaring_more_bytes_than_stored_is_refused_on_open(tmp_path):
    path = cases.keras_file(tmp_path / "huge.h5", lambda g, n: g.create_dataset(n, shape=(10**10,), dtype="float32"))
    _refused(path, FileFormatError, "declares 40000000000 bytes but the file stores 0")


@pytest.mark.parametrize(("build", "error", "match"), [
    (cases.external_storage, UnsafeFileError, "external files"),
    (cases.vds_readable_file, UnsafeFileError, "virtual dataset"),
    (cases.vds_fifo, UnsafeFileError, "virtual dataset"),
    (cases.external_link, UnsafeFileError, "external link"),
    (cases.soft_link_loop, FileFormatError, "loop of soft links"),
    (cases.soft_link_dangling, FileFormatError, "does not exist"),
    (cases.hard_link_cycle, FileFormatError, "cycle"),
    (cases.null_dataspace, FileFormatError, "null dataspace"),
    (cases.lzf_filter, UnsupportedError, "filter 32000"),
    (cases.contiguous_past_end, FileFormatError, "past the end of the file"),
])
def test_refused_from_the_headers_alone(tmp_path, build, error, match):
    _refused(build(tmp_path), error, match)


def test_deep_nesting_is_refused_quickly(tmp_path):
    _refused(cases.deep_nesting(tmp_path, depth=400), UnsafeFileError, "limit 'nesting'")


def test_nesting_limit_is_raisable(tmp_path):
    path = cases.deep_nesting(tmp_path, depth=300)
    with limits.raised(nesting=400), weightkit.load(path) as model:
        assert model.tensors()[0].shape == (2,)


def test_entries_limit_is_raisable_by_environment(tmp_path, monkeypatch):
    path = cases.many_objects(tmp_path)
    monkeypatch.setenv("WEIGHTKIT_MAX_ENTRIES", "1000")
    _refused(path, UnsafeFileError, "WEIGHTKIT_MAX_ENTRIES")
    monkeypatch.setenv("WEIGHTKIT_MAX_ENTRIES", "100000")
    weightkit.load(path).close()


def test_gzip_bomb_is_refused_quickly_with_little_memory(tmp_path):
    """1 GiB of zeros in 1 MB: refused on open, in a child whose peak memory is measured."""
    path = cases.gzip_bomb(tmp_path)
    script = textwrap.dedent(f"""
        import weightkit
        from weightkit.errors import UnsafeFileError
        try:
            weightkit.load({str(path)!r})
        except UnsafeFileError as exc:
            assert "inflate_ratio" in str(exc), exc
        else:
            raise SystemExit("not refused")
        # VmHWM is this process's own peak; ru_maxrss would carry the forking pytest's across exec.
        print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert int(done.stdout.split()[-1]) < 300 * 1024  # KiB: far under 1 GB


def test_chunk_inflating_past_its_size_is_refused(tmp_path):
    """A chunk's deflate stream holding more than the chunk: refused after one chunk's bytes, not inflated."""
    packed = zlib.compress(bytes(4 * 2**20))

    def make(group, name):
        dataset = group.create_dataset(name, shape=(1024,), dtype="float32", chunks=(1024,), compression="gzip")
        dataset.id.write_direct_chunk((0,), packed)

    with weightkit.load(cases.keras_file(tmp_path / "chunk.h5", make)) as model:
        with pytest.raises(FileFormatError, match="inflates past"):
            model.tensors()[0].read()


@pytest.mark.parametrize("options", [
    {"compression": "gzip"}, {"compression": "gzip", "shuffle": True, "fletcher32": True},
    {"chunks": (7, 5)}, {"fletcher32": True}, {"compression": "gzip", "chunks": (64, 1)},
])
def test_chunked_and_filtered_datasets_read_as_h5py_reads_them(tmp_path, options):
    data = np.random.default_rng(0).standard_normal((64, 48)).astype("float32")
    path = cases.keras_file(tmp_path / "gz.h5", lambda g, n: g.create_dataset(n, data=data, **options))
    with weightkit.load(path) as model:
        assert np.array_equal(model.tensors()[0].read(), data)


def test_compact_datasets_read_and_sparse_chunks_are_refused(tmp_path):
    """Chunks never written would be allocated from nothing: the declared bytes must be stored."""
    with h5py.File(tmp_path / "c.h5", "w") as file:
        space = h5py.h5s.create_simple((3,))
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_layout(h5py.h5d.COMPACT)
        h5py.h5d.create(file.id, b"compact", h5py.h5t.NATIVE_FLOAT, space, plist).write(
            h5py.h5s.ALL, h5py.h5s.ALL, np.arange(3, dtype="float32"))
        file.create_dataset("sparse", shape=(10,), dtype="int16", chunks=(4,))[0:3] = [1, 2, 3]
    with pytest.raises(FileFormatError, match="'/sparse' declares 20 bytes but the file stores 8"):
        H5Source(tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5", "a") as file:
        del file["sparse"]
    source = H5Source(tmp_path / "c.h5")
    assert source.read("compact").tolist() == [0, 1, 2]
    source.close()


def test_corrupted_file_is_one_file_format_error(tmp_path):
    path = cases.keras_file(tmp_path / "ok.h5")
    data = bytearray(path.read_bytes())
    data[96:160] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="ok.h5"):
        weightkit.load(path)


def test_attributes_read_as_h5py_writes_them(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as file:
        file.attrs["text"] = "héllo"
        file.attrs["bytes"] = b"raw"
        file.attrs["config"] = '{"a": [1, 2]}'
        file.attrs["names0"] = np.array([b"a", b"b"])
        file.attrs["names1"] = np.array([b"c"])
        file.attrs["deep"] = "[" * 300 + "]" * 300
    source = H5Source(tmp_path / "a.h5")
    assert attr_text(source.file, "text") == "héllo"
    assert attr_text(source.file, "bytes") == "raw"
    assert attr_json(source.file, "config", source.path) == {"a": [1, 2]}
    assert name_list(source.file, "names") == ["a", "b", "c"]
    with pytest.raises(UnsafeFileError, match="nesting"):
        attr_json(source.file, "deep", source.path)
    source.close()
