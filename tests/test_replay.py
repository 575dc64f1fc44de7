"""Exhaustive tables and sampler replay on a synthetic table of a small finite space (real Optuna
samplers, real SQLite for the study-backed table)."""

import itertools
import json
import math
import random

import optuna
import pytest

from radio_nas._config import ConfigError, dump_yaml
from radio_nas.cli import main
from radio_nas.simulate.simulate import replay, simulate
from radio_nas.simulate.table import (
    CurvePoint,
    Row,
    Table,
    load_table,
    missing_points,
    read_csv,
    space_from_raw,
    write_table,
)

RAW = {
    "name": "synth",
    "base": {"preset": "xt"},
    "parameters": {
        "arch.width": "choice(16, 24, 32)",
        "arch.mra_pattern": "choice([[2, 1], [1]], [[1], [1]])",
        "pipeline.balancing.method": "choice(fixed, uncertainty, adaloss)",
    },
    "objectives": [
        {"metric": "fidelity", "direction": "maximize"},
        {"metric": "gmacs", "direction": "minimize"},
        {"metric": "latency_ms", "direction": "minimize"},
    ],
    "constraints": {"max_gmacs": 1.0},
    "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": 4},
}
STEPS, EVERY = 12, 2


def synthetic_table(raw=RAW):
    """18 points: width 32 with the long pattern breaks max_gmacs (infeasible), one point fails, and
    'uncertainty' shares its pipeline id with 'fixed' at width 16 (a copy when both are proposed)."""
    space = space_from_raw(raw, where="test")
    grid = space.grid()
    names = list(grid)
    rows = []
    for i, combo in enumerate(itertools.product(*grid.values())):
        p = dict(zip(names, combo))
        width, long_pattern, method = p["arch.width"], p["arch.mra_pattern"].startswith("[[2"), p[names[2]]
        pipeline = "pipe-fixed" if method == "uncertainty" and width == 16 else f"pipe-{method}"
        rng = random.Random(f"{width}-{long_pattern}-{pipeline}")  # one variant, one outcome (as trained)
        gmacs = width * width / 1000 * (1.3 if long_pattern else 1.0)
        latency = 2 * gmacs + rng.random() * 0.05
        final = 0.2 + 0.01 * width + (0.05 if long_pattern else 0) + rng.random() * 0.05
        status = (
            "infeasible" if gmacs > 1.0 else "failed" if (width, method) == (24, "adaloss") and long_pattern else "ok"
        )
        curve = tuple(CurvePoint(s, final * (1 - math.exp(-s / 4)), 0.5 * s) for s in range(EVERY, STEPS + 1, EVERY))
        trained = status != "infeasible"
        rows.append(
            Row(
                i,
                p,
                status,
                arch_id=f"arch-{width}-{long_pattern}",
                pipeline_id=pipeline,
                metrics={
                    "params": width * 1e4,
                    "gmacs": gmacs,
                    "latency_ms": latency,
                    "fidelity": final if status == "ok" else None,
                },
                curve=curve if status == "ok" else curve[:2] if trained else (),
                steps=STEPS if trained else None,
                train_seconds=0.5 * STEPS if trained else None,
                trial=i,
                failure_reason="constraints: gmacs" if status == "infeasible" else None,
            )
        )
    return Table(space, tuple(rows), "synthetic", steps=STEPS, eval_every=EVERY)


@pytest.fixture
def table_csv(tmp_path):
    return write_table(synthetic_table(), tmp_path / "synth.csv")


def test_csv_round_trip(table_csv):
    table = read_csv(table_csv)
    original = synthetic_table()
    assert len(table.rows) == 18 and table.names == original.names
    for a, b in zip(table.rows, original.rows):
        assert (a.params, a.status, a.arch_id, a.pipeline_id, a.steps) == (
            b.params,
            b.status,
            b.arch_id,
            b.pipeline_id,
            b.steps,
        )
        assert a.metrics["gmacs"] == pytest.approx(b.metrics["gmacs"], rel=1e-5)
        assert [(p.step, p.seconds) for p in a.curve] == [(p.step, p.seconds) for p in b.curve]
    lines = table_csv.read_text().splitlines()
    assert json.loads(lines[0][2:])["format"] == "radio-nas-exhaustive/1"
    assert lines[1].startswith("point,arch.width,arch.mra_pattern,pipeline.balancing.method,trial,arch_id")
    # a truncated table is refused
    table_csv.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ConfigError, match="17 distinct points, the space has 18"):
        read_csv(table_csv)


