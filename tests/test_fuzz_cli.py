"""Malformed input through the real ``radio-nas`` command: every case must exit 2 with
exactly one line on stderr that names the file/key/argument, no traceback, within seconds.

Each case runs ``python -m radio_nas ...`` in a fresh folder. ``benchmarks/fuzz_count.py`` runs the
same table and prints passed/total.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ~60 CLI runs of a few seconds each (still run in CI)

REPO = Path(__file__).resolve().parents[1]
# benchmarks/fuzz_count.py --before points it at an older checkout's own file (older code may not
# read today's keys)
PIPELINE = Path(os.environ.get("RADIO_NAS_FUZZ_PIPELINE") or REPO / "pipelines" / "distill_cpu.yaml")
TIMEOUT_S = 30.0

# A valid, CI-sized space; cases append or replace keys. The pipeline path is absolute so the
# space can live in any folder.
SPACE = f"""\
name: fz
pipeline:
  path: {PIPELINE}
  overrides: {{steps: 2, batch_size: 2, resolution: 64, data.train_size: 4, data.eval_size: 4,
              eval.knn: false, eval.size: 4, eval.every: 2}}
base: {{preset: xt, width: 16, depths: [1, 1, 1, 1], head_dim: 16}}
parameters:
  arch.width: choice(16, 32)
sampler: {{name: random, seed: 0}}
budget: {{trials: 1}}
resources: {{cpu: 1}}
"""

# billion laughs: 10^8 leaves from a 1 kB file
BOMB = "".join(f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "x"] * 10) + "]\n" for i in range(9))

FLOW_BOMB = "[" + ", ".join(f"&l{i} [" + ", ".join([f"*l{i - 1}" if i else "x"] * 10) + "]" for i in range(9)) + "]"

# a local torch.hub repo whose entry point leaves a mark when it runs
HUBCONF = """\
import pathlib
def teacher(**kwargs):
    pathlib.Path(__file__).with_name("RAN").write_text("hubconf ran")
    raise SystemExit(0)
"""


def _exported(pipeline_teacher: str) -> str:
    return f"""\
arch: {{preset: xt, width: 16, depths: [1, 1, 1, 1], head_dim: 16}}
pipeline:
  name: exported
  resolution: 64
  teachers:
{pipeline_teacher}
"""


HUB_TEACHER = """\
    - {name: hub, adapter: torch_hub, model: "hub:teacher", resolution: 32,
       summary: {layout: vector}, features: {}}
"""


@dataclasses.dataclass
class Case:
    id: str
    argv: list[str]
    """{d} is the case's folder, {study} a results folder holding a real study, {repo} the repo."""
    expect: tuple[str, ...]
    """Fragments the error line must contain (case-insensitive): the file, key or argument."""
    files: dict[str, str | bytes] = dataclasses.field(default_factory=dict)
    needs_study: bool = False
    setup: Callable[[Path], None] | None = None
    needs_permissions: bool = False
    """Relies on permission bits, which root ignores: skipped when running as root."""
    rc: int = 2
    """The promised exit code. Other than 2 the answer is a note, not an error: `expect` must then
    be on one line of `stream` (stderr still holds at most one line)."""
    stream: str = "stderr"
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    """Extra environment ({d} is the case's folder)."""
    check: Callable[[Path], str | None] | None = None
    """After the run, given the case's folder: what is wrong with what the command left (None: all fine)."""


def _space(extra: str = "", **replace: str) -> str:
    text = SPACE
    for key, value in replace.items():
        lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key}:")]
        text = "\n".join(lines) + "\n"
        extra = f"{key}: {value}\n" + extra
    return text + extra


def _garbage_safetensors() -> bytes:
    return (200).to_bytes(8, "little") + b"{not json" + b"\x00" * 300


def _readonly(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)


HUB_TEACHER_DICT = {
    "name": "hub",
    "adapter": "torch_hub",
    "model": "hub:teacher",
    "resolution": 32,
    "summary": {"layout": "vector"},
    "features": {},
}

