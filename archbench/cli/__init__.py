"""The `archbench` command: parse arguments, call the library, print with rich.

Each subcommand lives in its own module exposing ``register(subparsers)``; bad input (a UserError)
ends as one line on stderr and exit status 2 (``--debug`` shows the traceback); a bug keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import NoReturn, Sequence

from archbench.errors import UserError

# Subcommand modules, in the order `archbench --help` lists them.
SUBCOMMANDS = ("profile", "zoo", "reproduce", "spaces", "search", "fidelity", "report", "compare")

# What the user can fix, reported in one line with exit status 2 (SpecError is a UserError); any
# other exception is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError)


class UsageError(UserError):
    """Bad input the user can fix (an option, a file, a name): reported in one line, exit 2."""


class JobFailed(Exception):
    """The job ran but did not do what was asked (e.g. a reproduction out of tolerance): exit 1."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors in one line, like every other error (argparse prints the whole
    usage block first); the help says the rest. Subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="archbench",
        description="Architecture search and efficiency benchmarks for hybrid CNN/ViT backbones.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("--version", action="version", version=f"archbench {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"archbench.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"archbench.cli.{name}":
                raise
            continue  # a subcommand not shipped in this build
        module.register(subparsers)
    return parser


def _version() -> str:
    from archbench import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" not in argv:
        # Tracer/deprecation chatter from torch, fvcore and timm is not for the user's terminal.
        warnings.filterwarnings("ignore")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0 if not argv else 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("archbench: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"archbench: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except JobFailed as err:
        if args.debug:
            raise
        print(f"archbench: {_one_line(str(err))}", file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


def run() -> None:
    """Console-script entry (``archbench``) and ``python bench.py``."""
    sys.exit(main())
