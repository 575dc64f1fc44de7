"""Sweeps on shared storage are isolated: one live driver per study, a study belongs to one results
folder, orphan recovery only touches dead drivers' trials, a variant that crashes the driver is not
queued again; read-only commands create nothing. On SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

from radio_nas._config import ConfigError
from radio_nas.search.optuna_study import Driver, default_storage, live_drivers, open_study, recover_orphans
from radio_nas.search.space import load_space
from radio_nas.study import Status, TrialRecord
from radio_nas.study.storage import open_study as open_for_reading

REPO = Path(__file__).resolve().parents[1]
TINY = {"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16}
State = optuna.trial.TrialState


def _space_file(root: Path) -> Path:
    data = {
        "name": "drv",
        "pipeline": {"path": str(REPO / "pipelines/distill_cpu.yaml"), "overrides": {"steps": 2, "resolution": 64}},
        "base": TINY,
        "parameters": {"arch.width": "choice(16, 32)"},
        "objectives": [{"metric": "fidelity", "direction": "maximize"}],
        "sampler": {"name": "random", "seed": 0},
    }
    path = root / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# A second driver process: opens the study, registers, asks one trial (left RUNNING), then waits.
_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from radio_nas.search.space import load_space
    from radio_nas.search.optuna_study import Driver, open_study
    from radio_nas.study import write_trial
    space = load_space(sys.argv[1])
    study = open_study(space, Path(sys.argv[2]), sys.argv[3])
    driver = Driver.start(study)
    trial = study.ask()
    space.sample(trial)
    write_trial(trial, driver=driver.id, phase=sys.argv[4])
    print(trial.number, flush=True)
    time.sleep(120)
    """
)


def _holder(space: Path, results: Path, url: str, phase: str = "training") -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(space), str(results), url, phase],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        raise AssertionError(proc.stderr.read() if proc.stderr else "holder died")
    return proc, int(line)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _two_drivers(tmp: Path, url: str) -> None:
    space_path = _space_file(tmp)
    space = load_space(space_path)
    results = tmp / "a"
    proc, number = _holder(space_path, results, url)
    try:
        study = open_study(space, results, url)
        assert [d["pid"] for d in live_drivers(study)] == [proc.pid]
        with pytest.raises(ConfigError, match="another live sweep driver"):
            Driver.start(study)
        assert recover_orphans(study) == []  # a live driver's RUNNING trial is never touched
        assert study.trials[number].state == State.RUNNING
        # the same space in another results folder on the same storage: refused, not mixed
        with pytest.raises(ConfigError, match="belongs to one folder"):
            open_study(space, tmp / "b", url)
    finally:
        _kill(proc)
    driver = Driver.start(study)  # the holder is dead: its pid is gone, no need to wait for staleness
    try:
        assert recover_orphans(study, driver) == [number]
        record = TrialRecord.from_trial(study.trials[number])
        assert record.state == "FAIL" and record.orphaned
        assert len(study.get_trials(states=(State.WAITING,))) == 1  # queued again
    finally:
        driver.stop()
    assert live_drivers(study) == []


def test_two_drivers_on_one_sqlite_file(tmp_path: Path) -> None:
    _two_drivers(tmp_path, default_storage(tmp_path / "shared"))


def test_a_variant_that_crashes_the_driver_twice_is_failed_not_requeued(tmp_path: Path) -> None:
    space_path = _space_file(tmp_path)
    space = load_space(space_path)
    results = tmp_path / "r"
    url = default_storage(results)
    proc, first = _holder(space_path, results, url, phase="measuring")  # dies while measuring its costs
    _kill(proc)
    study = open_study(space, results, url)
    assert recover_orphans(study) == [first]  # maybe stopped by hand: queued once more
    (waiting,) = study.get_trials(states=(State.WAITING,))
    proc, second = _holder(space_path, results, url, phase="measuring")  # the same variant kills it again
    _kill(proc)
    assert study.trials[second].params == study.trials[first].params
    assert recover_orphans(study) == [second]
    record = TrialRecord.from_trial(study.trials[second])
    assert record.state == "FAIL" and record.status is Status.FAILED and not record.orphaned and not record.trained
    assert "measuring" in (record.reason or "")
    assert study.get_trials(states=(State.WAITING,)) == []  # a resume will not crash on it a third time