HUB_PIPELINE = (
    """\
name: hubp
steps: 2
batch_size: 2
resolution: 64
teachers:
"""
    + HUB_TEACHER
)


def _hub_study(d: Path) -> None:
    """The study's recorded pipeline (study and trials) names a local torch.hub teacher."""
    import json
    import sqlite3

    value = json.dumps({"name": "tiny", "resolution": 64, "teachers": [HUB_TEACHER_DICT], "steps": 2})
    with contextlib.closing(sqlite3.connect(d / "study" / "study.db")) as db, db:
        db.execute("UPDATE study_user_attributes SET value_json = ? WHERE key = 'pipeline'", (value,))
        db.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'pipeline'", (value,))


def _hub_not_run(d: Path) -> str | None:
    return "the teacher's hubconf.py ran" if (d / "hub" / "RAN").exists() else None


def _link(at: str, to: str = "outside") -> Callable[[Path], None]:
    """`at` (under the case's folder) becomes a symbolic link to the folder `to` beside it."""

    def setup(d: Path) -> None:
        (d / to).mkdir(exist_ok=True)
        (d / at).parent.mkdir(parents=True, exist_ok=True)
        (d / at).symlink_to(d / to, target_is_directory=True)

    return setup


def _linked_file(d: Path) -> None:
    """The export's YAML already exists as a link to a file outside (not there yet)."""
    (d / "outside").mkdir()
    (d / "x").mkdir()
    (d / "x" / "study-trial0.yaml").symlink_to(d / "outside" / "f")


def _outside_empty(d: Path) -> str | None:
    written = sorted(p.name for p in (d / "outside").iterdir())
    return f"it wrote {written} through the link" if written else None


def _cache_entry(d: Path) -> None:
    """A read-only teacher cache holding one entry that `cache clear` cannot remove."""
    entry = d / "c" / ("ab" * 10)
    entry.mkdir(parents=True)
    (entry / ".radio-nas-cache").write_text("")
    (entry / "meta.json").write_text("{}")
    _readonly(d / "c")


def _tiny_photos(d: Path) -> None:
    """A folder of 1x1 photographs: readable, but nothing to crop."""
    import numpy as np
    from PIL import Image

    (d / "tiny").mkdir()
    for i in range(3):
        Image.fromarray(np.full((1, 1, 3), 40 * i, np.uint8)).save(d / "tiny" / f"p{i}.png")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _stale_onnx_temporary(d: Path) -> None:
    """What a writer killed (SIGKILL) mid-export leaves: its hidden temporary beside the target."""
    from radio_nas._util import _HOST

    (d / "x").mkdir()
    (d / "x" / f".study-trial0.onnx.{_HOST}-{_dead_pid()}.k1ll3d.onnx").write_bytes(b"half an onnx")


def _no_hidden_files(d: Path) -> str | None:
    hidden = sorted(p.name for p in (d / "x").iterdir() if p.name.startswith("."))
    return f"{hidden} are left in the export folder" if hidden else None


def _hand_made_study(d: Path) -> None:
    import optuna

    (d / "r").mkdir()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="by-hand", storage=f"sqlite:///{d / 'r' / 'study.db'}")


