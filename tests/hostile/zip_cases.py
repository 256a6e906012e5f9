"""Hostile zip containers (PyTorch checkpoints): bombs, methods torch never writes, encryption, lying sizes, floods.

Archives are written byte by byte by `write_zip` so that every field (method, flags, declared
sizes, ZIP64 records) can say what the attack needs; compressed streams of gigabytes are made
from one compressed block repeated, so each file is small and quick to build.
"""

from __future__ import annotations

import bz2
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from .cases import Case
from .torch_cases import state_dict, tensor

ISSUE_MEMORY = "issue 13 item 3 (memory: zip bombs, lying declared sizes)"
ISSUE_HANGS = "issue 13 item 2 (hangs: a zip with a million entries)"
ISSUE_ERRORS = "issue 13 item 9 (encryption flag, ZIP64 member declaring 1 TiB)"
PICKLESCAN_ZIP = "picklescan bypasses CVE-2025-1944/1945 (zip flag bits and names that scanners trip on)"


@dataclass
class Entry:
    """One member as the archive declares it: ``data`` is what is stored (already compressed for method 8/12)."""

    name: str
    data: bytes
    method: int = 0
    flags: int = 0
    crc: int | None = None
    file_size: int | None = None  # declared uncompressed size; the real one by default
    zip64: bool = False  # sizes in a ZIP64 extra field (0xFFFFFFFF in the header)


def write_zip(path: Path, entries: list[Entry], *, declared_entries: int | None = None) -> Path:
    """Write ``entries`` as a zip archive with a central directory; ``declared_entries`` overrides the count."""
    local, central = bytearray(), bytearray()
    for entry in entries:
        crc = zlib.crc32(entry.data) if entry.crc is None else entry.crc
        size = len(entry.data) if entry.file_size is None else entry.file_size
        name = entry.name.encode()
        small = (0xFFFFFFFF, 0xFFFFFFFF) if entry.zip64 else (len(entry.data), size)
        extra = struct.pack("<HHQQ", 1, 16, size, len(entry.data)) if entry.zip64 else b""
        offset = len(local)
        local += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45, entry.flags, entry.method, 0, 0x21,
                             crc, small[0], small[1], len(name), len(extra)) + name + extra + entry.data
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, entry.flags, entry.method, 0, 0x21,
                               crc, small[0], small[1], len(name), len(extra), 0, 0, 0, 0, offset) + name + extra
    count = len(entries) if declared_entries is None else declared_entries
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF), len(central),
                      len(local), 0)
    if count > 0xFFFF:
        record_at = len(local) + len(central)
        end = (struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), len(local))
               + struct.pack("<4sIQI", b"PK\x06\x07", 0, record_at, 1) + end)
    path.write_bytes(bytes(local + central) + end)
    return path


def torch_zip(path: Path, data_pkl: bytes | Entry, members: list[Entry] | None = None, folder: str = "archive",
              byteorder: bytes | Entry = b"little") -> Path:
    """A torch.save-shaped archive: ``data.pkl``, ``byteorder``, ``data/<key>`` members and ``version``."""
    def entry(name: str, value: bytes | Entry) -> Entry:
        if isinstance(value, Entry):
            value.name = f"{folder}/{name}"
            return value
        return Entry(f"{folder}/{name}", value)

    entries = [entry("data.pkl", data_pkl), entry("byteorder", byteorder)]
    entries += [entry(member.name, member) for member in members or []]
    entries.append(entry("version", b"3\n"))
    return write_zip(path, entries)


# ---------------------------------------------------------------- streams that decode to gigabytes


