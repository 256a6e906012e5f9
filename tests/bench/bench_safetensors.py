"""safetensors: weightkit inspect / read-all / convert against the safetensors library, on an ~800 MB file.

Run: python tests/bench/bench_safetensors.py  (writes /tmp/weightkit-bench/big.safetensors once
with safetensors.numpy; prints a markdown table for docs/benchmarks.md).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import measure, python

WORK = Path("/tmp/weightkit-bench")


def make_file() -> Path:
    """200 float32 blocks of 4 MB plus their biases, like a mid-size transformer's checkpoint.

    Written by a child process: a forked child inherits its parent's peak RSS, so the
    measuring process itself must never hold the tensors.
    """
    path = WORK / "big.safetensors"
    if not path.exists():
        WORK.mkdir(exist_ok=True)
        code = ("import numpy as np, safetensors.numpy as s\n"
                "rng = np.random.default_rng(0)\n"
                "t = {}\n"
                "for b in range(200):\n"
                "    t[f'h.{b}.mlp.weight'] = rng.standard_normal((1024, 1024), dtype=np.float32)\n"
                "    t[f'h.{b}.mlp.bias'] = rng.standard_normal(1024, dtype=np.float32)\n"
                f"s.save_file(t, {str(path)!r}, metadata={{'format': 'pt'}})\n")
        subprocess.run([python(), "-c", code], check=True)
    return path


def main() -> None:
    path = make_file()
    out = WORK / "out.safetensors"
    weightkit = shutil.which("weightkit") or "weightkit"
    print(f"file: {path} ({path.stat().st_size / 1e6:.0f} MB)\n")
    print("| command | median wall time | median peak RSS |\n|---|---|---|")
    read_all = f"import weightkit; m = weightkit.load({str(path)!r}); [t.read() for t in m.tensors()]"
    convert = (f"import weightkit; weightkit.save(weightkit.load({str(path)!r}), {str(out)!r}, force=True)")
    library_list = (f"from safetensors import safe_open\nwith safe_open({str(path)!r}, 'np') as f:\n"
                    "    [f.get_slice(k).get_shape() for k in f.keys()]")
    library_copy = ("import safetensors.numpy as s; "
                    f"s.save_file(s.load_file({str(path)!r}), {str(out)!r}, metadata={{'format': 'pt'}})")
    results = [
        measure("weightkit inspect big.safetensors", [weightkit, "inspect", str(path)]),
        measure("weightkit inspect --json big.safetensors", [weightkit, "inspect", "--json", str(path)]),
        measure("safe_open + every shape (safetensors library)", [python(), "-c", library_list]),
        measure("weightkit.load + read every tensor", [python(), "-c", read_all]),
        measure("safetensors.numpy.load_file", [python(), "-c",
                                                f"import safetensors.numpy as s; s.load_file({str(path)!r})"]),
        measure("weightkit.load + weightkit.save (.safetensors)", [python(), "-c", convert]),
        measure("safetensors.numpy.load_file + save_file", [python(), "-c", library_copy]),
    ]
    for result in results:
        print(result.row())
    out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
