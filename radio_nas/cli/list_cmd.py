"""``radio-nas list``: the search spaces and pipelines shipped with radio-nas (usable by name).

radio-nas list
radio-nas list --json
radio-nas sweep mra            # a shipped space by name, from any folder
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "list",
        help="list the shipped search spaces and pipelines",
        description="The search spaces and pipelines that ship with radio-nas; any command takes them by name "
        "(radio-nas sweep mra, radio-nas trial distill_cpu --arch xt).",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    from radio_nas._config import load_yaml
    from radio_nas._shipped import PIPELINES, SPACES, shipped
    from radio_nas.cli import print_json

    names = shipped()
    info: dict[str, Any] = {
        "spaces": {n: str(SPACES / f"{n}.yaml") for n in names["spaces"]},
        "pipelines": {n: str(PIPELINES / f"{n}.yaml") for n in names["pipelines"]},
    }
    if args.json:
        print_json(info)
        return 0
    for kind, folder in (("spaces", SPACES), ("pipelines", PIPELINES)):
        print(f"{kind} ({folder}):")
        for name in names[kind]:
            doc = load_yaml(folder / f"{name}.yaml")
            about = doc.get("description") or doc.get("name") or "" if isinstance(doc, dict) else ""
            print(f"  {name:<16} {about}")
    return 0