def test_costs_that_raise_are_recorded_failed_before_the_next_variant(tmp_path: Path, monkeypatch) -> None:
    import radio_nas.search.searcher as searcher_module
    from radio_nas.search.searcher import StudySearcher

    space = load_space(_space_file(tmp_path))
    results = tmp_path / "r"
    study = open_study(space, results, default_storage(results))

    def absurd(*args: object, **kwargs: object) -> None:
        raise MemoryError("cannot allocate 4 TB")

    monkeypatch.setattr(searcher_module, "measure_costs", absurd)
    s = StudySearcher(space, study, results, trials=1, progress=None)
    s.suggest("t0")  # every variant raises: each is told FAIL at once, then the streak limit stops it
    records = [TrialRecord.from_trial(t) for t in study.trials]
    assert records and all(r.state == "FAIL" and "MemoryError" in (r.reason or "") for r in records)
    assert study.get_trials(states=(State.RUNNING, State.WAITING)) == []


def test_read_only_commands_create_nothing(tmp_path: Path) -> None:
    from radio_nas.cli import main

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
    for db in (empty, foreign):
        before = db.read_bytes()
        with pytest.raises(ConfigError, match="holds no Optuna study"):
            open_for_reading(db)
        assert db.read_bytes() == before  # no Optuna tables created
        assert main(["report", str(db), "--no-pca"]) == 2
        assert db.read_bytes() == before


# -- PostgreSQL --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free loopback port (Debian's package), trust auth."""
    pytest.importorskip("psycopg", reason="psycopg (the PostgreSQL driver, in the test extra) is not installed")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not on PATH (Debian: apt-get install postgresql)")
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="radio-nas-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser to start the server as 'postgres'")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", "radio", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "-t", "60", "start"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {exc}")
    try:
        yield f"postgresql+psycopg://radio@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_two_drivers_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    _two_drivers(tmp_path, postgres_url)


@pytest.mark.slow
def test_sweep_and_report_on_postgresql(tmp_path: Path, postgres_url: str, capsys) -> None:
    from radio_nas.cli import main

    smoke = REPO / "search_spaces" / "smoke.yaml"
    results = tmp_path / "smoke"
    code = main(
        [
            "sweep",
            str(smoke),
            "--results",
            str(results),
            "--storage",
            postgres_url,
            "--trials",
            "1",
            "--num-cpus",
            "2",
            "--json",
        ]
    )
    assert code == 0
    capsys.readouterr()
    handle = open_for_reading(postgres_url, load_space(smoke).name + "-" + load_space(smoke).hash[:8])
    trained = [r for r in handle.trials() if r.is_candidate]
    assert len(trained) == 1 and trained[0].curve  # learning curve stored with the trial
    assert handle.study.trials[trained[0].number].intermediate_values
    assert main(["report", postgres_url, "--study", handle.name, "--out", str(tmp_path / "rep"), "--no-pca"]) == 0
    assert (tmp_path / "rep" / "report.md").is_file()


def test_a_local_ray_listens_on_loopback_only() -> None:
    import ray

    from radio_nas.search.sweep import start_ray

    if not shutil.which("ss"):
        pytest.skip("iproute2's ss is not installed: cannot list listening sockets")
    assert not ray.is_initialized()
    start_ray(None, 1)
    try:
        children = subprocess.run(["pgrep", "-P", str(os.getpid())], capture_output=True, text=True).stdout.split()
        pids = {os.getpid(), *map(int, children)}
        listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
        ours = [line.split()[3] for line in listening if any(f"pid={p}," in line for p in pids)]
        assert ours, "the driver and its Ray processes listen somewhere"
        assert all(a.rsplit(":", 1)[0] in ("127.0.0.1", "[::ffff:127.0.0.1]", "[::1]") for a in ours), ours
        assert os.environ.get("RAY_AUTH_MODE") in (None, "disabled")  # the sweep never sets it (conftest may)
    finally:
        ray.shutdown()
