"""The ``weightkit`` command: parse arguments, call one library function, render, exit.

Commands live in sibling modules, each with ``add_arguments(parser)`` and
``run(args) -> int``; they are imported only when chosen, so ``--help`` stays fast.
Errors a user can cause become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

__all__ = ["main"]

#: command name → (module, one-line help)
COMMANDS = {
    "inspect": ("inspect", "show what a weight file holds: format, layers, tensors, totals"),
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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
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
        return _command_module(COMMANDS[args.command][0]).run(args)
    except WeightkitError as error:
        if args.debug:
            raise
        _print_error(str(error))
        return error.exit_code
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


def _print_error(text: str) -> None:
    print(f"weightkit: error: {' '.join(text.split())}", file=sys.stderr)


def _version() -> str:
    from .. import __version__

    return __version__
