"""`weightkit split` of a ~1 GB checkpoint against the script a user would otherwise write.

The obvious script: load everything with torch.load, filter the keys, torch.save twice.
Run: python tests/bench/bench_split.py  (writes /tmp/weightkit-bench/split.pt once: a
backbone of 100 blocks of 1024x1024 float32 weights plus biases, and a 2-layer head;
prints a markdown table for docs/benchmarks.md).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import measure, python

WORK = Path("/tmp/weightkit-bench")


def make_checkpoint() -> Path:
    """Written by a child process, so the measuring process never holds the tensors."""
    path = WORK / "split.pt"
    if not path.exists():
        WORK.mkdir(exist_ok=True)
        code = ("import torch\n"
                "torch.manual_seed(0)\n"
                "s = {}\n"
                "for b in range(240):\n"
                "    s[f'backbone.blocks.{b}.weight'] = torch.randn(1024, 1024)\n"
                "    s[f'backbone.blocks.{b}.bias'] = torch.randn(1024)\n"
                "s['head.0.weight'] = torch.randn(512, 1024); s['head.0.bias'] = torch.randn(512)\n"
                "s['head.1.weight'] = torch.randn(10, 512); s['head.1.bias'] = torch.randn(10)\n"
                f"torch.save(s, {str(path)!r})\n")
        subprocess.run([python(), "-c", code], check=True)
    return path


def main() -> None:
    path = make_checkpoint()
    out = WORK / "split-out"
    weightkit = shutil.which("weightkit") or "weightkit"
    obvious = ("import torch\n"
               f"s = torch.load({str(path)!r}, weights_only=True)\n"
               "torch.save({k: v for k, v in s.items() if not k.startswith('head.')}, "
               f"{str(out / 'backbone_torch.pt')!r})\n"
               "torch.save({k: v for k, v in s.items() if k.startswith('head.')}, "
               f"{str(out / 'head_torch.pt')!r})\n")
    obvious_mmap = obvious.replace("weights_only=True", "weights_only=True, mmap=True")
    out.mkdir(exist_ok=True)
    print(f"file: {path} ({path.stat().st_size / 1e6:.0f} MB)\n")
    print("| command | median wall time | median peak RSS |\n|---|---|---|")
    results = [
        measure("weightkit split --head-prefix head.", [weightkit, "split", str(path), "--head-prefix", "head.",
                                                        "--out", str(out), "--force"]),
        measure("torch.load, filter keys, torch.save twice", [python(), "-c", obvious]),
        measure("the same with torch.load(mmap=True)", [python(), "-c", obvious_mmap]),
    ]
    for result in results:
        print(result.row())
    ours, theirs = results[0], results[1]
    print(f"\nweightkit: {theirs.seconds / ours.seconds:.1f}x the speed, "
          f"{ours.peak_mb / theirs.peak_mb:.2f}x the peak memory of the obvious script.")


if __name__ == "__main__":
    main()
