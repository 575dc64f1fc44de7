"""Options several commands share, declared once (argparse)."""

from __future__ import annotations

import argparse

from radio_nas.cli._checks import int_at_least

SPACE_KEY_HELP = "override a key of the space file (dotted, e.g. pipeline.overrides.steps=10)"


def add_set_option(p: argparse.ArgumentParser, help: str = SPACE_KEY_HELP, *, dest: str | None = None) -> None:
    """``--set KEY=VALUE``, repeatable, collected in a list (``dest``: its attribute, default ``set``)."""
    p.add_argument("--set", dest=dest or "set", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_local_ray_options(p: argparse.ArgumentParser) -> None:
    """``--num-cpus`` and ``--time``: how a sweep's local Ray runs and how long it may start trials."""
    p.add_argument("--num-cpus", type=int_at_least(1), metavar="N", help="CPUs of the local Ray (default: all)")
    p.add_argument("--time", metavar="DUR", help="no new trial after this long: 900, 90s, 15m, 2h")
