"""Outputs are written whole or not at all, never over an input, with the usual file mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from weightkit._atomic import _unnamed_file, atomic_output, protecting
from weightkit.errors import UsageError


def test_success_renames_into_place_with_umask_mode(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_output(target) as temporary:
        temporary.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failure_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force_and_inputs_are_never_overwritten(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(UsageError, match="already exists"), atomic_output(target):
        pass
    with pytest.raises(UsageError, match="is an input"), atomic_output(target, force=True, inputs=(target,)):
        pass
    with atomic_output(target, force=True) as temporary:
        temporary.write_bytes(b"new")
    assert target.read_bytes() == b"new"


# ---- inputs by identity, not by name ---------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["dot", "symlink", "hardlink"])
def test_an_input_under_another_name_is_refused_even_with_force(tmp_path, monkeypatch, alias):
    source = tmp_path / "in.bin"
    source.write_bytes(b"input")
    monkeypatch.chdir(tmp_path)
    target = {"dot": Path("./in.bin"), "symlink": tmp_path / "s.bin", "hardlink": tmp_path / "h.bin"}[alias]
    if alias == "symlink":
        target.symlink_to(source)
    if alias == "hardlink":
        os.link(source, target)
    with pytest.raises(UsageError, match="is an input"), atomic_output(target, force=True, inputs=(Path("in.bin"),)):
        pass
    with pytest.raises(UsageError, match="is an input"), protecting([source]), atomic_output(target, force=True):
        pass
    assert source.read_bytes() == b"input"


# ---- no temporary left, whatever happens ------------------------------------------------------------------


def test_the_temporary_has_no_name_while_writing_where_linux_allows(tmp_path):
    if _unnamed_file(tmp_path) is None:
        pytest.skip("no O_TMPFILE (or no /proc) here: the named temporary stands in")
    with atomic_output(tmp_path / "out.bin") as temporary:
        temporary.write_bytes(b"data")
        assert str(temporary).startswith("/proc/self/fd/") and list(tmp_path.iterdir()) == []
    assert (tmp_path / "out.bin").read_bytes() == b"data"


def test_a_writer_that_needs_a_name_gets_one_and_it_goes(tmp_path):
    with atomic_output(tmp_path / "out.h5", named=True) as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith(".partial")
        temporary.write_bytes(b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]


_SLOW_WRITER = """
import sys, time
import numpy as np
import weightkit
from weightkit.model import Layer, Model, Tensor

def slow():
    print("writing", flush=True)  # the file is open and half written: now the parent kills us
    time.sleep(60)
    return np.zeros(4, "float32")

tensors = {"weight": Tensor.from_array("a.weight", np.ones((256, 256), "float32"), role="weight"),
           "bias": Tensor("a.bias", (4,), "float32", role="bias", loader=slow)}
weightkit.save(Model(layers=[Layer("a", "dense", tensors=tensors)]), sys.argv[1])
"""


_SLOW_BLOCK = """
import sys, time
from weightkit._atomic import atomic_output

with atomic_output(sys.argv[1]) as temporary, open(temporary, "wb") as handle:
    handle.write(b"half of it")
    handle.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("writer", ["atomic_output", "torch zip writer"])
def test_sigkill_mid_write_leaves_no_file(tmp_path, writer):
    if _unnamed_file(tmp_path) is None:
        pytest.skip("no O_TMPFILE here: a named temporary would stay behind")
    target = tmp_path / "out" / "model.pt"
    script = _SLOW_BLOCK if writer == "atomic_output" else _SLOW_WRITER
    with subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE,
                          cwd=Path(__file__).resolve().parents[1]) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == b"writing\n"
        finally:
            child.kill()  # SIGKILL: no finally block, no atexit runs in the child
            child.wait(10)
    assert child.returncode == -signal.SIGKILL
    assert list((tmp_path / "out").iterdir()) == []


# ---- a file that appears at the target while writing ------------------------------------------------------


@pytest.mark.parametrize("named", [False, True])
def test_a_target_created_while_writing_is_kept_and_the_write_refused(tmp_path, named):
    target = tmp_path / "out.bin"
    with pytest.raises(UsageError, match="appeared while weightkit was writing"), \
            atomic_output(target, named=named) as temporary:
        temporary.write_bytes(b"ours")
        target.write_bytes(b"theirs")  # another process, between the existence check and the rename
    assert target.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize("named", [False, True])
def test_with_force_a_target_created_while_writing_is_replaced(tmp_path, named):
    target = tmp_path / "out.bin"
    with atomic_output(target, force=True, named=named) as temporary:
        temporary.write_bytes(b"ours")
        target.write_bytes(b"theirs")
    assert target.read_bytes() == b"ours"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_an_output_folder_that_cannot_be_made_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    for target in (tmp_path / "file" / "out.bin", tmp_path / "file" / "sub" / "out.bin"):
        with pytest.raises(UsageError, match="cannot create the folder"), atomic_output(target):
            pass
    with pytest.raises(UsageError, match="cannot create the folder"), atomic_output("/proc/weightkit/out.bin"):
        pass
    assert (tmp_path / "file").read_bytes() == b""