def test_grid_replay_recovers_the_exhaustive_front_exactly(table_csv):
    table = load_table(table_csv)
    out = replay(table, ["grid"], trials=100, repeats=2, seed=3)
    s = out["samplers"]["grid"]
    assert s["hv_ratio_median"] == 1.0 and s["hv_ratio_iqr"] == [1.0, 1.0]
    assert s["pareto_share_median"] == 1.0 and out["table"]["pareto_size"] >= 2
    # trained = distinct feasible variants (two pairs of points share a variant); infeasible ones never count
    variants = {r.variant for r in table.rows if r.status != "infeasible"}
    assert s["trained_median"] == len(variants) == 10
    for run in out["runs"]["grid"]:
        assert run["counts"]["infeasible"] == 6 and run["counts"]["copies"] == 2 and run["counts"]["failed"] == 1
        assert run["stop_reason"] == "every point of the design has been tried"
        assert run["seconds"][-1] == pytest.approx(10 * 0.5 * STEPS)


def test_replay_is_deterministic_per_seed(table_csv):
    table = load_table(table_csv)
    a = replay(table, ["tpe", "random", "nsga2"], trials=8, repeats=3, seed=5)
    b = replay(table, ["tpe", "random", "nsga2"], trials=8, repeats=3, seed=5)
    assert a["runs"] == b["runs"]
    c = replay(table, ["random"], trials=8, repeats=3, seed=6)
    assert c["runs"]["random"] != a["runs"]["random"]
    parallel = replay(table, ["tpe", "random", "nsga2"], trials=8, repeats=3, seed=5, jobs=2)  # processes
    assert parallel["runs"] == a["runs"]
    for runs in a["runs"].values():
        for run in runs:
            ratios = run["hv_ratio"]
            assert len(ratios) == 8 and ratios == sorted(ratios) and 0 < ratios[-1] <= 1 + 1e-12


def test_copies_and_infeasible_proposals_are_not_counted():
    table = synthetic_table()
    # random proposals on an 18-point space for 11 trained trials: re-proposals and copies happen
    run = simulate(table, "random", trials=11, seed=0)
    assert run.counts["ok"] + run.counts["failed"] + run.counts["pruned"] == len(run.ratios)
    assert run.counts["copies"] + run.counts["infeasible"] > 0
    assert len(run.found) == run.counts["ok"]  # every trained ok trial is a new variant


def test_replay_tells_infeasible_variants_as_the_sweep_does(monkeypatch):
    """Infeasible: COMPLETE with violated constraints (what NSGA-II and GP learn from); every measured
    trial carries constraint values, so constrained samplers see what a real sweep shows them."""
    studies = []
    create = optuna.create_study
    monkeypatch.setattr(optuna, "create_study", lambda **kw: studies.append(create(**kw)) or studies[-1])
    run = simulate(synthetic_table(), "random", trials=11, seed=0)
    trials = studies[0].get_trials(deepcopy=False)
    infeasible = [t for t in trials if t.user_attrs.get("status") == "infeasible"]
    assert len(infeasible) == run.counts["infeasible"] > 0
    assert all(t.state.name == "COMPLETE" and max(t.constraints.values()) > 0 for t in infeasible)
    ok = [t for t in trials if t.user_attrs.get("status") == "ok"]
    assert ok and all(max(t.constraints.values()) <= 0 for t in ok)
    assert not any(t.number in {b.number for b in studies[0].best_trials} for t in infeasible)


def test_moasha_replay_prunes_on_curves_and_saves_training(table_csv):
    table = load_table(table_csv)
    full = replay(table, ["random"], trials=11, repeats=3, seed=0)
    early = replay(
        table, ["random"], trials=11, repeats=3, seed=0, scheduler="moasha", grace_period=2, reduction_factor=3
    )
    assert early["samplers"]["random"]["counts_median"]["pruned"] > 0
    assert early["samplers"]["random"]["train_seconds_median"] < full["samplers"]["random"]["train_seconds_median"]
    run = simulate(table, "random", trials=11, seed=0, scheduler="moasha", grace_period=2, reduction_factor=3)
    # the pruned trials never enter the found set (only COMPLETE trials make the front)
    assert len(run.found) == run.counts["ok"] and run.counts["pruned"] > 0
    # TPE after pruned trials of a multi-objective study: their curve is a user attr, not intermediate
    # values (Optuna 5.0's TPE raises on a PRUNED multi-objective trial with intermediate values)
    tpe = simulate(table, "tpe", trials=11, seed=0, scheduler="moasha", grace_period=2, reduction_factor=3)
    assert tpe.counts["pruned"] > 0 and len(tpe.ratios) == 11