CASES: list[Case] = [
    # -- item 2: the teacher cache folder -------------------------------------------------------
    Case("cache-dir-is-a-file", ["cache", "ls", "--dir", "{d}/afile"], ("--dir", "afile"), files={"afile": "x"}),
    # -- item 4: hangs ----------------------------------------------------------------------------
    Case(
        "alias-bomb-unchecked-key",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "alias"),
        files={"s.yaml": _space("ablation:\n  base:\n" + BOMB.replace("    ", "    ", 1))},
    ),
    Case(
        "alias-bomb-pipeline",
        ["trial", "{d}/p.yaml", "--arch", "xt"],
        ("p.yaml", "alias"),
        files={"p.yaml": PIPELINE.read_text() + "bomb:\n" + BOMB},
    ),
    Case(
        "recursive-alias",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "alias"),
        files={"s.yaml": _space("ablation:\n  base: &r {x: *r}\n")},
    ),
    Case(
        "address-dead-port",
        ["sweep", "{d}/s.yaml", "--address", "127.0.0.1:9", "--results", "{d}/r"],
        ("--address", "127.0.0.1:9"),
        files={"s.yaml": _space()},
    ),
    Case(
        "address-malformed",
        ["sweep", "{d}/s.yaml", "--address", "localhost:notaport", "--results", "{d}/r"],
        ("--address",),
        files={"s.yaml": _space()},
    ),
    Case(
        "resources-cpu-nan",
        ["sweep", "{d}/s.yaml", "--check", "--set", "resources.cpu=.nan"],
        ("resources.cpu",),
        files={"s.yaml": _space()},
    ),
    # -- item 5: accepted when it should be refused -----------------------------------------------
    Case(
        "lr-nan",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "lr"),
        files={"s.yaml": _space().replace("eval.every: 2}", "eval.every: 2, optim.lr: .nan}")},
    ),
    Case(
        "lr-inf-trial",
        ["trial", "distill_cpu", "--arch", "xt", "--set", "optim.lr=.inf", "--set", "steps=1"],
        ("optim.lr",),
    ),
    Case(
        "smoothl1-beta-nan",
        ["trial", "distill_cpu", "--arch", "xt", "--set", "loss.smooth_l1_beta=.nan", "--set", "steps=1"],
        ("smooth_l1_beta",),
    ),
    Case(
        "resources-inf",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "resources"),
        files={"s.yaml": _space(resources="{cpu: .inf}")},
    ),
    Case(
        "wall-time-nan",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "wall_time"),
        files={"s.yaml": _space(budget="{trials: 1, wall_time: .nan}")},
    ),
    Case(
        "constraint-nan",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "max_gmacs"),
        files={"s.yaml": _space("constraints: {max_gmacs: .nan}\n")},
    ),
    Case(
        "constraint-inf",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "max_params"),
        files={"s.yaml": _space("constraints: {max_params: .inf}\n")},
    ),
    Case(
        "constraint-overflow",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "max_params"),
        files={"s.yaml": _space("constraints: {max_params: 1" + "0" * 400 + "}\n")},
    ),
    Case(
        "choice-unknown-balancing",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "balancing"),
        files={
            "s.yaml": _space().replace(
                "  arch.width: choice(16, 32)\n",
                "  arch.width: choice(16, 32)\n  pipeline.balancing.method: choice(fixed, bogus)\n",
            )
        },
    ),
    Case(
        "choice-mra-ratio-refused",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "mra_pattern"),
        files={
            "s.yaml": _space().replace(
                "  arch.width: choice(16, 32)\n",
                "  arch.width: choice(16, 32)\n  arch.mra_pattern: choice([[2, 1], [1]], [[3], [1]])\n",
            )
        },
    ),
    Case(
        "range-endpoint-refused",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "window_sizes"),
        files={
            "s.yaml": _space().replace(
                "  arch.width: choice(16, 32)\n",
                "  arch.width: choice(16, 32)\n  arch.window_sizes: choice([2, 2], [0, 2])\n",
            )
        },
    ),
    Case("empty-space-file", ["sweep", "{d}/s.yaml", "--check"], ("s.yaml", "empty"), files={"s.yaml": ""}),
    Case(
        "comment-only-space-file",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "empty"),
        files={"s.yaml": "# nothing here\n"},
    ),
    Case(
        "duplicate-key",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "budget", "twice"),
        files={"s.yaml": _space() + "budget: {trials: 2}\n"},
    ),
    Case(
        "duplicate-key-pipeline",
        ["trial", "{d}/p.yaml", "--arch", "xt"],
        ("p.yaml", "steps", "twice"),
        files={"p.yaml": PIPELINE.read_text() + "steps: 3\n"},
    ),
    Case(
        "concurrency-0",
        ["sweep", "{d}/s.yaml", "--check", "--concurrency", "0"],
        ("--concurrency",),
        files={"s.yaml": _space()},
    ),
    Case("trials-0", ["sweep", "{d}/s.yaml", "--check", "--trials", "0"], ("--trials",), files={"s.yaml": _space()}),
    Case(
        "atol-nan",
        ["export", "{study}", "--pareto", "--onnx", "--atol", "nan", "--out", "{d}/x"],
        ("--atol",),
        needs_study=True,
    ),
    Case(
        "max-pca-negative",
        ["report", "{study}", "--max-pca", "-1", "--out", "{d}/rep"],
        ("--max-pca",),
        needs_study=True,
    ),
    Case(
        "budgets-nan",
        ["validate", "{d}/s.yaml", "--budgets", "nan,1", "--no-train", "--results", "{d}/v"],
        ("--budgets",),
        files={"s.yaml": _space()},
    ),
    # -- item 6: tracebacks -----------------------------------------------------------------------
    Case(
        "space-not-utf8",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "utf-8"),
        files={"s.yaml": _space().encode() + b"description: caf\xe9\n"},
    ),
    Case(
        "space-binary",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml",),
        files={"s.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\xff\xfe"},
    ),
    Case(
        "pipeline-not-utf8",
        ["trial", "{d}/p.yaml", "--arch", "xt"],
        ("p.yaml", "utf-8"),
        files={"p.yaml": b"\xff\xfesteps: 3\n"},
    ),
    Case(
        "arch-not-utf8",
        ["profile", "{d}/a.yaml", "--runs", "1"],
        ("a.yaml", "utf-8"),
        files={"a.yaml": b"preset: xt\nwidth: \xc3\x28\n"},
    ),
    Case(
        "deep-nesting",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "deep"),
        files={"s.yaml": _space("description: " + "[" * 5000 + "]" * 5000 + "\n")},
    ),
    Case(
        "huge-grid-range",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "arch.width"),
        files={"s.yaml": _space(sampler="grid").replace("choice(16, 32)", "range(16, 10000000000000)")},
    ),
    Case(
        "set-key-brackets",
        ["trial", "distill_cpu", "--arch", "xt", "--set", "teachers[x].batch_size=4"],
        ("--set", "teachers[x]"),
    ),
    Case(
        "set-key-brackets-space",
        ["sweep", "{d}/s.yaml", "--check", "--set", "base.depths[0]=2"],
        ("--set", "depths[0]"),
        files={"s.yaml": _space()},
    ),
    Case(
        "set-key-empty-part",
        ["sweep", "{d}/s.yaml", "--check", "--set", "budget..trials=2"],
        ("--set", "budget..trials"),
        files={"s.yaml": _space()},
    ),
    Case(
        "set-value-alias-bomb",
        ["sweep", "{d}/s.yaml", "--check", "--set", "ablation.base=" + FLOW_BOMB],
        ("--set",),
        files={"s.yaml": _space()},
    ),
    Case(
        "results-is-a-file",
        ["sweep", "{d}/s.yaml", "--results", "{d}/afile"],
        ("--results", "afile"),
        files={"s.yaml": _space(), "afile": "x"},
    ),
    Case(
        "results-cannot-create",
        ["sweep", "{d}/s.yaml", "--results", "/proc/radio-nas-fuzz"],
        ("--results", "/proc/radio-nas-fuzz"),
        files={"s.yaml": _space()},
    ),
    Case(
        "storage-cannot-create",
        ["sweep", "{d}/s.yaml", "--results", "{d}/r", "--storage", "sqlite:////proc/radio-nas-fuzz/study.db"],
        ("--storage",),
        files={"s.yaml": _space()},
    ),
    Case(
        "storage-bad-url",
        ["sweep", "{d}/s.yaml", "--results", "{d}/r", "--storage", "nosuchdb://x/y"],
        ("--storage",),
        files={"s.yaml": _space()},
    ),
    Case(
        "report-out-is-a-file",
        ["report", "{study}", "--out", "{d}/afile", "--no-pca"],
        ("--out", "afile"),
        files={"afile": "x"},
        needs_study=True,
    ),
    Case(
        "export-out-cannot-create",
        ["export", "{study}", "--pareto", "--out", "/proc/radio-nas-fuzz"],
        ("--out", "/proc/radio-nas-fuzz"),
        needs_study=True,
    ),
    Case(
        "report-readonly-results",
        ["report", "{study}", "--no-pca"],
        ("study",),
        needs_study=True,
        setup=lambda d: _readonly(d / "study"),
        needs_permissions=True,
    ),
    Case(
        "report-target-blocked",
        ["report", "{study}", "--no-pca"],
        ("report.md",),
        needs_study=True,
        setup=lambda d: (d / "study" / "report.md").mkdir(),
    ),
    Case(
        "viz-out-is-a-folder", ["viz", "pca", "xt", "--no-teachers", "--resolution", "64", "--out", "{d}"], ("--out",)
    ),
    Case(
        "garbage-safetensors",
        [
            "viz",
            "pca",
            "xt",
            "--no-teachers",
            "--resolution",
            "64",
            "--weights",
            "{d}/w.safetensors",
            "--out",
            "{d}/p.png",
        ],
        ("w.safetensors",),
        files={"w.safetensors": _garbage_safetensors()},
    ),
    Case("profile-huge-resolution", ["profile", "xt", "--resolution", "100000", "--runs", "1"], ("--resolution",)),
    Case("profile-huge-batch", ["profile", "xt", "--batch-size", "1000000000", "--runs", "1"], ("--batch-size",)),
    Case(
        "skimage-dunder",
        [
            "viz",
            "pca",
            "xt",
            "--no-teachers",
            "--image",
            "skimage:__init__",
            "--resolution",
            "64",
            "--out",
            "{d}/p.png",
        ],
        ("--image", "__init__"),
    ),
    Case(
        "report-skimage-dunder",
        ["report", "{study}", "--out", "{d}/rep", "--pca-image", "skimage:__getattr__"],
        ("--pca-image",),
        needs_study=True,
    ),
    Case(
        "image-not-a-picture",
        ["viz", "pca", "xt", "--no-teachers", "--image", "{d}/x.jpg", "--resolution", "64", "--out", "{d}/p.png"],
        ("x.jpg",),
        files={"x.jpg": b"\xff\xd8\xff garbage"},
    ),
    Case(
        "reference-not-utf8",
        ["report", "{study}", "--no-pca", "--out", "{d}/rep", "--reference", "{d}/ref.yaml"],
        ("ref.yaml", "utf-8"),
        files={"ref.yaml": b"rows:\n  - name: \xff\n"},
        needs_study=True,
    ),
    Case(
        "teacher-onnx-garbage",
        ["trial", "{d}/p.yaml", "--arch", "xt", "--set", "steps=1"],
        ("bad.onnx",),
        files={
            "p.yaml": PIPELINE.read_text().replace("model: opennsfw ", "model: bad.onnx ", 1),
            "bad.onnx": b"\x08\x07garbage-not-a-model" * 10,
        },
    ),
    Case(
        "report-garbage-db",
        ["report", "{d}/study.db", "--no-pca", "--out", "{d}/rep"],
        ("study.db",),
        files={"study.db": b"SQLite format 3\x00" + b"\xff" * 200},
    ),
    Case("export-unknown-trial", ["export", "{study}", "--trial", "999", "--out", "{d}/x"], ("999",), needs_study=True),
    Case("trial-weights-is-a-folder", ["trial", "distill_cpu", "--arch", "xt", "--weights", "{d}"], ("--weights",)),
    Case(
        "set-no-equals",
        ["sweep", "{d}/s.yaml", "--check", "--set", "budget.trials"],
        ("--set",),
        files={"s.yaml": _space()},
    ),
    Case(
        "space-top-level-list",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "mapping"),
        files={"s.yaml": "- name: x\n"},
    ),
    # -- item 8: code from a file someone else wrote ----------------------------------------------
    Case(
        "viz-untrusted-hub-teacher",
        ["viz", "pca", "{d}/exp.yaml", "--resolution", "64", "--out", "{d}/p.png"],
        ("--trust-teachers", "exp.yaml"),
        files={"exp.yaml": _exported(HUB_TEACHER), "hub/hubconf.py": HUBCONF},
    ),
    Case(
        "report-untrusted-hub-teacher",
        ["report", "{study}", "--out", "{d}/rep"],
        ("pca pictures skipped", "--trust-teachers"),
        files={"hub/hubconf.py": HUBCONF},
        needs_study=True,
        setup=_hub_study,
        rc=0,
        check=_hub_not_run,
    ),
    Case(
        "validate-from-untrusted-hub-teacher",
        ["validate", "--from", "{study}", "--no-train", "--results", "{d}/v"],
        ("--trust-teachers", "space.yaml", "pipeline.teachers[0]"),
        files={"hub/hubconf.py": HUBCONF, "p.yaml": HUB_PIPELINE},
        needs_study=True,
        setup=lambda d: (d / "study" / "space.yaml").write_text(
            _space().replace(f"path: {PIPELINE}", f"path: {d / 'p.yaml'}")
        ),
        check=_hub_not_run,
    ),
    # -- writes that would follow a symbolic link out of their folder ----------------------------
    Case(
        "export-through-linked-folder",
        ["export", "{study}", "--pareto"],
        ("exported", "symbolic link"),
        needs_study=True,
        setup=_link("study/exported"),
        check=_outside_empty,
    ),
    Case(
        "export-through-linked-file",
        ["export", "{study}", "--trial", "0", "--out", "{d}/x"],
        ("study-trial0.yaml", "symbolic link"),
        needs_study=True,
        setup=_linked_file,
        check=lambda d: "it wrote through the link" if (d / "outside" / "f").exists() else None,
    ),
    Case(
        "report-pca-through-linked-folder",
        ["report", "{study}"],
        ("pca", "symbolic link"),
        needs_study=True,
        setup=_link("study/pca"),
        check=_outside_empty,
    ),
    Case(
        "report-artifacts-through-linked-folder",
        ["report", "{study}", "--no-pca"],
        ("artifacts", "symbolic link"),
        needs_study=True,
        setup=_link("study/artifacts"),
        check=_outside_empty,
    ),
    Case(
        "sweep-through-linked-trials",
        ["sweep", "{d}/s.yaml", "--results", "{d}/r"],
        ("trials", "symbolic link"),
        files={"s.yaml": _space()},
        setup=_link("r/trials"),
        check=_outside_empty,
    ),
    # -- the teacher cache -------------------------------------------------------------------------
    Case(
        "cache-env-is-a-file",
        ["cache", "ls"],
        ("RADIO_NAS_CACHE", "afile"),
        files={"afile": "x"},
        env={"RADIO_NAS_CACHE": "{d}/afile"},
    ),
    Case(
        "cache-clear-read-only",
        ["cache", "clear", "--dir", "{d}/c"],
        ("could not remove 1 of 1",),
        setup=_cache_entry,
        needs_permissions=True,
        check=lambda d: None if (d / "c" / ("ab" * 10)).is_dir() else "the entry is gone though refused",
    ),
    Case(
        "photos-too-small",
        ["trial", "distill_cpu", "--arch", "xt", "--quiet", "--set", "data.source=folder", "--set", "data.path=tiny"],
        ("data.path", "too small"),
        setup=_tiny_photos,
    ),
    # -- exports ---------------------------------------------------------------------------------
    Case(
        "export-onnx-stale-temporary",
        ["export", "{study}", "--trial", "0", "--onnx", "--onnx-resolution", "64", "--out", "{d}/x"],
        ("study-trial0",),
        needs_study=True,
        setup=_stale_onnx_temporary,
        rc=0,
        stream="stdout",
        check=_no_hidden_files,
    ),
    Case(
        "export-onnx-resolution-not-multiple",
        ["export", "{study}", "--trial", "0", "--onnx", "--onnx-resolution", "33", "--out", "{d}/x"],
        ("--onnx-resolution",),
        needs_study=True,
    ),
    Case(
        "export-hand-made-empty-study",
        ["export", "{d}/r", "--pareto"],
        ("by-hand", "nothing to export"),
        setup=_hand_made_study,
        rc=0,
        stream="stdout",
    ),
    # -- sizes no machine holds: refused with the estimate, before anything is allocated --------
    Case(
        "profile-huge-width",
        ["profile", "{d}/a.yaml", "--runs", "1"],
        ("a.yaml", "would need", "parameters"),
        files={"a.yaml": "preset: xt\nwidth: 1000000000\n"},
    ),
    Case(
        "profile-huge-windows",
        ["profile", "xt", "--set", "window_sizes=[1000000, 1000000]", "--runs", "1"],
        ("--set window_sizes", "position-bias tables"),
    ),
    Case(
        "viz-huge-width",
        ["viz", "pca", "{d}/a.yaml", "--no-teachers", "--resolution", "64", "--out", "{d}/p.png"],
        ("a.yaml", "would need"),
        files={"a.yaml": "preset: xt\nwidth: 1000000000\n"},
        check=lambda d: "it wrote a picture" if (d / "p.png").exists() else None,
    ),
    Case(
        "trial-arch-cannot-be-built",
        ["trial", "distill_cpu", "--arch", "{d}/a.yaml", "--set", "steps=1"],
        ("a.yaml", "would need"),
        files={"a.yaml": "preset: xt\ndepths: [1, 1, 1, 100000]\n"},
    ),
    Case(
        "sweep-check-choice-too-big",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "parameters.arch.width", "1000000000", "would need"),
        files={"s.yaml": _space().replace("choice(16, 32)", "choice(16, 1000000000)")},
    ),
    Case(
        "sweep-check-range-too-big",
        ["sweep", "{d}/s.yaml", "--check"],
        ("s.yaml", "parameters.arch.window_sizes", "would need"),
        files={
            "s.yaml": _space().replace(
                "  arch.width: choice(16, 32)\n",
                "  arch.width: choice(16, 32)\n  arch.window_sizes: choice([2, 2], [1000000, 1000000])\n",
            )
        },
    ),
    Case(
        "validate-seeds-huge",
        ["validate", "{d}/s.yaml", "--seeds", "1000000000", "--results", "{d}/v"],
        ("--seeds", "trials"),
        files={"s.yaml": _space()},
        check=lambda d: "it made the results folder" if (d / "v").exists() else None,
    ),
    Case(
        "validate-variants-huge",
        ["validate", "{d}/s.yaml", "--variants", "1000000000", "--results", "{d}/v"],
        ("--variants", "trials"),
        files={"s.yaml": _space()},
    ),
    Case(
        "validate-budgets-huge",
        ["validate", "{d}/s.yaml", "--budgets", "1,1000000", "--results", "{d}/v"],
        ("--budgets", "steps"),
        files={"s.yaml": _space()},
        check=lambda d: "it made the results folder" if (d / "v").exists() else None,
    ),
    Case(
        "validate-budgets-data-too-big",
        ["validate", "{d}/s.yaml", "--budgets", "1,400000", "--set", "pipeline.overrides.data.train_size=100000"],
        ("--budgets", "crops"),
        files={"s.yaml": _space()},
    ),
    Case(
        "report-garbage-db-in-folder",
        ["report", "{d}/r", "--no-pca", "--out", "{d}/rep"],
        ("study.db",),
        files={"r/study.db": b"SQLite format 3\x00" + b"\xff" * 200},
    ),
]


