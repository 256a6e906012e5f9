"""The zip reader: stored windows, deflate streamed under the inflate allowance, refused methods, flags and floods."""

from __future__ import annotations

import bz2
import time
import tracemalloc
import zipfile
import zlib

import pytest

from tests.hostile.zip_cases import Entry, deflated_entry, write_zip
from weightkit import limits
from weightkit.errors import FileFormatError, UnsafeFileError
from weightkit.formats._parsers.zip import open_member, open_zip, read_member, read_member_range


def _archive(tmp_path, *entries: Entry, **options):
    return write_zip(tmp_path / "a.zip", list(entries), **options)


def test_stored_and_deflated_members_read_the_same(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("stored", b"abc" * 1000, compress_type=zipfile.ZIP_STORED)
        archive.writestr("deflated", b"abc" * 1000, compress_type=zipfile.ZIP_DEFLATED)
    with open_zip(path) as archive:
        for name in ("stored", "deflated"):
            assert read_member(archive, name, path) == b"abc" * 1000
            with open_member(archive, name, path) as member:  # seekable, as h5py needs for .keras weights
                member.seek(2997)
                assert member.read() == b"abc"
            info = archive.getinfo(name)
            assert read_member_range(archive, info, path, 1, 4) == b"bcab"


@pytest.mark.parametrize(("method", "named"), [(zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "lzma"),
                                               (93, "zstandard"), (99, "method 99")])
def test_methods_torch_and_keras_never_write_are_refused(tmp_path, method, named):
    data = bz2.compress(b"little") if method == zipfile.ZIP_BZIP2 else b"junk"
    path = _archive(tmp_path, Entry("archive/byteorder", data, method=method, crc=zlib.crc32(b"little"), file_size=6))
    with open_zip(path) as archive, pytest.raises(UnsafeFileError, match=named) as caught:
        read_member(archive, "archive/byteorder", path)
    assert "stored and deflate" in str(caught.value)


def test_a_deflated_member_is_refused_by_its_real_output_past_the_allowance(tmp_path):
    path = _archive(tmp_path, deflated_entry(bytes(1 << 20), 4, name="big"))  # 4 MiB of zeros in ~4 KB
    with limits.raised(inflate_floor=1 << 20, inflate_ratio=10), open_zip(path) as archive:
        with pytest.raises(UnsafeFileError, match="inflate_floor"):
            read_member(archive, "big", path)  # refused from the declared size, before inflating
        info = archive.getinfo("big")
        info.file_size = 1000  # a member that understates what it holds: stopped at what it declares
        with pytest.raises(FileFormatError):
            read_member(archive, "big", path)


def test_a_window_of_a_deflated_member_is_inflated_in_a_stream(tmp_path):
    path = _archive(tmp_path, deflated_entry(bytes(1 << 20), 24, tail=b"end", name="big"))
    with open_zip(path) as archive:
        info = archive.getinfo("big")
        tracemalloc.start()
        data = read_member_range(archive, info, path, 24 << 20, 3)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert data == b"end"
    assert peak < 8 << 20, f"peak {peak:,} bytes for a 3-byte window of a 24 MiB member"


def test_entries_are_counted_before_zipfile_reads_them(tmp_path):
    entries = [Entry(f"e/{i}", b"") for i in range(1001)]
    path = _archive(tmp_path, *entries)
    with limits.raised(entries=1000), pytest.raises(UnsafeFileError, match="entries"):
        open_zip(path)
    with limits.raised(entries=1001):
        open_zip(path).close()
    liar = write_zip(tmp_path / "liar.zip", entries, declared_entries=3)  # the central directory still holds 1001
    with limits.raised(entries=1000), pytest.raises(UnsafeFileError, match="entries"):
        open_zip(liar)


def test_an_end_record_declaring_ten_million_entries_is_refused_at_once(tmp_path):
    path = _archive(tmp_path, Entry("a", b"x"), declared_entries=10_000_000)
    started = time.monotonic()
    with pytest.raises(UnsafeFileError, match="10,000,000 entries"):
        open_zip(path)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_encrypted_members_are_refused(tmp_path, method):
    stored = b"secret" if method == zipfile.ZIP_STORED else zlib.compress(b"secret")[2:-4]
    path = _archive(tmp_path, Entry("m", stored, method=method, flags=0x1, crc=zlib.crc32(b"secret"), file_size=6))
    with open_zip(path) as archive, pytest.raises(UnsafeFileError, match="encrypted"):
        read_member(archive, "m", path)


def test_a_zip64_member_declaring_a_terabyte_is_refused_from_its_sizes(tmp_path):
    path = _archive(tmp_path, Entry("m", b"tiny", zip64=True, file_size=1 << 40))
    with open_zip(path) as archive:
        assert archive.getinfo("m").file_size == 1 << 40
        with pytest.raises(FileFormatError, match="1099511627776"):
            read_member(archive, "m", path)
        with pytest.raises(FileFormatError):
            open_member(archive, "m", path)


def test_a_stored_member_whose_sizes_disagree_is_refused(tmp_path):
    path = _archive(tmp_path, Entry("m", b"tiny", file_size=1 << 20))
    with open_zip(path) as archive, pytest.raises(FileFormatError, match="declares 1048576 bytes but holds 4"):
        read_member(archive, "m", path)


def test_a_broken_archive_is_one_clear_error(tmp_path):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(FileFormatError, match="broken zip"):
        open_zip(path)
