"""``python -m tests.tools.catalog``: regenerate weightkit/catalog/architectures.json.gz from the real libraries."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from importlib import metadata

from . import CATALOG_PATH, entry_of, write_catalog

os.environ.setdefault("KERAS_BACKEND", "torch")  # before any source imports Keras
SOURCES = ("keras_apps", "yolo2", "torch_models")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.tools.catalog", description=__doc__)
    parser.add_argument("--only", nargs="*", help="constructors or names to build (default: all)")
    parser.add_argument("--sources", nargs="*", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--print", action="store_true", help="print the entries; write nothing")
    args = parser.parse_args(argv)
    from ..torchvision_import import import_torchvision

    import_torchvision()
    only = set(args.only) if args.only else None
    entries = []
    for source in args.sources:
        module = importlib.import_module(f"{__package__}.{source}")
        started = time.perf_counter()
        for built in module.builds(only):
            entry = entry_of(built)
            entries.append(entry)
            if args.print:
                print(f"{entry.name:40} {entry.source:18} {len(entry.tokens):5} tokens  {entry.constructor}")
        print(f"{source}: {sum(e.source != 'x' for e in entries)} entries so far, "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.print:
        return 0
    names = [(e.source, e.name) for e in entries]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        print(f"two entries share a name: {sorted(duplicates)}", file=sys.stderr)
        return 1
    versions = {name: metadata.version(name) for name in ("keras", "torch", "torchvision", "timm")}
    size = write_catalog(entries, versions)
    print(f"wrote {len(entries)} entries to {CATALOG_PATH} ({size / 1024:.0f} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
