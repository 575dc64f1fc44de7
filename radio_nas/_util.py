"""Small helpers every layer shares: atomic files, the cache root, resolutions, tables, intervals.

    from radio_nas._util import atomic_write, atomic_path, cache_root, parse_resolution
    atomic_write("results/x/report.md", "# ...")       # a reader sees the old file or the new one
    with atomic_path("results/x/plot.png") as tmp:      # for writers that want a file name
        fig.savefig(tmp)
    cache_root() / "teachers"                          # $RADIO_NAS_CACHE, else ~/.cache/radio-nas
    parse_resolution("256x384")                        # (256, 384)

Nothing here imports torch, Optuna or Ray; it sits at the bottom of the import graph with
:mod:`radio_nas._config`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from radio_nas._config import ConfigError

CACHE_ENV = "RADIO_NAS_CACHE"
"""The root of every radio-nas cache: ``teachers/`` (teacher outputs) and ``latency/`` (timings)."""
DEFAULT_CACHE_ROOT = "~/.cache/radio-nas"


def cache_root() -> Path:
    """``$RADIO_NAS_CACHE`` if set, else ``~/.cache/radio-nas``; caches live in sub-folders of it."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_ROOT).expanduser()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside `path` (same suffix, so writers that sniff it work); it replaces
    `path` when the block ends without error and is removed otherwise. Concurrent writers each get
    their own temporary file; the last rename wins. The name carries this host and process, so the
    temporaries a killed writer (SIGKILL) left for `path` are removed by the next write of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=path.suffix or ".tmp"
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


_HOST = socket.gethostname().replace(".", "_").replace("-", "_") or "host"


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporaries of `path` that a process of this host which is gone left behind."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{re.escape(_HOST)}-(\d+)\..+")
    try:
        leftovers = [p for p in path.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return
    for p in leftovers:
        pid = int(pattern.fullmatch(p.name).group(1))  # type: ignore[union-attr]
        if pid != os.getpid() and not _alive(pid) and p.is_file() and not p.is_symlink():
            with contextlib.suppress(OSError):
                p.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a pid: leave its file alone
    return True


def write_path(root: str | Path, *parts: str | Path, key: str | None = None) -> Path:
    """``root / parts`` for a write that must stay inside `root`: a ConfigError (one line) when a
    part is ``..`` or absolute, or when anything below `root` on the way (a sub-folder, the file
    itself) is a symbolic link, since a write would go through it, possibly out of the folder.
    `root` itself may be a link: whoever named it chose where it points."""
    path = Path(root)
    for part in Path(*parts).parts if parts else ():
        if part in ("..", "") or Path(part).is_absolute():
            raise ConfigError(f"{part!r} would leave {root}; refusing to write there", key=key)
        path = path / part
        if path.is_symlink():
            raise ConfigError(
                f"{path} is a symbolic link (to {os.readlink(path)}); refusing to write through it, "
                f"out of {root} (replace it with a folder or file)",
                key=key,
            )
    return path


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to `path` atomically; returns `path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return path


def parse_resolution(value: Any, *, key: str = "resolution") -> tuple[int, int]:
    """``224``, ``"224"``, ``"256x384"``, ``[256, 384]`` -> (H, W), both sides positive integers."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        parts = list(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        parts = [value, value]
    elif isinstance(value, str):
        parts = value.strip().lower().replace("×", "x").replace("*", "x").split("x")
        if len(parts) == 1:
            parts = parts * 2
    else:
        parts = []
    try:
        if len(parts) != 2 or any(isinstance(p, (bool, float)) for p in parts):
            raise ValueError
        h, w = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"expected N or HxW (e.g. 224 or 256x384), got {value!r}", key=key) from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"expected positive sides, got {value!r}", key=key)
    return h, w


def format_cell(value: Any) -> str:
    """A table cell: blank for missing/NaN, integral floats without decimals, 4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values, without importing pandas
        return ""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if value else ""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A padded Markdown table of `rows` (columns: `columns`, else every key in first-seen order)."""
    if not rows:
        return "_(none)_"
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    cells = [[format_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, half-width of the two-sided Student-t interval, sample std) of the finite `values`;
    NaN where undefined (no values: all three; one value: interval and std)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(finite)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = math.fsum(finite) / n
    if n == 1:
        return mean, math.nan, math.nan
    from scipy import stats

    std = math.sqrt(math.fsum((v - mean) ** 2 for v in finite) / (n - 1))
    return mean, float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n), std
