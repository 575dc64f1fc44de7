"""The ``radio-nas`` command. Each sub-command lives in its own module of this package with
``add_parser(subparsers)`` and ``run(args) -> int``; heavy imports happen inside ``run``.

Errors in user input (:class:`~radio_nas.ConfigError`, a bad argument, a path that cannot be read
or written) print one line and exit 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from typing import Any, NoReturn

from radio_nas import __version__
from radio_nas._config import ConfigError

COMMANDS = ["profile", "trial", "cache", "sweep", "replay", "report", "export", "viz", "validate", "list"]


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error (usage stays behind --help); sub-parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="radio-nas",
        description="Architecture search and ablation for E-RADIO students by multi-teacher distillation.",
    )
    parser.add_argument("--version", action="version", version=f"radio-nas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMANDS:
        module_name = f"radio_nas.cli.{name}_cmd"
        if importlib.util.find_spec(module_name) is not None:
            module = importlib.import_module(module_name)
            module.add_parser(sub).set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ConfigError as exc:
        print(f"radio-nas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user named cannot be read or written (permissions, a folder, ...)
        if exc.errno is None:
            raise
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
        print(f"radio-nas {args.command}: error: {where + ': ' if where else ''}{exc.strerror}", file=sys.stderr)
        return 2
    except Exception as exc:  # the storage's own full disk (SQLite: "database or disk is full")
        if not _disk_full(exc):
            raise
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        print(f"radio-nas {args.command}: error: no space left on device ({first}); free some, rerun", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C: what was finished is kept; the message may say where
        print(f"radio-nas {args.command}: interrupted" + (f": {exc}" if str(exc) else ""), file=sys.stderr)
        return 130


def _disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` or what caused it is a full disk (an OSError ENOSPC, SQLite's 'disk is full')."""
    import errno

    seen = 0
    while exc is not None and seen < 20:
        if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "database or disk is full" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def print_json(obj: Any) -> None:
    """The one JSON object a `--json` command prints on stdout."""
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
