"""Cross-format hostile inputs: empty and tiny files, magic then garbage, truncations, wrong names, odd paths.

None of them belongs to one reader: each is about how weightkit finds a file's format and how it
treats what is not a regular file. Valid files to truncate or rename come from benign.py.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from .benign import FILES, seed, shared
from .cases import Case

ISSUE = "issue 13 item 6 (unclean errors) / item 9"
ROBUSTNESS = "file-format robustness: truncated and mistyped inputs (fuzzing practice, issue 13 item 10)"


def _writes(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], Path]:
    """A builder writing `data` (or what it returns) to `name` in the case folder."""
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data() if callable(data) else data)
        return path
    return build


def _garbage(size: int, salt: int) -> bytes:
    return random.Random(salt).randbytes(size)


# ---------------------------------------------------------------- empty, one byte, magic then garbage

EMPTY = [Case(f"misc/empty{suffix or '-no-suffix'}", ISSUE, _writes(f"empty{suffix}", b""))
         for suffix in (".h5", ".keras", ".pt", ".safetensors", ".onnx", "")]

ONE_BYTE = [Case(f"misc/one-byte-{byte:02x}", ISSUE, _writes("one.bin", bytes([byte])))
            for byte in (0x00, 0x89, 0x50, 0x7B, 0x80, 0x08)]

MAGICS = {
    "hdf5": (b"\x89HDF\r\n\x1a\n", ".h5"),
    "zip": (b"PK\x03\x04", ".pt"),
    "zip-keras": (b"PK\x03\x04\x14\x00\x00\x00\x00\x00config.json", ".keras"),
    "torch-legacy": (b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.", ".pt"),
    "safetensors": ((200).to_bytes(8, "little") + b'{"a": {"dtype": "F32", ', ".safetensors"),
    "onnx": (b"\x08\x08\x12\x0fweightkit-tests:", ".onnx"),
    "sharded-index": (b'{"weight_map": {"a": "', ".json"),
}
MAGIC_GARBAGE = [Case(f"misc/magic-then-garbage-{name}", ROBUSTNESS,
                      _writes(f"garbage{suffix}", magic + _garbage(4096, salt)))
                 for salt, (name, (magic, suffix)) in enumerate(MAGICS.items())]


# ---------------------------------------------------------------- truncations of valid files

TRUNCATED_KINDS = ("h5", "keras", "torch", "torch_legacy", "safetensors", "onnx")


def _cut_points(size: int) -> list[int]:
    """Ten places to cut a file of `size` bytes: inside the header, the middle, the last bytes."""
    points = [1, 8, 16, 64, size // 4, size // 2, 3 * size // 4, size - 64, size - 8, size - 1]
    return [max(1, min(size - 1, point)) for point in points]


def _truncated(kind: str, index: int) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        data = seed(kind)
        path = folder / Path(FILES[kind]).name
        path.write_bytes(data[: _cut_points(len(data))[index]])
        return path
    return build


TRUNCATED = [Case(f"misc/truncated-{kind}-{index}", ROBUSTNESS, _truncated(kind, index))
             for kind in TRUNCATED_KINDS for index in range(10)]


# ---------------------------------------------------------------- the right content under the wrong name

def _renamed(kind: str, name: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        shutil.copyfile(shared().path(kind), path)
        return path
    return build


WRONG_NAME = [Case(f"misc/{kind}-named-{name}", "DESIGN.md: formats are found by content, never by extension",
                   _renamed(kind, name), expect="ok")
              for kind, name in (("safetensors", "model.h5"), ("torch", "model.safetensors"), ("h5", "model.pt"),
                                 ("onnx", "model.keras"), ("keras", "model.onnx"), ("torch_legacy", "model.bin"))]


# ---------------------------------------------------------------- paths that are not regular files

def _directory(folder: Path) -> Path:
    path = folder / "model.safetensors"
    path.mkdir()
    return path


def _fifo(folder: Path) -> Path:
    path = folder / "model.safetensors"
    os.mkfifo(path)
    return path


def _link_to(target: str | Callable[[Path], Path], name: str) -> Callable[[Path], Path]:
    """A symlink called `name` to `target` (a path, or what a builder makes)."""
    def build(folder: Path) -> Path:
        path = folder / name
        path.symlink_to(target(folder) if callable(target) else target)
        return path
    return build


def _symlink_loop(folder: Path) -> Path:
    (folder / "b.safetensors").symlink_to(folder / "a.safetensors")
    (folder / "a.safetensors").symlink_to(folder / "b.safetensors")
    return folder / "a.safetensors"


def _no_permissions(folder: Path) -> Path:
    path = folder / "locked.safetensors"
    shutil.copyfile(shared().path("safetensors"), path)
    path.chmod(0)
    return path


def _sparse(magic: bytes, name: str) -> Callable[[Path], Path]:
    """A 64 GiB sparse file (no disk space used) that starts with `magic`: nothing may read it all."""
    def build(folder: Path) -> Path:
        path = folder / name
        with path.open("wb") as handle:
            handle.write(magic)
            handle.truncate(64 * 2**30)
        return path
    return build


def _device(path: str) -> Callable[[Path], Path]:
    return lambda folder: Path(path)


NOT_REGULAR = "refuse what is not a regular file (a FIFO or a device never ends; issue 13 item 9)"
SPECIAL = [
    Case("misc/directory-as-file", NOT_REGULAR, _directory),
    Case("misc/fifo-as-file", NOT_REGULAR, _fifo),
    Case("misc/symlink-to-fifo", NOT_REGULAR, _link_to(_fifo, "link.safetensors")),
    Case("misc/dev-zero", NOT_REGULAR, _device("/dev/zero")),
    Case("misc/dev-urandom", NOT_REGULAR, _device("/dev/urandom")),
    Case("misc/dev-null", NOT_REGULAR, _device("/dev/null")),
    Case("misc/symlink-to-dev-zero", NOT_REGULAR, _link_to("/dev/zero", "model.h5")),
    Case("misc/symlink-loop", NOT_REGULAR, _symlink_loop),
    Case("misc/dangling-symlink", NOT_REGULAR, _link_to("/nonexistent/weightkit/model.pt", "model.pt")),
    Case("misc/missing-file", ISSUE, lambda folder: folder / "not-there.safetensors"),
    Case("misc/sparse-64gib-zeros", "issue 13 item 2 (hangs): a file of zeros must not be read to its end",
         _sparse(b"", "zeros.bin")),
    Case("misc/sparse-64gib-hdf5-magic", "issue 13 item 2 (hangs)", _sparse(b"\x89HDF\r\n\x1a\n", "big.h5")),
    Case("misc/sparse-64gib-safetensors-header", "issue 13 item 3 (memory): a header length of 60 GiB",
         _sparse((60 * 2**30).to_bytes(8, "little") + b"{", "big.safetensors")),
]

# Root reads a file whatever its mode: then it is a valid file; anyone else gets a permission refusal.
PERMISSIONS = [Case("misc/zero-permission-file", "issue 13 item 6 (unclean errors)", _no_permissions,
                    expect="ok" if os.geteuid() == 0 else "refused")]


# ---------------------------------------------------------------- names that attack the terminal

TERMINAL = "issue 13 item 5 (terminal): a path is shown as text, control characters escaped"
NAMES = [Case(f"misc/name-with-{what}", TERMINAL, _renamed("safetensors", name), expect="ok")
         for what, name in (("escape", "model\x1b[2J\x1b]0;pwned\x07.safetensors"),
                            ("newline", "model\nweightkit: error: forged.safetensors"),
                            ("markup", "model[link=evil][black on black][blink]x.safetensors"),  # no "/" in a name
                            ("osc52-clipboard", "m\x1b]52;c;cm0gLXJmIH4=\x07.safetensors"),
                            ("carriage-return", "evil\rgood.safetensors"),
                            ("non-utf8-bytes", os.fsdecode(b"model-\xff\xfe.safetensors")))]

CASES: list[Case] = [*EMPTY, *ONE_BYTE, *MAGIC_GARBAGE, *TRUNCATED, *WRONG_NAME, *SPECIAL, *PERMISSIONS, *NAMES]