def _study_folder(tmp_path, rows, drop=0):
    """A results folder as a grid sweep leaves it: space.yaml + study.db with the searcher's user attrs."""
    table = synthetic_table()
    folder = tmp_path / "grid"
    folder.mkdir()
    (folder / "space.yaml").write_text(dump_yaml(RAW))
    storage = f"sqlite:///{folder / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="synth-x", directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("pipeline", {"steps": STEPS, "eval": {"every": EVERY}})
    dists = {n: optuna.distributions.CategoricalDistribution(v) for n, v in table.space.grid().items()}
    for row in rows[: len(rows) - drop]:
        values = [row.metrics["fidelity"], row.metrics["gmacs"], row.metrics["latency_ms"]]
        state = {"ok": "COMPLETE", "failed": "FAIL", "infeasible": "PRUNED"}[row.status]
        attrs = {
            "status": row.status,
            "arch_id": row.arch_id,
            "pipeline": {"id": row.pipeline_id},
            "gmacs": row.metrics["gmacs"],
            "latency_ms": row.metrics["latency_ms"],
            "params": row.metrics["params"],
            "metrics": {"fidelity": row.metrics["fidelity"], "steps": row.steps, "wall_s": row.train_seconds},
        }
        study.add_trial(
            optuna.trial.create_trial(
                state=getattr(optuna.trial.TrialState, state),
                values=values if row.status == "ok" else None,
                params=row.params,
                distributions=dists,
                user_attrs=attrs,
                intermediate_values={p.step: p.fidelity for p in row.curve if p.step < STEPS},
            )
        )
    return folder


