"""The ``edgevqa`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its parser and sets
``func`` (``func(args) -> int`` exit code). Modules are imported when the CLI starts, so they must import heavy
libraries (torch, tensorrt, scipy) inside ``func``, never at module level.

A user error (`EdgeVQAError`) prints one line ``edgevqa: error: ...`` and exits 1; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .errors import EdgeVQAError

# name -> module holding register(); a module that is not present (an optional part) is skipped.
COMMAND_MODULES = (
    "edgevqa.cli_score",       # score
    "edgevqa.cli_batch",       # batch
    "edgevqa.cli_watch",       # watch
    "edgevqa.cli_info",        # info
    "edgevqa.cli_triton",      # triton
    "edgevqa.export.cli",      # export
    "edgevqa.calib.cli",       # quantize
    "edgevqa.bench.cli",       # bench, eval
    "edgevqa.backends.cli",    # build
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="edgevqa", description="Fast video quality assessment inference.")
    parser.add_argument("--version", action="version", version=f"edgevqa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Positional lists (e.g. several videos) may continue after options: `score a.mp4 --json b.mp4`.
    trailing = getattr(args, "trailing_positionals", None)
    if extra:
        if trailing and not any(e.startswith("-") for e in extra):
            getattr(args, trailing).extend(extra)
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeVQAError as exc:
        print(f"edgevqa: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgevqa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
