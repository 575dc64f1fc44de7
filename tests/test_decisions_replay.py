"""The sweep's searcher and the simulator make the same decisions: a small exhaustive grid, built
by the real searcher (real costs, a deterministic stand-in for training), replayed by the
simulator, gives the same trial states, statuses and copies as the real searcher proposing from
scratch with the same sampler and seed; ``auto`` windows and the windows they resolve to are one
variant in both."""

import dataclasses
import json
import random
from pathlib import Path

import optuna
import pytest
import yaml
from ray.tune.search import Searcher

from radio_nas.search import decisions
from radio_nas.search.optuna_study import default_storage, open_study
from radio_nas.search.searcher import StudySearcher
from radio_nas.search.space import load_space, variant_key
from radio_nas.search.trainable import FINAL_KEY, RESULT_KEY
from radio_nas.simulate import simulate, space_from_raw, table_from_study
from radio_nas.study import TrialRecord

REPO = Path(__file__).resolve().parents[1]
TINY = {"preset": "xt", "depths": [1, 1, 1, 1], "head_dim": 16}


def space_file(tmp_path: Path, sampler: dict) -> Path:
    data = {
        "name": "twins",
        "pipeline": {"path": str(REPO / "pipelines/distill_cpu.yaml"), "overrides": {"steps": 2, "resolution": 64}},
        "base": TINY,
        # at 64 px `auto` resolves to [2, 2]: two of the three window choices are one variant;
        # width 16 with head_dim 48 is refused by the model; width 48 breaks max_gmacs (0.038 GMACs)
        "parameters": {
            "arch.width": "choice(16, 32, 48)",
            "arch.head_dim": "choice(16, 48)",
            "arch.window_sizes": "choice(auto, [2, 2], [1, 1])",
        },
        "constraints": {"max_gmacs": 0.03},
        "objectives": [{"metric": "fidelity", "direction": "maximize"}, {"metric": "gmacs", "direction": "minimize"}],
        "sampler": sampler,
        "budget": {"trials": 6, "max_infeasible": 6},
    }
    path = tmp_path / f"space-{sampler['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def train(config: dict, space) -> dict:
    """A deterministic trial of the variant: one outcome per variant_key; width 32 with [1, 1] fails."""
    from radio_nas.models import resolve_config

    arch = resolve_config(config["arch"])
    pipeline = space.pipeline_for({})
    key = variant_key(arch, pipeline)
    fid = 0.3 + random.Random(str(key)).random() / 2
    failed = arch.width == 32 and tuple(arch.window_sizes) == (1, 1)
    run = {
        "status": "failed" if failed else "ok",
        "failure_reason": "loss is NaN at step 1" if failed else None,
        "fidelity": None if failed else fid,
        "steps": 2,
        "wall_s": 1.0,
        "weights_path": None,
    }
    return {"step": 2, "fidelity": fid, FINAL_KEY: True, RESULT_KEY: json.dumps(run)}


def sweep(space, results: Path, trials: int) -> optuna.Study:
    """The real searcher, one trial at a time, each told as the trainable reports it."""
    study = open_study(space, results, default_storage(results))
    searcher = StudySearcher(space, study, results, trials=trials, progress=None)
    for i in range(100):
        config = searcher.suggest(f"t{i}")
        if config == Searcher.FINISHED:
            break
        assert isinstance(config, dict)
        searcher.on_trial_complete(f"t{i}", train(config, space))
    return study


def states(study) -> list[tuple]:
    out = []
    for t in study.get_trials(deepcopy=False):
        r = TrialRecord.from_trial(t)
        out.append((t.number, tuple(sorted(t.params.items())), t.state.name, str(r.status), r.duplicate_of))
    return out


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_the_simulator_replays_the_searchers_decisions(tmp_path, sampler):
    # every point, copies and refusals in a row included
    grid_space = load_space(space_file(tmp_path, {"name": "grid", "seed": 0}), {"budget.max_infeasible": 100})
    grid = sweep(grid_space, tmp_path / "grid", trials=18)
    table = table_from_study(tmp_path / "grid")
    by_status = {s: sum(r.status == s for r in table.rows) for s in ("ok", "infeasible", "failed")}
    assert by_status == {"ok": 5, "infeasible": 12, "failed": 1}
    # the grid sweep trains `auto` and [2, 2] once where both train: widths 16 and 32 at head_dim 16
    copies = [r for r in states(grid) if r[4] is not None]
    assert len(copies) == 2 and all(r[3] == "ok" for r in copies)
    assert len({r.variant for r in table.rows if r.variant}) < len([r for r in table.rows if r.variant])

    settings = {"name": sampler, "seed": 3, "n_startup_trials": 3}
    space = load_space(space_file(tmp_path, settings))
    # a point queued after the last copy and never asked (the sweep had stopped) was never told
    real = [t for t in states(sweep(space, tmp_path / "real", trials=6)) if t[2] != "WAITING"]
    # the table keeps the grid sweep's sampler settings: a replay sets its own (as replay --set does)
    replayed_space = space_from_raw(
        table.space.raw, where="test", overrides={"sampler.n_startup_trials": 3, "budget.max_infeasible": 6}
    )
    run = simulate(dataclasses.replace(table, space=replayed_space), sampler, trials=6, seed=3)
    replayed = [(n, tuple(sorted(p.items())), state, status, dup) for n, p, state, status, dup in run.told]
    assert replayed == real
    assert {s for _, _, _, s, _ in real} >= {"ok", "infeasible"}
    assert run.counts["copies"] == sum(d is not None for *_, d in real)


def test_a_copy_queues_an_untried_point_only_where_the_sampler_can_miss_none():
    # the decision table itself: what each outcome costs the streak and the budget
    assert decisions.next_streak(3, decisions.decide(decisions.Event.COPY)) == 4
    assert decisions.next_streak(3, decisions.decide(decisions.Event.STARTED)) == 0
    assert decisions.next_streak(3, decisions.decide(decisions.Event.TRAINED)) == 3
    assert [e for e in decisions.Event if decisions.decide(e).trained] == [
        decisions.Event.TRAINED,
        decisions.Event.FAILED,
        decisions.Event.STOPPED,
    ]
    assert decisions.streak_stop(4, 5) is None and "budget.max_infeasible" in (decisions.streak_stop(5, 5) or "")
