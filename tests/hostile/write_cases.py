"""Hostile writes (issue 13 items 4 and 9): none fits the corpus shape, so this family has no case.

The attacks need what the corpus runner never does: ``--force`` (``merge A B -o A --force``,
``check C --into M --fix C --force`` replacing their own input, by name, symlink or hard link),
a SIGKILL in the middle of a write (a hidden ``.partial`` left behind), or another process creating
the output between the existence check and the rename. Each is a test instead:
tests/cli/test_output_files.py (inputs never replaced, output folders that cannot be made) and
tests/test_atomic.py (SIGKILL of a real writer in a child process, the race, inputs by identity).
The runner checks the rest on every case: no ``.partial`` left, no input replaced or removed.
"""

from __future__ import annotations

from .cases import Case

CASES: list[Case] = []
