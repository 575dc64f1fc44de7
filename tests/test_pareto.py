"""Non-dominated sorting against brute force, hypervolume against hand-computed cases, and the
Pareto set of a real Optuna study (SQLite) against ``study.best_trials``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from radio_nas.study.pareto import hypervolume, normalised_hypervolume, pareto_mask, pareto_ranks, to_minimisation


def _brute_force_ranks(values: np.ndarray, directions: list[str]) -> np.ndarray:
    pts = to_minimisation(values, directions)
    ranks = np.zeros(len(pts), dtype=int)
    left = set(range(len(pts)))
    rank = 0
    while left:
        rank += 1
        front = [i for i in left if not any(np.all(pts[j] <= pts[i]) and np.any(pts[j] < pts[i]) for j in left)]
        for i in front:
            ranks[i] = rank
        left -= set(front)
    return ranks


@pytest.mark.parametrize("m", [2, 3, 4])
def test_ranks_match_brute_force_on_random_points_with_ties(m: int) -> None:
    rng = np.random.default_rng(m)
    for trial in range(20):
        n = int(rng.integers(1, 40))
        # a coarse grid of values makes ties and duplicate points common
        values = rng.integers(0, 5, size=(n, m)).astype(float)
        directions = [str(d) for d in rng.choice(["maximize", "minimize"], size=m)]
        got = pareto_ranks(values, directions)
        assert got.tolist() == _brute_force_ranks(values, directions).tolist(), (trial, directions)
        assert (got >= 1).all()


def test_duplicates_share_the_front_and_direction_matters() -> None:
    values = np.array([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    assert pareto_ranks(values, ["minimize", "minimize"]).tolist() == [1, 1, 2]
    assert pareto_ranks(values, ["maximize", "maximize"]).tolist() == [2, 2, 1]
    assert pareto_mask(values, ["maximize", "minimize"]).tolist() == [True, True, True]


def test_hypervolume_hand_computed_cases() -> None:
    # 2-D staircase: (1,2) and (2,1) under (3,3) -> 2*1 + 1*2 - overlap 1*1 = 3
    assert hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([3.0, 3.0])) == pytest.approx(3.0)
    # a dominated point and a point outside the reference add nothing
    pts = np.array([[1.0, 2.0], [2.0, 1.0], [2.5, 2.5], [4.0, 0.0]])
    assert hypervolume(pts, np.array([3.0, 3.0])) == pytest.approx(3.0)
    # 1-D
    assert hypervolume(np.array([[2.0], [5.0]]), np.array([10.0])) == pytest.approx(8.0)
    # 3-D: single point is a box; two boxes (2x2x1 and 1x1x2) overlap in 1x1x1 -> 4 + 2 - 1 = 5
    assert hypervolume(np.array([[1.0, 1.0, 1.0]]), np.array([2.0, 3.0, 4.0])) == pytest.approx(6.0)
    pts3 = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    assert hypervolume(pts3, np.array([2.0, 2.0, 2.0])) == pytest.approx(4.0 + 2.0 - 1.0)
    # 4-D: unit-cube corners under reference 1 at 0 and one point at origin -> volume 1
    assert hypervolume(np.zeros((1, 4)), np.ones(4)) == pytest.approx(1.0)
    assert hypervolume(np.empty((0, 2)), np.ones(2)) == 0.0


def test_hypervolume_matches_monte_carlo_in_3d_and_4d() -> None:
    rng = np.random.default_rng(0)
    for m in (3, 4):
        pts = rng.random((12, m))
        ref = np.ones(m)
        samples = rng.random((200_000, m))
        covered = np.zeros(len(samples), dtype=bool)
        for p in pts:
            covered |= (samples >= p).all(axis=1)
        assert hypervolume(pts, ref) == pytest.approx(covered.mean(), abs=0.01)


def test_normalised_hypervolume_reference_and_range() -> None:
    values = np.array([[0.9, 10.0], [0.5, 2.0]])  # fidelity max, GMACs min
    hv = normalised_hypervolume(values, ["maximize", "minimize"], margin=0.1)
    # normalised (smaller is better): (0, 1) and (1, 0); reference (1.1, 1.1):
    # two 1.1 x 0.1 strips overlapping in a 0.1 x 0.1 corner, over the 1.1 x 1.1 box
    expected = (1.1 * 0.1 + 0.1 * 1.1 - 0.1 * 0.1) / (1.1 * 1.1)
    assert hv.value == pytest.approx(expected)
    assert hv.reference == pytest.approx([0.5 - 0.04, 10.0 + 0.8])
    assert hv.ideal == pytest.approx([0.9, 2.0]) and hv.nadir == pytest.approx([0.5, 10.0])
    assert 0.0 < hv.value <= 1.0 and "reference point" in hv.describe()
    single = normalised_hypervolume(np.array([[0.7, 3.0]]), ["maximize", "minimize"])
    assert single.value == pytest.approx(1.0)  # one point at the ideal covers the whole box


def test_pareto_set_equals_optuna_best_trials(tmp_path) -> None:
    import optuna

    from radio_nas.report.study_table import trials_table
    from radio_nas.study import open_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="t", storage=storage, directions=["maximize", "minimize", "minimize"])
    study.set_metric_names(["fidelity", "gmacs", "latency_ms"])
    rng = np.random.default_rng(3)
    for _ in range(40):
        values = [float(rng.integers(0, 6)) / 5, float(rng.integers(1, 6)), float(rng.integers(1, 4))]
        study.add_trial(optuna.trial.create_trial(values=values, user_attrs={"status": "ok"}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    table = trials_table(open_study(tmp_path).study)
    ours = set(table.loc[table["pareto"], "number"])
    assert ours == {t.number for t in study.best_trials}
    # a COMPLETE trial whose status is not "ok" (a sweep that stored sentinel values) must never
    # reach the front, even though its values dominate everything
    study.add_trial(optuna.trial.create_trial(values=[1.0, 0.0, 0.0], user_attrs={"status": "infeasible"}))
    assert {t.number for t in study.best_trials} == {study.trials[-1].number}
    table = trials_table(open_study(tmp_path).study)
    assert set(table.loc[table["pareto"], "number"]) == ours
    assert len(ours) >= 2
    assert table.loc[~table["candidate"], "pareto_rank"].isna().all()
    assert (table.loc[table["candidate"], "pareto_rank"] >= 1).all()
    # a sweep records a re-proposed variant as a COMPLETE copy of an earlier trial: same point,
    # listed in the table but not a second time on the front
    original = next(t for t in study.trials if t.number in ours)
    study.add_trial(
        optuna.trial.create_trial(values=original.values, user_attrs={"status": "ok", "duplicate_of": original.number})
    )
    table = trials_table(open_study(tmp_path).study)
    assert set(table.loc[table["pareto"], "number"]) == ours
    assert study.trials[-1].number in set(table["number"])


def test_combinations_of_directions_are_consistent() -> None:
    rng = np.random.default_rng(7)
    values = rng.random((25, 3))
    for dirs in itertools.product(["maximize", "minimize"], repeat=3):
        flipped = values * np.array([-1 if d == "maximize" else 1 for d in dirs])
        assert (pareto_ranks(values, list(dirs)) == pareto_ranks(flipped, ["minimize"] * 3)).all()
