"""CLI tests: each runs `weightkit.cli.main` as the shell would and reads what it printed."""

from __future__ import annotations


def run(capsys, *argv) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``weightkit ARGV...`` (arguments may be paths)."""
    from weightkit.cli import main

    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err
