"""The ``weightkit`` command: parse arguments, call one library function, render, exit.

Commands live in sibling modules, each with ``add_arguments(parser)`` and
``run(args) -> int``; they are imported only when chosen, so ``--help`` stays fast.
Errors a user can cause become one line on stderr and exit code 2, its control characters
escaped (a file name or tensor name in it comes from the file).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

__all__ = ["main"]

#: command name → (module, one-line help)
COMMANDS = {
    "inspect": ("inspect", "show what a weight file holds: format, layers, tensors, totals"),
    "identify": ("identify", "name the architecture of a weight file, its head, and where its backbone ends"),
    "diff": ("diff", "compare two architectures layer by layer, across formats"),
    "check": ("check", "does a head fit a backbone; what would loading a checkpoint into a model do"),
    "split": ("split", "cut a weight file into a backbone and a head"),
    "merge": ("merge", "join a backbone and a head into one file, after checking they fit"),
    "convert": ("convert", "convert a Keras model to ONNX (no TensorFlow needed), optionally checked against Keras"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weightkit",
        description="Inspect, compare, split, merge and convert neural-network weight files "
        "(Keras, PyTorch, safetensors, ONNX) without TensorFlow or PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"weightkit {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=N", help=_limit_help())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sub.add_argument("--limit", action="append", dest="command_limit", default=[], metavar="NAME=N",
                         help="as `weightkit --limit` (repeatable)")
        _command_module(module_name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 problem found, 2 error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from ..errors import WeightkitError

    try:
        with _limits_set(args.limit + getattr(args, "command_limit", [])):
            return _command_module(COMMANDS[args.command][0]).run(args)
    except WeightkitError as error:
        if args.debug:
            raise
        _print_error(str(error))
        return error.exit_code
    except MemoryError as error:  # an allocation a file asked for (a reader should have refused it first)
        if args.debug:
            raise
        _print_error(str(_out_of_memory(error)))
        return 2
    except KeyboardInterrupt:
        _print_error("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as error:  # a bug, or a file broken in a way no reader foresaw
        if args.debug:
            raise
        _print_error(f"unexpected {type(error).__name__}: {error} (run with --debug for the traceback)")
        return 2


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name}_cmd")


def _limit_help() -> str:
    from ..limits import LIMITS

    return ("raise (or lower) a resource limit for this run, repeatable; as WEIGHTKIT_MAX_<NAME>=N. NAME is one of "
            + ", ".join(limit.name for limit in LIMITS) + " (see docs/security.md)")


@contextmanager
def _limits_set(settings: list[str]) -> Iterator[None]:
    """Run the command under the ``--limit NAME=N`` settings (see `weightkit.limits.raised`)."""
    from ..limits import raised

    values = dict(_limit_setting(text) for text in settings)
    with raised(**values):
        yield


def _limit_setting(text: str) -> tuple[str, int]:
    """``NAME=N`` as (name, value); N a whole number, ``_`` allowed between digits."""
    from ..errors import UsageError
    from ..limits import by_name

    name, equals, value = text.partition("=")
    if not equals or not re.fullmatch(r"[0-9][0-9_]*", value.strip()):
        raise UsageError(f"--limit {text!r} is not NAME=N with N a whole number", hint="e.g. --limit entries=5000000")
    return by_name(name.strip()).name, int(value.strip())


def _out_of_memory(error: MemoryError) -> Exception:
    from ..errors import UnsafeFileError

    detail = f" ({error})" if str(error) else ""
    return UnsafeFileError(f"a file asked for more memory than this machine has{detail}",
                           hint="it may declare sizes it does not hold; if you trust it, use a bigger machine")


def _print_error(text: str) -> None:
    from .render import safe

    print(f"weightkit: error: {safe(' '.join(text.split()))}", file=sys.stderr)


def _version() -> str:
    from .. import __version__

    return __version__
