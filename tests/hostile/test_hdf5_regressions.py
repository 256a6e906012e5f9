"""Issue 13 item 10: the fuzz inputs that crashed (SIGSEGV in libhdf5) or hung weightkit now fail cleanly.

The files in regressions/hdf5/ were made by make_hdf5_regressions.py (see the README
there). One child process inspects them all through ``weightkit.cli.main`` — a crash
would kill it, a hang trips its per-file alarm — and reports each file's exit code and
stderr; every one must be exit 2 with one line, or exit 0/1 (a correct result).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

FOLDER = Path(__file__).parent / "regressions" / "hdf5"

_CHILD = textwrap.dedent("""
    import contextlib, io, json, signal, sys
    from weightkit.cli import main

    def alarm(*_):
        raise TimeoutError("hang")

    signal.signal(signal.SIGALRM, alarm)
    for path in sys.argv[1:]:
        err = io.StringIO()
        signal.alarm(10)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                code = main(["inspect", path])
        except BaseException as exc:
            code, err = -1, io.StringIO(f"{type(exc).__name__}: {exc}")
        signal.alarm(0)
        print(json.dumps({"file": path, "code": code, "stderr": err.getvalue()}), flush=True)
""")


def test_every_kept_crash_and_hang_now_fails_cleanly():
    files = sorted(str(p) for p in FOLDER.glob("*.h5"))
    assert files, "the regression corpus is empty"
    done = subprocess.run([sys.executable, "-c", _CHILD, *files], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["file"] for r in results] == files
    bad = [r for r in results if not _clean(r)]
    assert not bad, bad[:5]


def _clean(result: dict[str, object]) -> bool:
    stderr = str(result["stderr"]).strip().splitlines()
    if result["code"] in (0, 1):
        return not any("Traceback" in line or "unexpected" in line for line in stderr)
    return result["code"] == 2 and len(stderr) == 1 and "unexpected" not in stderr[0]