def test_table_from_an_exhaustive_study_and_refusal_of_a_partial_one(tmp_path, capsys):
    rows = synthetic_table().rows
    folder = _study_folder(tmp_path, rows)
    table = load_table(folder)
    assert [r.status for r in table.rows] == [r.status for r in rows]
    ok = [r for r in table.rows if r.status == "ok"]
    assert ok[0].curve[-1].step == STEPS and ok[0].curve[0].seconds is None  # closed by the final fidelity
    assert ok[0].seconds_at(6) == pytest.approx(0.5 * 6)  # estimated linearly from the trial's seconds
    assert replay(table, ["grid"], trials=100, repeats=1)["samplers"]["grid"]["hv_ratio_median"] == 1.0
    write_table(table, tmp_path / "t.csv")
    assert len(read_csv(tmp_path / "t.csv").rows) == 18

    (tmp_path / "p").mkdir()
    partial = _study_folder(tmp_path / "p", rows, drop=5)
    with pytest.raises(ConfigError, match=r"not an exhaustive study: 5 of 18 points"):
        load_table(partial)
    study = optuna.load_study(study_name="synth-x", storage=f"sqlite:///{partial / 'study.db'}")
    assert missing_points(study, table.space) == [r.params for r in rows[-5:]]  # what exhaustive.py queues
    assert main(["replay", str(partial), "--samplers", "tpe", "--trials", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("radio-nas replay: error:") and "not an exhaustive study" in err and "\n" not in err


def test_cli_json_and_plot(table_csv, tmp_path, capsys):
    png = tmp_path / "replay.png"
    assert (
        main(
            [
                "replay",
                str(table_csv),
                "--samplers",
                "tpe,random",
                "--trials",
                "6",
                "--repeats",
                "3",
                "--plot",
                str(png),
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    for name in ("tpe", "random"):
        s = out["samplers"][name]
        assert 0 < s["hv_ratio_median"] <= 1 and len(s["hv_ratio_iqr"]) == 2
        assert s["hv_ratio_iqr"][0] <= s["hv_ratio_median"] <= s["hv_ratio_iqr"][1]
    assert png.stat().st_size > 10_000 and "runs" not in out
    assert main(["replay", str(table_csv), "--samplers", "tpe", "--trials", "4", "--repeats", "2"]) == 0
    text = capsys.readouterr().out
    assert "| sampler | HV ratio" in text and "| tpe " in text
    assert main(["replay", str(table_csv), "--samplers", "cmaes"]) == 2
    assert main(["replay", str(table_csv), "--set", "constraints.max_gmacs=3"]) == 2


def test_warm_started_replay_imports_without_counting_and_never_retrains_an_import():
    from radio_nas.simulate import format_warm_start, warm_start_replay

    table = synthetic_table()
    source = simulate(table, "tpe", trials=5, seed=100)
    assert len(source.trained_rows) == source.counts["ok"] > 0
    warm = simulate(table, "tpe", trials=4, seed=1, imported=source.trained_rows)
    assert warm.start_ratio > 0 and len(warm.ratios) == 4  # imports are not trained trials here
    assert not warm.found & {r.variant for r in source.trained_rows}  # an imported variant is never trained again
    assert warm.ratios[0] >= warm.start_ratio
    out = warm_start_replay(table, ["tpe"], source_trials=5, trials=6, repeats=2, seed=0)
    s = out["samplers"]["tpe"]
    assert [r["imported"] for r in s["runs"]] == [
        len(simulate(table, "tpe", trials=5, seed=1000 + r).trained_rows) for r in range(2)
    ]
    assert all(r["warm_new_to_reach"] is None or r["warm_new_to_reach"] <= 6 for r in s["runs"])
    assert "warm: new trainings to it" in format_warm_start(out)


# -- what a table or an option a user hands `radio-nas replay` may be, refused in one line -------------


def _csv_line(cells):
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(cells)
    return buf.getvalue()


def _edit_row(table_csv, line, column, value):
    """The table with one cell of file line `line` (3: the first row) set to `value`."""
    import csv

    meta, header, *rows = table_csv.read_text().splitlines()
    cells = next(csv.reader([rows[line - 3]]))
    cells[next(csv.reader([header])).index(column)] = value
    rows[line - 3] = _csv_line(cells)
    table_csv.write_text("\n".join([meta, header, *rows]) + "\n")
    return table_csv


def _refused(capsys, *args, needles=()):
    """The real command refuses: exit 2, one line on stderr naming what is wrong, no traceback."""
    assert main(["replay", *map(str, args)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("radio-nas replay: error:") and "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def test_a_binary_file_is_refused(tmp_path, capsys):
    png = tmp_path / "table.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    _refused(capsys, png, needles=(str(png), "not a text file"))


def test_a_ragged_row_is_refused(table_csv, capsys):
    lines = table_csv.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]  # line 4 loses its last cell
    table_csv.write_text("\n".join(lines) + "\n")
    _refused(capsys, table_csv, needles=(str(table_csv), "line 4", "cells, the header has"))


def test_a_text_point_id_is_refused(table_csv, capsys):
    _refused(capsys, _edit_row(table_csv, 5, "point", "seven"), needles=("line 5", "point: expected an integer"))


@pytest.mark.parametrize("cell", ["nan", "inf", "-inf", "lots"])
def test_a_numeric_cell_that_is_not_a_finite_number_is_refused(table_csv, capsys, cell):
    _refused(capsys, _edit_row(table_csv, 6, "gmacs", cell), needles=("line 6", "gmacs: expected a finite number"))


def test_a_curve_that_is_not_finite_is_refused(table_csv, capsys):
    _refused(
        capsys,
        _edit_row(table_csv, 3, "curve", '[{"step": 2, "fidelity": NaN}]'),
        needles=("line 3", "curve fidelity: expected a finite number"),
    )


def test_conflicting_rows_of_one_point_are_refused_and_a_repeated_row_is_one(table_csv, capsys):
    import csv

    meta, header, *rows = table_csv.read_text().splitlines()
    cols = next(csv.reader([header]))
    cells = next(csv.reader([rows[0]]))
    cells[cols.index("point")] = "99"
    table_csv.write_text("\n".join([meta, header, *rows, _csv_line(cells)]) + "\n")  # the same results again: one row
    assert len(read_csv(table_csv).rows) == 18
    cells[cols.index("fidelity")] = "0.123"
    table_csv.write_text("\n".join([meta, header, *rows, _csv_line(cells)]) + "\n")
    _refused(capsys, table_csv, needles=("line 21", "with other results than at line 3"))
    table_csv.write_text("\n".join([meta, header, *rows, rows[1]]) + "\n")  # point id 1 twice
    _refused(capsys, table_csv, needles=("line 21", "point 1 again (first at line 4)"))


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        (["--trials", "0"], "--trials: expected an integer >= 1, got 0"),
        (["--repeats", "-1"], "--repeats: expected an integer >= 1"),
        (["--grace-period", "0", "--scheduler", "moasha"], "--grace-period"),
        (["--reduction-factor", "nan", "--scheduler", "moasha"], "--reduction-factor: expected a finite number > 1"),
        (["--reduction-factor", "0", "--scheduler", "moasha"], "--reduction-factor: expected a finite number > 1"),
        (["--set", "scheduler.reduction_factor=0"], "scheduler.reduction_factor: expected a finite number > 1"),
        (["--set", "scheduler.reduction_factor=.nan", "--scheduler", "moasha"], "scheduler.reduction_factor"),
    ],
)
def test_options_out_of_range_are_refused(table_csv, capsys, option, needle):
    _refused(capsys, table_csv, "--samplers", "random", *option, needles=(needle,))


def test_a_plot_path_that_is_a_folder_is_refused_before_replaying(table_csv, tmp_path, capsys):
    folder = tmp_path / "plots"
    folder.mkdir()
    _refused(capsys, table_csv, "--samplers", "random", "--plot", folder, needles=("--plot", "is a folder"))
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("warm", [[], ["--warm-start", "3"]])
def test_absurd_repeats_are_refused_with_an_estimate_before_anything_runs(table_csv, capsys, warm):
    import time

    started = time.monotonic()
    err = _refused(capsys, table_csv, "--samplers", "random,tpe", "--repeats", 10**9, *warm, needles=("--repeats",))
    assert " h and " in err and " GB" in err and "at most 2,000,000" in err
    assert time.monotonic() - started < 10  # refused, not attempted