def _env(base: Path, code: Path = REPO) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(code),
        RADIO_NAS_CACHE=str(base / "cache"),
        MPLCONFIGDIR=str(base / "mpl"),
        RAY_USAGE_STATS_ENABLED="0",
        OMP_NUM_THREADS="1",
        HOME=str(base / "home"),
    )
    return env


def make_base() -> Path:
    """A shared folder that an unprivileged user can read (cases that drop root need it)."""
    base = Path(tempfile.mkdtemp(prefix="radio-nas-fuzz-"))
    for sub in ("cache", "mpl", "home"):
        (base / sub).mkdir()
        (base / sub).chmod(0o777)
    base.chmod(0o755)
    return base


def make_study_folder(base: Path, make_study: Callable[..., Path]) -> Path:
    """One real SQLite study (conftest.py's ``make_study``), copied into each case that needs it."""
    return make_study(base / "studies", "study", n_ok=3)


ROOT_SKIP = "running as root: permission bits do not apply"


def _cap_memory(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def run_case(
    case: Case, base: Path, study: Path | None, *, code: Path = REPO, memory_cap: int | None = None
) -> tuple[bool, str, float]:
    """(passed, why not, seconds) for one case; `why` is ROOT_SKIP for a case root cannot run.
    `code`: the checkout whose ``radio_nas`` runs; `memory_cap`: bytes of data the command may
    allocate (RLIMIT_DATA), so that code which does not refuse an absurd size cannot take the machine."""
    if case.needs_permissions and os.geteuid() == 0:
        return False, ROOT_SKIP, 0.0
    d = base / case.id
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    for name, content in case.files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (d / name).write_bytes(content)
        else:
            (d / name).write_text(content)
    if case.needs_study:
        assert study is not None
        shutil.copytree(study, d / "study")
    if case.setup:
        case.setup(d)
    argv = [a.format(d=d, study=d / "study", repo=REPO) for a in case.argv]
    env = {**_env(base, code), **{k: v.format(d=d) for k, v in case.env.items()}}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "radio_nas", *argv],
        cwd=d,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=None if memory_cap is None else lambda: _cap_memory(memory_cap),
    )
    try:
        _out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return False, f"no answer within {TIMEOUT_S:g} s", time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    text = err.decode(errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if "Traceback" in text:
        return False, f"traceback (rc {proc.returncode}): {lines[-1] if lines else ''}", seconds
    if proc.returncode != case.rc:
        return False, f"rc {proc.returncode} (expected {case.rc}), stderr {text[-300:]!r}", seconds
    if len(lines) > 1 or (case.stream == "stderr" and not lines):
        return False, f"{len(lines)} lines on stderr: {text[-400:]!r}", seconds
    if case.stream == "stdout":
        lines = [ln for ln in _out.decode(errors="replace").splitlines() if ln.strip()]
    wanted = [f.format(d=d).lower() for f in case.expect]
    line = next((ln for ln in lines if all(f in ln.lower() for f in wanted)), None)
    if line is None:
        first = lines[0] if lines else ""
        missing = [f for f in wanted if f not in first.lower()]
        return False, f"no line of {case.stream} names {missing}: {first!r}", seconds
    wrong = case.check(d) if case.check else None
    if wrong:
        return False, f"answered {line!r}, but {wrong}", seconds
    return True, line, seconds


@pytest.fixture(scope="module")
def fuzz_base(make_study):
    base = make_base()
    study = make_study_folder(base, make_study)
    yield base, study
    for p in base.rglob("*"):  # read-only cases
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_is_one_line_exit_2(case: Case, fuzz_base) -> None:
    base, study = fuzz_base
    ok, why, _ = run_case(case, base, study)
    if why == ROOT_SKIP:
        pytest.skip(why)
    assert ok, why


def test_untrusted_teacher_code_runs_only_with_the_flag(fuzz_base) -> None:
    base, study = fuzz_base
    case = next(c for c in CASES if c.id == "viz-untrusted-hub-teacher")
    ok, why, _ = run_case(case, base, study)
    assert ok, why
    assert not (base / case.id / "hub" / "RAN").exists()  # refused before anything was built
    trusted = dataclasses.replace(case, id="viz-trusted-hub-teacher", argv=[*case.argv, "--trust-teachers"])
    run_case(trusted, base, study)
    assert (base / trusted.id / "hub" / "RAN").read_text() == "hubconf ran"  # the flag is what let it run


def test_a_study_teacher_code_runs_only_with_the_flag(fuzz_base) -> None:
    base, study = fuzz_base
    case = next(c for c in CASES if c.id == "report-untrusted-hub-teacher")
    ok, why, _ = run_case(case, base, study)
    assert ok, why
    trusted = dataclasses.replace(case, id="report-trusted-hub-teacher", argv=[*case.argv, "--trust-teachers"])
    run_case(trusted, base, study)
    assert (base / trusted.id / "hub" / "RAN").read_text() == "hubconf ran"  # the flag is what let it run