def deflated_repeat(chunk: bytes, times: int, tail: bytes = b"") -> tuple[bytes, int, int]:
    """(raw deflate stream, crc32, size) of ``chunk * times + tail``, compressing ``chunk`` once.

    After a full flush the compressor forgets its history, so each copy of the chunk
    compresses to the same bytes: the stream is that block repeated.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    finish = compressor.compress(tail) + compressor.flush()
    crc = 0
    for _ in range(times):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail, crc)
    return block * times + finish, crc, len(chunk) * times + len(tail)


def deflated_entry(chunk: bytes, times: int, tail: bytes = b"", name: str = "") -> Entry:
    stream, crc, size = deflated_repeat(chunk, times, tail)
    return Entry(name, stream, method=8, crc=crc, file_size=size)


_BLOCK_MAGIC, _END_MAGIC = 0x314159265359, 0x177245385090


def bzip2_repeat(chunk: bytes, times: int) -> tuple[bytes, int, int]:
    """(bzip2 stream, crc32, size) of ``chunk * times``: the one compressed block of ``chunk`` repeated.

    bzip2 blocks are bit-aligned and independent; the stream ends with its magic and a
    CRC combined from the blocks' CRCs (rotate left by one, xor), recomputed here.
    """
    single = bz2.compress(chunk, 9)
    bits = bin(int.from_bytes(single, "big"))[2:].zfill(8 * len(single))
    end = bits.rfind(format(_END_MAGIC, "048b"))
    block = bits[32:end]
    assert int(block[:48], 2) == _BLOCK_MAGIC, "one block expected"
    block_crc = int(block[48:80], 2)
    combined = 0
    for _ in range(times):
        combined = (((combined << 1) | (combined >> 31)) & 0xFFFFFFFF) ^ block_crc
    stream = bits[:32] + block * times + format(_END_MAGIC, "048b") + format(combined, "032b")
    stream += "0" * (-len(stream) % 8)
    crc = 0
    for _ in range(times):
        crc = zlib.crc32(chunk, crc)
    return int(stream, 2).to_bytes(len(stream) // 8, "big"), crc, len(chunk) * times


_NONE_POP = b"N0" * (1 << 19)  # 1 MiB of NONE, POP: a million opcodes that build nothing
_ZEROS = bytes(64 << 20)


def _tensor_pickle(numel: int = 1) -> bytes:
    return state_dict({"w": tensor("0", numel, (numel,), (1,))})


def _none_pop_pickle(name: str, mib: int, declared: int | None = None):
    def build(folder: Path) -> Path:
        entry = deflated_entry(_NONE_POP, mib, b"N.")
        if declared is not None:
            entry.file_size = declared
        return torch_zip(folder / name, entry)
    return build


def _bzip2_byteorder(folder: Path) -> Path:
    stream, crc, size = bzip2_repeat(bytes(8 << 20), 384)  # 3 GiB of zeros in ~15 KB
    byteorder = Entry("", stream, method=12, crc=crc, file_size=6)  # declares the 6 bytes of "little"
    return torch_zip(folder / "bzip2-byteorder.pt", _tensor_pickle(), [Entry("data/0", bytes(4))],
                     byteorder=byteorder)


def _bzip2_data_pkl(folder: Path) -> Path:
    data = _tensor_pickle()
    return torch_zip(folder / "bzip2-data.pt", Entry("", bz2.compress(data), method=12, crc=zlib.crc32(data),
                                                    file_size=len(data)), [Entry("data/0", bytes(4))])


def _lzma_storage(folder: Path) -> Path:
    import lzma
    raw = lzma.compress(bytes(4), format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA1}])
    props = lzma._encode_filter_properties({"id": lzma.FILTER_LZMA1})
    stored = struct.pack("<BBH", 9, 4, len(props)) + props + raw
    return torch_zip(folder / "lzma-storage.pt", _tensor_pickle(),
                     [Entry("data/0", stored, method=14, crc=zlib.crc32(bytes(4)), file_size=4)])


def _storage_bomb(folder: Path) -> Path:
    storage = deflated_entry(_ZEROS, 16, name="data/0")  # 1 GiB of zeros in ~1 MB
    return torch_zip(folder / "storage-bomb.pt", _tensor_pickle(1 << 28), [storage])


def _storage_lies_small(folder: Path) -> Path:
    """Declares 4 bytes, inflates to 1 GiB: the decoder must stop at what is declared."""
    storage = deflated_entry(_ZEROS, 16, name="data/0")
    storage.file_size = 4
    return torch_zip(folder / "storage-lies.pt", _tensor_pickle(), [storage])


def _encrypted(method: int):
    def build(folder: Path) -> Path:
        data = _tensor_pickle()
        stored = data if method == 0 else zlib.compress(data)[2:-4]
        pkl = Entry("", stored, method=method, flags=0x1, crc=zlib.crc32(data), file_size=len(data))
        return torch_zip(folder / f"encrypted-{method}.pt", pkl, [Entry("data/0", bytes(4))])
    return build


def _zip64_terabyte(member: str):
    def build(folder: Path) -> Path:
        data = _tensor_pickle(1 << 38) if member == "data/0" else _tensor_pickle()
        big = member == "data/0"
        entries = [Entry("data/0", bytes(4), zip64=big, file_size=1 << 40 if big else None)]
        pkl: bytes | Entry = Entry("", data, zip64=True, file_size=1 << 40) if member == "data.pkl" else data
        return torch_zip(folder / f"zip64-{member.replace('/', '-')}.pt", pkl, entries)
    return build


def _stored_size_mismatch(folder: Path) -> Path:
    data = _tensor_pickle()
    return torch_zip(folder / "stored-mismatch.pt", Entry("", data, file_size=len(data) + 100_000))


def _many_entries(count: int, declared: int | None = None):
    def build(folder: Path) -> Path:
        entries = [Entry("archive/data.pkl", _tensor_pickle()), Entry("archive/data/0", bytes(4))]
        entries += [Entry(f"archive/extra/{i}", b"") for i in range(count)]
        entries.append(Entry("archive/version", b"3\n"))
        return write_zip(folder / f"entries-{count}.pt", entries, declared_entries=declared)
    return build


def _crc_mismatch(folder: Path) -> Path:
    """A deflated data.pkl whose CRC is wrong (CVE-2025-10156: scanners skip such members; torch reads them)."""
    data = _tensor_pickle()
    pkl = Entry("", zlib.compress(data)[2:-4], method=8, crc=zlib.crc32(data) ^ 1, file_size=len(data))
    return torch_zip(folder / "crc.pt", pkl, [Entry("data/0", bytes(4))])


CASES: list[Case] = [
    Case("zip/none-pop-256mib-deflated", "issue 13 item 2 (256 MiB of NONE/POP deflated to 260 KB)",
         _none_pop_pickle("nonepop.pt", 256), match="limit"),
    Case("zip/data-pkl-1gib-deflated", ISSUE_MEMORY, _none_pop_pickle("datapkl.pt", 1000), match="limit"),
    Case("zip/storage-1gib-deflated", ISSUE_MEMORY, _storage_bomb, match="limit"),
    Case("zip/storage-declares-less-than-it-inflates", ISSUE_MEMORY, _storage_lies_small,
         commands=("split", "merge")),
    Case("zip/bzip2-byteorder-3gib", ISSUE_MEMORY, _bzip2_byteorder, match="bzip2"),
    Case("zip/bzip2-data-pkl", ISSUE_MEMORY, _bzip2_data_pkl, match="bzip2"),
    Case("zip/lzma-storage", ISSUE_MEMORY, _lzma_storage, match="lzma"),
    Case("zip/encrypted-stored-data-pkl", ISSUE_ERRORS, _encrypted(0), match="encrypted"),
    Case("zip/encrypted-deflated-data-pkl", ISSUE_ERRORS, _encrypted(8), match="encrypted"),
    Case("zip/zip64-data-pkl-declares-1tib", ISSUE_ERRORS, _zip64_terabyte("data.pkl")),
    Case("zip/zip64-storage-declares-1tib", ISSUE_ERRORS, _zip64_terabyte("data/0")),
    Case("zip/stored-member-sizes-disagree", ISSUE_ERRORS, _stored_size_mismatch),
    Case("zip/crc-mismatch-data-pkl", "picklescan bypass CVE-2025-10156 (CRC errors)", _crc_mismatch),
    Case("zip/entries-over-the-limit", ISSUE_HANGS, _many_entries(1001), match="entries",
         env={"WEIGHTKIT_MAX_ENTRIES": "1000"}),
    Case("zip/end-record-declares-ten-million-entries", ISSUE_HANGS, _many_entries(10, declared=10_000_000),
         match="entries"),
]
