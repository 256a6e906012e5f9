"""Outputs are written whole or not at all, never over an input, with the usual file mode."""

from __future__ import annotations

import os

import pytest

from weightkit._atomic import atomic_output
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
