"""Open a finished (or running) sweep's study for reading: report, export and validation use this.

    from radio_nas.study.storage import open_study
    handle = open_study("results/mra")                  # or ("sqlite:///x.db", "mra-1a2b3c4d")
    handle.record.objectives, [r.number for r in handle.trials() if r.is_candidate]

Reading never writes: a file or database that holds no Optuna study is refused before Optuna is
asked to open it (Optuna's storage would otherwise create its tables there).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from radio_nas._config import ConfigError
from radio_nas.study.layout import HASH_FILE, STUDY_FILE
from radio_nas.study.record import Objective, StudyRecord, TrialRecord, read_trials

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.study import Study, StudySummary


@dataclasses.dataclass
class StudyHandle:
    """An opened study with where it came from."""

    study: Study
    storage_url: str
    storage: BaseStorage
    results_dir: Path | None
    """The sweep folder (reports and exports go there), or None for a bare storage URL."""

    @property
    def record(self) -> StudyRecord:
        return StudyRecord.from_study(self.study)

    @property
    def objectives(self) -> list[Objective]:
        return list(self.record.objectives)

    @property
    def mode(self) -> str:
        return self.record.mode

    @property
    def name(self) -> str:
        return str(self.study.study_name)

    def trials(self) -> list[TrialRecord]:
        return read_trials(self.study)


def open_study(source: str | Path, study_name: str | None = None) -> StudyHandle:
    """Open a study read-only from a results folder, a ``.db`` file or an Optuna storage URL.

    With no `study_name`, the storage must hold exactly one study, or be a results folder's: then
    its current study (the latest revision, after a resume with an edited space) is opened.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    text = str(source)
    results_dir: Path | None = None
    if "://" in text:
        url = text
        if url.startswith("sqlite:///"):
            db = Path(url[len("sqlite:///") :])
            if not db.is_file():  # RDBStorage would silently create an empty database
                raise ConfigError("no such SQLite file", file=db)
            results_dir = db.parent if db.name == STUDY_FILE else None
    else:
        path = Path(text)
        if path.is_dir():
            db = path / STUDY_FILE
            if not db.is_file():
                raise ConfigError(
                    f"no {STUDY_FILE} here; expected a sweep results folder (results/<name>) or a storage URL",
                    file=path,
                )
            results_dir = path
        elif path.is_file():
            db = path
            results_dir = path.parent
        else:
            raise ConfigError("no such results folder or file", file=path)
        url = f"sqlite:///{db}"
        text = str(db)  # errors name the database file, not only its folder
    storage = open_readonly(url, label=text)
    summaries = optuna.get_all_study_summaries(storage)
    names = [s.study_name for s in summaries]
    if study_name is None and len(names) > 1 and results_dir is not None:
        study_name = current_study_name(summaries, results_dir)
    if study_name is None:
        if len(names) != 1:
            listed = ", ".join(names) if names else "none"
            raise ConfigError(f"holds {len(names)} studies ({listed}); pick one with --study", file=text)
        study_name = names[0]
    elif study_name not in names:
        raise ConfigError(
            f"no study {study_name!r}; studies here: {', '.join(names) or 'none'}", file=text, key="--study"
        )
    study = optuna.load_study(study_name=study_name, storage=storage)
    recorded = StudyRecord.from_study(study).results_dir
    if results_dir is None and recorded:
        results_dir = Path(recorded) if Path(recorded).is_dir() else None
    return StudyHandle(study, url, storage, results_dir)


def current_study_name(summaries: Sequence[StudySummary], results_dir: Path) -> str | None:
    """The study a results folder's sweep continues: of the studies recorded for that folder, the
    latest revision of the space its ``.space_hash`` names (any space when the file is missing)."""
    here = str(Path(results_dir).resolve())
    mine = [s for s in summaries if s.user_attrs.get("results_dir") == here]
    saved = Path(results_dir) / HASH_FILE
    if saved.is_file():
        current = saved.read_text().strip()
        mine = [s for s in mine if s.user_attrs.get("space_hash") == current] or mine
    if not mine:
        return None
    return max(mine, key=lambda s: (int(s.user_attrs.get("revision") or 1), s._study_id)).study_name


def open_readonly(url: str, *, label: str | None = None) -> BaseStorage:
    """An Optuna storage for `url` that already holds Optuna's tables; ConfigError otherwise.

    Checked with the database's own driver first (SQLite opened read-only), so a foreign or empty
    file is never changed."""
    import optuna

    where = label or url
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///") :])
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                found = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='studies'").fetchone()
        except sqlite3.Error as exc:
            raise ConfigError(f"not a readable SQLite database ({exc})", file=where) from None
        if not found:
            raise ConfigError("holds no Optuna study (no 'studies' table); expected a sweep's study.db", file=where)
    else:
        try:
            import sqlalchemy

            engine = sqlalchemy.create_engine(url)
            try:
                has = sqlalchemy.inspect(engine).has_table("studies")
            finally:
                engine.dispose()
        except Exception as exc:  # bad URL, driver missing, server down: one line, no traceback
            raise ConfigError(f"cannot open storage: {str(exc).splitlines()[0]}", file=where) from None
        if not has:
            raise ConfigError("holds no Optuna study (no 'studies' table)", file=where)
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # a database of another Optuna version, ...
        raise ConfigError(f"cannot open storage: {str(exc).splitlines()[0]}", file=where) from None
