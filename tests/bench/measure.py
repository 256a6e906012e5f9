"""Timing whole processes: median wall time and peak resident memory over repeated runs.

Shared by every benchmark script here; run as a library (`from measure import ...`)
from this folder. Peak memory is the child's ru_maxrss from wait4, so it covers
the whole process, interpreter included.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass
class Result:
    label: str
    seconds: float
    peak_mb: float
    runs: int

    def row(self) -> str:
        return f"| {self.label} | {self.seconds:.3f} s | {self.peak_mb:.0f} MB |"


def run_once(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one run of ``command``; it must exit 0."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-500:]}")
    process.stderr.close()
    return elapsed, usage.ru_maxrss / 1024


def measure(label: str, command: list[str], runs: int = 5, env: dict[str, str] | None = None) -> Result:
    """Median wall time and median peak memory over ``runs`` runs (after one warm-up run)."""
    run_once(command, env)
    samples = [run_once(command, env) for _ in range(runs)]
    return Result(label, statistics.median(s for s, _ in samples), statistics.median(m for _, m in samples), runs)


def python() -> str:
    return sys.executable
