"""Hostile HDF5 files: links out of the file or in circles, storage elsewhere, bombs, broken Keras structure.

Each builder writes a small Keras-looking ``.h5`` with h5py (patching bytes where h5py
refuses to write the attack). The published HDF5 patterns: external links, soft links,
virtual datasets (whose sources may be a FIFO, /dev/zero or any readable file) and
external storage, all refused from the file's headers before anything is resolved.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from tests.hostile.cases import Case

_ISSUE_7 = "issue 13 item 7"
_ISSUE_9 = "issue 13 item 9"


def keras_file(path: Path, make_dataset: Callable[[h5py.Group, str], object] | None = None,
               layer_names: object = None) -> Path:
    """A legacy Keras weights file with one layer ``dense`` whose weight ``kernel:0`` ``make_dataset`` makes."""
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.array([b"dense"]) if layer_names is None else layer_names
        file.attrs["keras_version"] = b"2.2.4"
        group = file.create_group("dense")
        group.attrs["weight_names"] = np.array([b"dense/kernel:0"])
        inner = group.create_group("dense")
        if make_dataset is None:
            inner["kernel:0"] = np.ones((2, 2), "float32")
        else:
            make_dataset(inner, "kernel:0")
    return path


def external_link(folder: Path) -> Path:
    return keras_file(folder / "extlink.h5", lambda g, n: g.__setitem__(n, h5py.ExternalLink("/etc/passwd", "/x")))


def soft_link_loop(folder: Path) -> Path:
    def make(group: h5py.Group, name: str) -> None:
        group[name] = h5py.SoftLink("/dense/dense/other")
        group["other"] = h5py.SoftLink("/dense/dense/kernel:0")
    return keras_file(folder / "softloop.h5", make)


def soft_link_dangling(folder: Path) -> Path:
    return keras_file(folder / "dangling.h5", lambda g, n: g.__setitem__(n, h5py.SoftLink("/nowhere/at/all")))


def hard_link_cycle(folder: Path) -> Path:
    def make(group: h5py.Group, name: str) -> None:
        group[name] = np.ones(2, "float32")
        group["loop"] = group.file["dense"]  # a hard link back to an ancestor
    return keras_file(folder / "cycle.h5", make)


def deep_nesting(folder: Path, depth: int = 10_000) -> Path:
    """A legacy layout 10^4 groups deep (issue 13 item 7: it hung)."""
    path = folder / "deep.h5"
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.array([b"dense"])
        file.attrs["keras_version"] = b"2.2.4"
        group = file.create_group("dense/" + "/".join(["g"] * depth))
        group["kernel:0"] = np.ones(2, "float32")
        weight = "/".join(["g"] * depth) + "/kernel:0"
        file["dense"].attrs["weight_names"] = np.array([weight.encode()])
    return path


def many_objects(folder: Path) -> Path:
    """2,000 groups, read with the entries limit lowered to 1,000 (the limit works, and is raisable)."""
    path = keras_file(folder / "many.h5")
    with h5py.File(path, "a") as file:
        for index in range(2000):
            file.create_group(f"g{index}")
    return path


def _virtual(folder: Path, name: str, source: str) -> Path:
    def make(group: h5py.Group, dataset: str) -> None:
        layout = h5py.VirtualLayout(shape=(4,), dtype="float32")
        layout[:] = h5py.VirtualSource(source, "x", shape=(4,))
        group.create_virtual_dataset(dataset, layout)
    return keras_file(folder / name, make)


def vds_fifo(folder: Path) -> Path:
    os.mkfifo(folder / "source.h5")
    return _virtual(folder, "vds_fifo.h5", str(folder / "source.h5"))


def vds_dev_zero(folder: Path) -> Path:
    return _virtual(folder, "vds_zero.h5", "/dev/zero")


def vds_readable_file(folder: Path) -> Path:
    with h5py.File(folder / "private.h5", "w") as file:
        file["x"] = np.arange(4, dtype="float32")
    return _virtual(folder, "vds_file.h5", str(folder / "private.h5"))


def external_storage(folder: Path) -> Path:
    (folder / "raw.bin").write_bytes(np.zeros(4, "float32").tobytes())
    return keras_file(folder / "external.h5", lambda g, n: g.create_dataset(
        n, shape=(4,), dtype="float32", external=[(str(folder / "raw.bin"), 0, 16)]))


def null_dataspace(folder: Path) -> Path:
    return keras_file(folder / "null.h5", lambda g, n: g.create_dataset(n, data=h5py.Empty("float32")))


def lzf_filter(folder: Path) -> Path:
    return keras_file(folder / "lzf.h5", lambda g, n: g.create_dataset(n, data=np.ones(64, "float32"),
                                                                        compression="lzf"))


def gzip_bomb(folder: Path, chunks: int = 16) -> Path:
    """1 GiB of zeros stored in about 1 MB: sixteen 64 MiB chunks written pre-compressed."""
    chunk = 2**24  # float32 elements: 64 MiB
    packed = zlib.compress(bytes(4 * chunk), 9)

    def make(group: h5py.Group, name: str) -> None:
        dataset = group.create_dataset(name, shape=(chunk * chunks,), dtype="float32", chunks=(chunk,),
                                       compression="gzip")
        for index in range(chunks):
            dataset.id.write_direct_chunk((index * chunk,), packed)
    return keras_file(folder / "bomb.h5", make)


def contiguous_past_end(folder: Path) -> Path:
    """A contiguous dataset whose recorded offset lies far beyond the end of the file (bytes patched)."""
    path = keras_file(folder / "past_end.h5", lambda g, n: g.create_dataset(n, data=np.ones(16, "float32")))
    with h5py.File(path, "r") as file:
        offset = file["dense/dense/kernel:0"].id.get_offset()
    data = path.read_bytes()
    needle = offset.to_bytes(8, "little") + (64).to_bytes(8, "little")
    assert data.count(needle) == 1
    path.write_bytes(data.replace(needle, (2**40).to_bytes(8, "little") + (64).to_bytes(8, "little")))
    return path


def _pre_1_0(folder: Path, name: str, nb_layers: object) -> Path:
    path = folder / name
    with h5py.File(path, "w") as file:
        file.attrs["nb_layers"] = nb_layers
        group = file.create_group("layer_0")
        group.attrs["nb_params"] = 1
        group["param_0"] = np.ones((2, 2), "float32")
    return path


def nb_layers_string(folder: Path) -> Path:
    return _pre_1_0(folder, "nb_string.h5", "many")


def nb_layers_nan(folder: Path) -> Path:
    return _pre_1_0(folder, "nb_nan.h5", float("nan"))


def nb_layers_array(folder: Path) -> Path:
    return _pre_1_0(folder, "nb_array.h5", np.arange(3))


def empty_layer_names(folder: Path) -> Path:
    return keras_file(folder / "empty_names.h5", layer_names=np.array([], dtype="float32"))


def missing_weight(folder: Path) -> Path:
    return keras_file(folder / "missing.h5", lambda g, n: g.__setitem__("other:0", np.ones(2, "float32")))


def _case(name: str, source: str, build: Callable[[Path], Path], match: str | None = None, **fields: object) -> Case:
    return Case(f"hdf5/{name}", source, build, match=match, **fields)  # type: ignore[arg-type]


CASES: list[Case] = [
    _case("external-link", "HDF5 external links (published pattern)", external_link, "external link"),
    _case("soft-link-loop", f"{_ISSUE_7}: soft-link loops", soft_link_loop, "loop of soft links"),
    _case("soft-link-dangling", "HDF5 soft links (published pattern)", soft_link_dangling, "does not exist"),
    _case("hard-link-cycle", f"{_ISSUE_7}: hard-link cycles between groups", hard_link_cycle, "cycle"),
    _case("deep-nesting", f"{_ISSUE_7}: a legacy layout 10^4 groups deep", deep_nesting, "nesting"),
    _case("many-objects", "limits.ENTRIES on HDF5 objects", many_objects, "entries",
          env={"WEIGHTKIT_MAX_ENTRIES": "1000"}),
    _case("vds-fifo", f"{_ISSUE_9}: a virtual dataset whose source is a FIFO", vds_fifo, "virtual dataset"),
    _case("vds-dev-zero", f"{_ISSUE_9}: a virtual dataset on /dev/zero", vds_dev_zero, "virtual dataset"),
    _case("vds-readable-file", f"{_ISSUE_9}: a virtual dataset on a readable file", vds_readable_file,
          "virtual dataset"),
    _case("external-storage", "HDF5 external storage (published pattern)", external_storage, "external files"),
    _case("null-dataspace", f"{_ISSUE_7}: a dataset with a null dataspace", null_dataspace, "null dataspace"),
    _case("lzf-filter", "HDF5 filters Keras never writes", lzf_filter, "filter"),
    _case("gzip-bomb", "issue 13 item 3: a gzip dataset of 1 GiB zeros in 1 MB", gzip_bomb, "inflate_ratio"),
    _case("contiguous-past-end", "declared data past the end of the file", contiguous_past_end, "past the end"),
    _case("nb-layers-string", f"{_ISSUE_7}: nb_layers that is a string", nb_layers_string, "not a count"),
    _case("nb-layers-nan", f"{_ISSUE_7}: nb_layers that is a NaN", nb_layers_nan, "not a count"),
    _case("nb-layers-array", f"{_ISSUE_7}: nb_layers that is an array", nb_layers_array, "not a count"),
    _case("empty-layer-names", f"{_ISSUE_7}: an empty layer_names", empty_layer_names, expect="ok"),
    _case("missing-weight", f"{_ISSUE_7}: weight_names naming a missing dataset", missing_weight, "no such dataset"),
]
