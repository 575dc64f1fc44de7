"""Resume with an edited space and warm start (radio_nas.search.carry), on real Optuna SQLite studies.

The studies are written the way the sweep's searcher writes them (ask, sample the space, record,
tell), without Ray: the carry logic only reads records. The Ray path is in the slow test at the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from radio_nas._config import ConfigError, stable_id
from radio_nas.cli import main
from radio_nas.search.carry import import_trials, open_sources, parse_sources
from radio_nas.search.optuna_study import open_study, trained_count
from radio_nas.search.space import Space, load_space
from radio_nas.search.summary import state_counts
from radio_nas.search.sweep import set_folder_aside
from radio_nas.study.layout import HASH_FILE, default_storage
from radio_nas.study.record import Status, StudyRecord, read_trials, write_trial
from radio_nas.study.storage import open_study as open_for_reading

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "search_spaces" / "smoke.yaml"
State = optuna.trial.TrialState
POINTS = [  # (width, pattern, balancing, lr)
    (16, [[2, 1], [1]], "fixed", 1e-3),
    (32, [[2, 1], [1]], "fixed", 1e-3),
    (16, [[1], [1]], "adaloss", 2e-3),
    (32, [[1], [1]], "adaloss", 5e-4),
]


def space_file(tmp: Path, name: str = "edit", **edits: Any) -> Path:
    """smoke.yaml with `edits` applied (key 'parameters' merged, others replaced); the pipeline path
    made absolute so the copy loads from anywhere."""
    raw = yaml.safe_load(SMOKE.read_text())
    raw["pipeline"]["path"] = str(REPO / "pipelines" / "distill_cpu.yaml")
    for key, value in edits.items():
        if key == "parameters":
            raw["parameters"].update(value)
            raw["parameters"] = {k: v for k, v in raw["parameters"].items() if v is not None}
        else:
            raw[key] = value
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def record_trial(study: optuna.Study, space: Space, point: tuple, *, fidelity: float = 0.5) -> int:
    """Ask, sample `point`, record and tell it as the searcher does for a trained variant."""
    width, pattern, method, lr = point
    study.enqueue_trial(
        {
            "arch.width": width,
            "arch.mra_pattern": json.dumps(pattern),
            "pipeline.balancing.method": method,
            "pipeline.optim.lr": lr,
        }
    )
    trial = study.ask()
    values = space.sample(trial)
    arch, pipeline = space.arch_config(values), space.pipeline_for(values)
    gmacs = width / 100  # recorded costs: what the carry logic reads
    write_trial(
        trial,
        arch=arch.to_dict(),
        arch_id=arch.id,
        pipeline=pipeline.to_dict(),
        seed=0,
        n_params=width * 1000,
        gmacs=gmacs,
        latency_ms=1.0 + width / 10,
        metrics={"fidelity": fidelity, "steps": 4},
        status=Status.OK,
        reason=None,
        weights_path=None,
    )
    trial.set_constraint("max_gmacs", gmacs / 1.0 - 1)
    study.tell(trial, [fidelity, gmacs, 1.0 + width / 10])
    return trial.number


def first_sweep(tmp: Path, points=POINTS, name: str = "smoke") -> tuple[Path, str, optuna.Study]:
    space = load_space(space_file(tmp, name="first"))
    results = tmp / name
    url = default_storage(results)
    study = open_study(space, results, url)
    for i, p in enumerate(points):
        record_trial(study, space, p, fidelity=0.4 + 0.05 * i)
    return results, url, study


def test_widened_space_keeps_every_trial_and_the_sampler_models_them(tmp_path: Path) -> None:
    results, url, old = first_sweep(tmp_path)
    orphan = old.ask()  # a trial a killed driver left behind: failed, orphaned, not counted
    write_trial(orphan, status=Status.FAILED, reason="driver stopped", orphaned=True)
    old.tell(orphan, state=State.FAIL)
    wider = load_space(space_file(tmp_path, parameters={"arch.width": "choice(16, 32, 48)"}))
    said: list[str] = []
    study = open_study(wider, results, url, said.append)
    text = "\n".join(said)
    assert "arch.width: choices added 48" in text and "4 trials kept" in text
    assert study.study_name != old.study_name and (results / HASH_FILE).read_text().strip() == wider.hash
    rec = StudyRecord.from_study(study)
    assert rec.revision == 2 and rec.previous_study == old.study_name
    records = read_trials(study)
    assert [r.number for r in records] == [0, 1, 2, 3, 4]
    assert all(r.is_candidate and r.trained and r.carried_from == f"{old.study_name}#{r.number}" for r in records[:4])
    assert records[4].state == "FAIL" and records[4].orphaned and not records[4].trained
    assert trained_count(study) == trained_count(old) == 4
    # The sampler's view: every carried trial has the new space's distributions, so the
    # intersection search space (GPSampler, multivariate TPE) keeps arch.width with its 3 choices...
    inter = optuna.search_space.intersection_search_space(study.get_trials())
    assert set(inter) == {"arch.width", "arch.mra_pattern", "pipeline.balancing.method", "pipeline.optim.lr"}
    assert inter["arch.width"].choices == (16, 32, 48)
    assert all(t.distributions["arch.width"] == inter["arch.width"] for t in study.trials[:4])
    # ...while leaving the old trials as they were recorded (and adding one of the new space) would
    # drop it: the GP would model arch.width not at all
    mixed = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    mixed.add_trials(old.get_trials())
    record_trial(mixed, wider, (48, [[1], [1]], "fixed", 1e-3))
    assert "arch.width" not in optuna.search_space.intersection_search_space(mixed.get_trials())
    # a model-based sampler builds its model on the carried trials from the first new proposal
    gp = optuna.samplers.GPSampler(seed=0, n_startup_trials=2)
    trial = study.ask()
    assert set(gp.infer_relative_search_space(study, trial)) == set(inter)
    study.tell(trial, state=State.FAIL)
    # resuming again with the same edited space reopens this revision
    assert open_study(wider, results, url).study_name == study.study_name
    # report/export find the current revision in a folder that now holds two studies
    assert open_for_reading(results).name == study.study_name


def test_narrowed_space_sets_aside_the_others_off_fronts_and_budget(tmp_path: Path) -> None:
    results, url, old = first_sweep(tmp_path)
    narrow = load_space(space_file(tmp_path, parameters={"arch.width": "choice(16)"}))
    said: list[str] = []
    study = open_study(narrow, results, url, said.append)
    records = read_trials(study)
    kept = [r for r in records if r.status is Status.OK]
    aside = [r for r in records if r.status is Status.SET_ASIDE]
    assert [r.number for r in kept] == [0, 2] and [r.number for r in aside] == [1, 3]
    for r in aside:
        assert r.state == "FAIL" and not r.is_candidate and not r.trained
        assert "arch.width=32 is outside its new domain" in (r.reason or "")
        assert r.metrics["fidelity"] > 0  # its outcome stays readable
    assert trained_count(study) == 2
    assert state_counts(records) == {"ok": 2, "set_aside": 2}
    assert "arch.width: choices removed 32" in "\n".join(said) and "set aside: 2" in "\n".join(said)
    # the old study is untouched in the storage
    assert [t.state for t in old.get_trials()] == [State.COMPLETE] * 4
    # widened back: the set-aside trials are points again and come back as they were (no retraining)
    back = load_space(space_file(tmp_path, name="back", parameters={"arch.width": "choice(16, 32)"}))
    study = open_study(back, results, url)
    records = read_trials(study)
    assert [r.status for r in records] == [Status.OK] * 4 and all(r.is_candidate for r in records)
    assert [t.values for t in study.get_trials()] == [t.values for t in old.get_trials()]
    assert study.study_name.endswith("-r3")  # the first revision's space again: a study of its own


def test_added_parameter_reads_the_trained_value_and_a_changed_base_sets_aside(tmp_path: Path) -> None:
    results, url, _ = first_sweep(tmp_path)
    # head_dim was fixed by base (16): searching it keeps every trial, with 16 read from its arch
    added = load_space(space_file(tmp_path, parameters={"arch.head_dim": "choice(16, 32)"}))
    study = open_study(added, results, url)
    records = read_trials(study)
    assert all(r.is_candidate for r in records) and all(r.params["arch.head_dim"] == 16 for r in records)
    # a base change builds other architectures: every trial is set aside, with the reason
    deeper = load_space(
        space_file(
            tmp_path,
            name="deeper",
            base={"preset": "xt", "width": 16, "depths": [1, 1, 2, 1], "head_dim": 16, "depth_counts": "layers"},
            parameters={"arch.head_dim": "choice(16, 32)"},
        )
    )
    said: list[str] = []
    study = open_study(deeper, results, url, said.append)
    assert all(r.status is Status.SET_ASIDE for r in read_trials(study))
    assert "base.depths: [1, 1, 1, 1] -> [1, 1, 2, 1]" in "\n".join(said)
    assert "another architecture" in (read_trials(study)[0].reason or "")
    assert StudyRecord.from_study(study).revision == 3


def test_tightened_constraint_turns_trained_trials_infeasible_not_deleted(tmp_path: Path) -> None:
    results, url, _ = first_sweep(tmp_path)
    tight = load_space(space_file(tmp_path, constraints={"max_gmacs": 0.2}))  # width 32 records 0.32
    study = open_study(tight, results, url)
    records = read_trials(study)
    over = [r for r in records if r.status is Status.INFEASIBLE]
    assert [r.number for r in over] == [1, 3] and all(r.state == "COMPLETE" for r in over)
    assert all(not r.is_candidate and r.metrics["fidelity"] > 0 for r in over)
    assert all(r.constraints["max_gmacs"] > 0 for r in over) and "gmacs 0.32 > max_gmacs 0.2" in (over[0].reason or "")
    assert [t.number for t in study.best_trials] and all(t.number in (0, 2) for t in study.best_trials)
    # loosened again: trained before, so they are ok once more (no retraining)
    loose = load_space(space_file(tmp_path, name="loose", constraints={"max_gmacs": 1.0}, description="again"))
    study = open_study(loose, results, url)
    assert [r.status for r in read_trials(study)] == [Status.OK] * 4


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        ({"pipeline": {"path": str(REPO / "pipelines" / "distill_cpu.yaml"), "overrides": {"steps": 6}}}, "steps"),
        ({"objectives": [{"metric": "fidelity", "direction": "maximize"}]}, "objectives"),
        ({"latency": {"runs": 9, "warmup": 1}}, "latency.runs"),
    ],
)
def test_meaningless_edits_are_refused_naming_the_key(tmp_path: Path, capsys, edit: dict, key: str) -> None:
    results, url, old = first_sweep(tmp_path)
    if "pipeline" in edit:  # keep the smoke overrides, change one
        raw = yaml.safe_load(SMOKE.read_text())
        edit["pipeline"]["overrides"] = {**raw["pipeline"]["overrides"], **edit["pipeline"]["overrides"]}
    path = space_file(tmp_path, **edit)
    with pytest.raises(ConfigError) as err:
        open_study(load_space(path), results, url)
    assert key in (err.value.key or "") and "--fresh" in str(err.value)
    before = (results / HASH_FILE).read_text()
    assert main(["sweep", str(path), "--results", str(results)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and key in lines[0]
    assert (results / HASH_FILE).read_text() == before
    assert len(optuna.get_all_study_summaries(url)) == 1  # nothing was created


def test_fresh_moves_the_old_folder_aside_and_keeps_its_study_readable(tmp_path: Path) -> None:
    results, url, old = first_sweep(tmp_path)
    dest = set_folder_aside(results, url)
    assert not results.exists() and dest.parent == results.parent and dest.name.startswith("smoke.before-")
    handle = open_for_reading(dest)
    assert handle.name == old.study_name and len(handle.trials()) == 4
    assert handle.record.results_dir == str(dest.resolve())
    other = load_space(space_file(tmp_path, objectives=[{"metric": "fidelity", "direction": "maximize"}]))
    study = open_study(other, results, url)  # what a refused edit needs: a new study from zero
    assert study.get_trials() == [] and StudyRecord.from_study(study).revision == 1


def test_a_folder_of_the_previous_version_resumes_and_takes_an_edit(tmp_path: Path) -> None:
    """Before revisions: one study per folder, no revision/latency attributes (space.yaml holds them)."""
    space = load_space(space_file(tmp_path, name="first"))
    results = tmp_path / "legacy"
    url = default_storage(results)
    results.mkdir()
    study = optuna.create_study(
        storage=url, study_name=f"smoke-{space.hash[:8]}", directions=["maximize", "minimize", "minimize"]
    )
    for k, v in {
        "space_name": "smoke",
        "space_hash": space.hash,
        "mode": "search",
        "objectives": [{"metric": o.metric, "direction": o.direction} for o in space.config.objectives],
        "pipeline": space.pipeline.to_dict(),
        "results_dir": str(results.resolve()),
    }.items():
        study.set_user_attr(k, v)
    for p in POINTS[:2]:
        record_trial(study, space, p)
    (results / "space.yaml").write_text(space.file.read_text())  # type: ignore[union-attr]
    (results / HASH_FILE).write_text(space.hash + "\n")
    assert open_study(space, results, url).study_name == study.study_name
    wider = load_space(space_file(tmp_path, parameters={"arch.width": "choice(16, 32, 48)"}))
    new = open_study(wider, results, url)
    assert [r.is_candidate for r in read_trials(new)] == [True, True]


# -- warm start ---------------------------------------------------------------------------------------


def test_warm_start_imports_skips_and_is_idempotent(tmp_path: Path) -> None:
    source, _, src_study = first_sweep(tmp_path, name="source")
    record_trial(src_study, load_space(space_file(tmp_path, name="first")), POINTS[0])  # trained twice there
    narrow = load_space(space_file(tmp_path, parameters={"arch.width": "choice(16)"}))
    results = tmp_path / "warm"
    study = open_study(narrow, results, default_storage(results))
    record_trial(study, narrow, POINTS[2])  # trained here already
    sources = open_sources(str(source), narrow, here=results)
    report = import_trials(study, narrow, sources)
    assert report.imported == 1  # POINTS[0]
    assert report.skipped == {
        "not a point of this space": 2,
        "trained or imported here already": 2,  # POINTS[2], and the second training of POINTS[0]
    }
    records = read_trials(study)
    imported = [r for r in records if r.imported_from]
    assert len(imported) == 1 and imported[0].is_candidate and not imported[0].trained
    assert imported[0].imported_from == f"{src_study.study_name}#0 in {source.resolve()}"
    assert trained_count(study) == 1  # the one trained here; imported ones never count
    assert state_counts(records) == {"ok": 1, "imported": 1}
    assert StudyRecord.from_study(study).warm_start == (f"{src_study.study_name} in {source.resolve()}",)
    again = import_trials(study, narrow, open_sources(f"{default_storage(source)}#{src_study.study_name}", narrow))
    assert again.imported == 0 and len(read_trials(study)) == 2


def test_an_imported_variant_proposed_again_is_a_copy_not_a_training(tmp_path: Path) -> None:
    from radio_nas.search.searcher import StudySearcher

    source, _, _ = first_sweep(tmp_path, name="source")
    space = load_space(space_file(tmp_path, name="same"))
    results = tmp_path / "warm"
    study = open_study(space, results, default_storage(results))
    assert import_trials(study, space, open_sources(str(source), space)).imported == 4
    searcher = StudySearcher(space, study, results, trials=2, progress=None)
    study.enqueue_trial(dict(read_trials(study)[1].params))  # the sampler proposes an imported variant
    assert searcher._validate(study.ask()) is None  # told already: not handed to Ray for training
    copy = read_trials(study)[-1]
    assert copy.duplicate_of == 1 and copy.state == "COMPLETE" and not copy.trained and not copy.is_candidate
    assert trained_count(study) == 0 and searcher.stats().done == 0


def test_parse_sources() -> None:
    assert parse_sources("a,sqlite:///x.db#s-1") == [("a", None), ("sqlite:///x.db", "s-1")]
    with pytest.raises(ConfigError, match="--warm-start"):
        parse_sources("a,,b")


def test_bad_warm_start_inputs_exit_2_with_one_line_and_write_nothing(tmp_path: Path, capsys) -> None:
    source, _, _ = first_sweep(tmp_path, name="source")
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    raw = yaml.safe_load(SMOKE.read_text())
    pipeline = {"path": str(REPO / "pipelines" / "distill_cpu.yaml"), "overrides": raw["pipeline"]["overrides"]}
    pipeline["overrides"]["steps"] = 6
    steps6 = space_file(tmp_path, name="steps6", pipeline=pipeline)
    cases = [
        (str(space_file(tmp_path, name="a")), str(tmp_path / "missing"), "no such results folder"),
        (str(space_file(tmp_path, name="b")), f"sqlite:///{junk}", "not a readable SQLite database"),
        (str(steps6), str(source), "another pipeline (steps: 4 here 6)"),
        (str(space_file(tmp_path, name="c")), f"{source}#nope", "no study 'nope'"),
    ]
    for space, src, expected in cases:
        results = tmp_path / f"out-{Path(space).stem}"
        assert main(["sweep", space, "--results", str(results), "--warm-start", src]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "--warm-start" in lines[0] and expected in lines[0], lines
        assert not results.exists()


# -- through Ray ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_sweeps_edit_resume_and_warm_start(tmp_path: Path, capsys) -> None:
    from radio_nas.search.sweep import run_sweep

    first = tmp_path / "first"
    out = run_sweep(SMOKE, results_dir=first, trials=2, num_cpus=2, progress=None)
    assert out["trained"] == 2

    def variant(r):
        return (r.arch_id, stable_id(dict(r.pipeline)))

    # widen the lr range: both trials are kept, one more is trained
    wider = space_file(tmp_path, parameters={"pipeline.optim.lr": "tag(log, interval(1e-4, 1e-2))"})
    said: list[str] = []
    out = run_sweep(wider, results_dir=first, trials=3, num_cpus=2, progress=said.append)
    text = "\n".join(said)
    assert "pipeline.optim.lr: range widened" in text and "2 trials kept" in text
    assert out["trained"] == 3 and out["counts"].get("ok", 0) + out["counts"].get("copies of trained variants", 0) >= 3
    trained_first = {variant(r) for r in read_trials(open_for_reading(first).study) if r.is_candidate}
    assert len(trained_first) == 3
    # warm start a new folder from it: nothing retrained, the budget counts new trainings only
    second = tmp_path / "second"
    out = run_sweep(wider, results_dir=second, trials=1, num_cpus=2, progress=None, warm_start=str(first))
    assert out["warm_start"]["imported"] >= 3 and out["trained"] == 1
    study = open_for_reading(second).study
    trained_here = [r for r in read_trials(study) if r.trained]
    assert len(trained_here) == 1 and trained_here[0].arch_id is not None
    imported = {variant(r) for r in read_trials(study) if r.imported_from}
    assert variant(trained_here[0]) not in imported and imported <= trained_first
    # other objectives are refused on the folder; --fresh moves it aside and starts over
    one = space_file(tmp_path, name="one", objectives=[{"metric": "fidelity", "direction": "maximize"}])
    args = ["sweep", str(one), "--results", str(first), "--trials", "1", "--num-cpus", "2", "--json"]
    assert main(args) == 2
    assert main([*args, "--fresh"]) == 0
    out = json.loads(capsys.readouterr().out)
    moved = Path(out["previous_results"])
    assert out["trained"] == 1 and out["revision"] == 1 and moved.name.startswith("first.before-")
    assert len(read_trials(open_for_reading(moved).study)) >= 3


def test_a_grid_after_an_edit_counts_no_set_aside_trial_as_a_visited_point(tmp_path: Path) -> None:
    from radio_nas.search.decisions import exhausted

    results, url, _ = first_sweep(tmp_path)
    grid = load_space(
        space_file(
            tmp_path,
            name="grid",
            parameters={"arch.width": "choice(16)", "pipeline.optim.lr": 1e-3},
            sampler={"name": "grid", "seed": 0},
        )
    )
    study = open_study(grid, results, url)
    records = read_trials(study)
    assert [r.status for r in records].count(Status.SET_ASIDE) == 3 and grid.grid_size() == 4
    # 4 trials in the study, but only one of them is a point of this 4-point grid: 3 are left to run
    assert not exhausted(study, grid)
