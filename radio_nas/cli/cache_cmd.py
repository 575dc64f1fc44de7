"""``radio-nas cache``: list or clear cached teacher outputs.

radio-nas cache ls                      # key, teacher, split, crops, shapes, size; broken entries too
radio-nas cache ls --json
radio-nas cache clear                   # every entry the cache made (sound or broken)
radio-nas cache clear 3fa9c1 77b0       # entries whose key starts with these
radio-nas cache ls --dir /data/teacher-cache   (default: $RADIO_NAS_CACHE/teachers, ~/.cache/radio-nas/teachers)
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "cache",
        help="list or clear cached teacher outputs",
        description="Teacher outputs are cached per teacher, data and crop stream.",
    )
    p.add_argument("action", choices=["ls", "clear"])
    p.add_argument("keys", nargs="*", help="clear: key prefixes to remove (default: all entries)")
    p.add_argument("--dir", help="cache folder (default: $RADIO_NAS_CACHE/teachers, ~/.cache/radio-nas/teachers)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _root(args: argparse.Namespace) -> Path:
    from radio_nas.distill.pipeline import default_teacher_cache

    return Path(args.dir).expanduser() if args.dir else default_teacher_cache()


def run(args: argparse.Namespace) -> int:
    from radio_nas._config import ConfigError
    from radio_nas._util import CACHE_ENV
    from radio_nas.cli import print_json
    from radio_nas.distill.cache import clear, list_entries

    root = _root(args)
    for p in (root, *root.parents):  # $RADIO_NAS_CACHE naming a file makes its teachers/ unreachable
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"{p} is a file; expected the cache folder", key="--dir" if args.dir else CACHE_ENV)
            break
    if args.action == "ls":
        if args.keys:
            raise ConfigError("ls takes no keys", key="keys")
        entries = list_entries(root, broken=True)
        if args.json:
            print_json({"dir": str(root), "entries": entries, "bytes": sum(e["bytes"] for e in entries)})
            return 0
        print(f"{root}: {len(entries)} entries, {sum(e['bytes'] for e in entries) / 2**20:.1f} MiB")
        for e in entries:
            if e["status"] != "ok":
                print(
                    f"{e['key']}  BROKEN ({e['problem']}; rebuilt on next use, or `radio-nas cache clear "
                    f"{e['key'][:8]}`)  {e['bytes'] / 2**20:7.1f} MiB"
                )
                continue
            print(
                f"{e['key']}  {e['teacher']:<12} {e['split']:<5} {e['n']:>6} crops  "
                f"summary {'x'.join(map(str, e['summary_shape'][1:]))}  features "
                f"{'x'.join(map(str, e['features_shape'][1:]))}  {e['bytes'] / 2**20:7.1f} MiB  "
                f"{e['adapter']}:{e['model']} @ {'x'.join(map(str, e['resolution']))}  {e['data']}"
            )
        return 0
    removed = clear(root, args.keys or None)
    if args.json:
        print_json({"dir": str(root), "removed": removed})
    else:
        print(f"removed {len(removed)} entries from {root}")
    return 0
