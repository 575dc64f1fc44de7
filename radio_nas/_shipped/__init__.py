"""The search spaces and pipelines shipped with radio-nas, found by name from any folder.

    from radio_nas._shipped import shipped, find_space
    shipped()                         # {"spaces": ["loss_balancing", "mra", ...], "pipelines": [...]}
    find_space("mra")                 # .../radio_nas/_shipped/search_spaces/mra.yaml

In a checkout ``search_spaces/`` and ``pipelines/`` at the top level are the real files and this
package holds symbolic links to them; a wheel (``pip wheel .``) copies the files in, so an installed
radio-nas finds ``radio-nas sweep mra`` and ``pipelines/distill_cpu.yaml`` without a checkout.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SPACES = HERE / "search_spaces"
PIPELINES = HERE / "pipelines"
PHOTOS = HERE / "photos"
"""The bundled colour photographs (``data.source: photos``); MANIFEST.csv gives each file's source and licence."""


def _names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def shipped() -> dict[str, list[str]]:
    """Names of the shipped search spaces and pipelines."""
    return {"spaces": _names(SPACES), "pipelines": _names(PIPELINES)}


def find_space(source: str | Path) -> Path:
    """`source` when it names an existing file; a shipped space for a bare name (``mra``,
    ``mra.yaml`` or ``search_spaces/mra.yaml`` outside a checkout); else `source` unchanged (the
    caller reports the missing file)."""
    path = Path(source)
    if path.exists():
        return path
    if len(path.parts) == 1 or (len(path.parts) == 2 and path.parts[0] == "search_spaces"):
        candidate = SPACES / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
        if candidate.is_file():
            return candidate
    return path


def find_pipeline(name: str) -> Path | None:
    """A shipped pipeline by name (``distill_cpu`` or ``distill_cpu.yaml``), or None."""
    candidate = PIPELINES / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return candidate if candidate.is_file() else None
