"""The file names of a sweep's results folder (``results/<name>/``).

results/<name>/
  study.db            the Optuna study (default SQLite storage)       STUDY_FILE
  space.yaml          a copy of the space file                         SPACE_COPY
  .space_hash         what the folder's study searches (resume check)  HASH_FILE
  .sweep.lock         held by the live driver                          LOCK_FILE
  trials/<N>/         per-trial files: student.safetensors, pca.png    TRIALS_DIR, WEIGHTS_FILE
  artifacts/          Optuna artifact store (dashboard pictures)       ARTIFACT_DIR
  ray/                Ray Tune's own run folders                       RAY_DIR
  report.md ...       written by ``radio-nas report``
  exported/           written by ``radio-nas export``                  EXPORT_DIR
results/<name>-validate/validation.json                               VALIDATION_FILE
"""

from __future__ import annotations

from pathlib import Path

from radio_nas._util import write_path

STUDY_FILE = "study.db"
SPACE_COPY = "space.yaml"
HASH_FILE = ".space_hash"
LOCK_FILE = ".sweep.lock"
TRIALS_DIR = "trials"
WEIGHTS_FILE = "student.safetensors"
PCA_FILE = "pca.png"
ARTIFACT_DIR = "artifacts"
RAY_DIR = "ray"
EXPORT_DIR = "exported"
VALIDATION_FILE = "validation.json"
VALIDATE_SUFFIX = "-validate"


def default_storage(results_dir: str | Path) -> str:
    """The SQLite URL of a results folder's study."""
    return f"sqlite:///{(Path(results_dir) / STUDY_FILE).as_posix()}"


def trial_dir(results_dir: str | Path, number: int) -> Path:
    return Path(results_dir) / TRIALS_DIR / str(number)


SWEEP_ENTRIES = (STUDY_FILE, SPACE_COPY, HASH_FILE, LOCK_FILE, TRIALS_DIR, ARTIFACT_DIR, RAY_DIR, EXPORT_DIR)
"""What a sweep writes directly under its results folder."""


def check_no_links(results_dir: str | Path) -> None:
    """ConfigError (one line) when anything a sweep writes under `results_dir` (its entries, each
    ``trials/<N>/`` and the files there) is a symbolic link: a write would follow it out of the
    folder. The folder itself may be a link (whoever named it chose where it points)."""
    root = Path(results_dir)
    for name in SWEEP_ENTRIES:
        write_path(root, name, key="results folder")
    trials = root / TRIALS_DIR
    if trials.is_dir():
        for folder in trials.iterdir():
            for name in (WEIGHTS_FILE, PCA_FILE):
                write_path(root, TRIALS_DIR, folder.name, name, key="results folder")
