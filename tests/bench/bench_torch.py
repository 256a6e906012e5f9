"""PyTorch checkpoints: weightkit inspect/read/convert against torch.load on a ~1 GB state_dict.

Writes ``/tmp/weightkit-bench/big_torch.pt`` once (70 conv blocks: a float32
``720×512×3×3`` weight, a bias and four batch-norm vectors each: 420 tensors, 0.93 GB)
with torch.save in a child process, then measures whole processes, each run once to
warm the page cache and 5 times measured (median). Run from the repository root:

    python tests/bench/bench_torch.py [--runs 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import measure, python

FOLDER = Path("/tmp/weightkit-bench")
CHECKPOINT = FOLDER / "big_torch.pt"
LEGACY = FOLDER / "big_torch_legacy.pt"

MAKE = """
import sys, torch
from collections import OrderedDict
torch.manual_seed(0)
state = OrderedDict()
for i in range(70):
    state[f"blocks.{i}.conv.weight"] = torch.randn(720, 512, 3, 3)
    state[f"blocks.{i}.conv.bias"] = torch.randn(720)
    for name in ("weight", "bias", "running_mean", "running_var"):
        state[f"blocks.{i}.bn.{name}"] = torch.randn(720)
torch.save(state, sys.argv[1])
torch.save(state, sys.argv[2], _use_new_zipfile_serialization=False)
"""

# Touch every tensor the same way on both sides: one byte per 4 KiB page, so torch's
# memory-mapped tensors really fault their data in and weightkit's arrays are really read.
TOUCH_TORCH = "int(t.reshape(-1).view(torch.uint8)[::4096].sum())"
TOUCH_NUMPY = "int(a.reshape(-1).view('u1')[::4096].sum())"


def commands(path: Path) -> list[tuple[str, list[str]]]:
    p = str(path)
    weightkit = [python(), "-m", "weightkit"]
    return [
        (f"weightkit inspect {path.name}", [*weightkit, "inspect", p]),
        (f"weightkit inspect --json {path.name}", [*weightkit, "inspect", "--json", p]),
        ("torch.load(mmap=True, weights_only=True)",
         [python(), "-c", f"import torch; torch.load({p!r}, mmap=True, weights_only=True)"]),
        ("torch.load(weights_only=True)",
         [python(), "-c", f"import torch; torch.load({p!r}, weights_only=True)"]),
        ("weightkit.load + read every tensor",
         [python(), "-c", f"import weightkit\nwith weightkit.load({p!r}) as m:\n"
                          f"    for t in m.tensors():\n        a = t.read(); {TOUCH_NUMPY}"]),
        ("torch.load(mmap=True) + touch every tensor",
         [python(), "-c", f"import torch\nfor t in torch.load({p!r}, mmap=True, weights_only=True).values():\n"
                          f"    {TOUCH_TORCH}"]),
        ("torch.load + touch every tensor",
         [python(), "-c", f"import torch\nfor t in torch.load({p!r}, weights_only=True).values():\n"
                          f"    {TOUCH_TORCH}"]),
    ]


def convert_commands(path: Path) -> list[tuple[str, list[str]]]:
    out = str(FOLDER / "copy.pt")
    return [
        ("weightkit.load + weightkit.save (.pt)",
         [python(), "-c", f"import weightkit\nwith weightkit.load({str(path)!r}) as m:\n"
                          f"    weightkit.save(m, {out!r}, force=True)"]),
        ("torch.load + torch.save",
         [python(), "-c", f"import torch; torch.save(torch.load({str(path)!r}, weights_only=True), {out!r})"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    FOLDER.mkdir(exist_ok=True)
    if not CHECKPOINT.exists() or not LEGACY.exists():
        subprocess.run([python(), "-c", MAKE, str(CHECKPOINT), str(LEGACY)], check=True)
    print(f"{CHECKPOINT}: {CHECKPOINT.stat().st_size / 1e9:.2f} GB\n")
    print("| command | median wall time | median peak RSS |\n|---|---|---|")
    for label, command in commands(CHECKPOINT) + convert_commands(CHECKPOINT):
        print(measure(label, command, runs=args.runs).row(), flush=True)
    print(f"\nlegacy format ({LEGACY.name}):\n")
    print("| command | median wall time | median peak RSS |\n|---|---|---|")
    for label, command in commands(LEGACY)[:1] + [commands(LEGACY)[3], commands(LEGACY)[4]]:
        print(measure(label, command, runs=args.runs).row(), flush=True)


if __name__ == "__main__":
    main()
