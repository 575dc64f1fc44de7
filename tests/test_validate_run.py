"""radio-nas validate: planning, refusals, the noise threshold, and one real end-to-end run.

The end-to-end test trains 3 smoke variants x 2 budgets x 2 seeds through real Ray Tune and a real
Optuna study (about a minute on 2 CPUs).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from radio_nas._config import ConfigError, dump_yaml, load_yaml
from radio_nas.cli import main
from radio_nas.search.space import load_space
from radio_nas.validate import ValidateSettings, find_validation, noise_threshold
from radio_nas.validate.analysis import analyse, recommend
from radio_nas.validate.plan import STEPS, Plan, TrainingBudget, budgets_for, plan_validation, validation_space

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"
# A finite space of its own (2 x 2 x 2 variants) for the planning tests, so they do not follow
# edits to smoke.yaml; the end-to-end test runs smoke.yaml itself.
TINY = f"""
name: tiny
pipeline:
  path: {ROOT / "pipelines" / "distill_cpu.yaml"}
  overrides: {{steps: 4, batch_size: 4, resolution: 64, data.train_size: 16, data.eval_size: 8,
              eval.knn: false, eval.size: 8, eval.every: 2}}
base: {{preset: xt, width: 16, depths: [1, 1, 1, 1], head_dim: 16}}
parameters:
  arch.width: choice(16, 32)
  arch.mra_pattern: choice([[2, 1], [1]], [[1], [1]])
  pipeline.balancing.method: choice(fixed, adaloss)
constraints: {{max_gmacs: 1.0}}
sampler: {{name: random, seed: 0}}
"""


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_settings_and_space_refusals(tmp_path: Path, tiny: Path) -> None:
    with pytest.raises(ConfigError, match="--budgets"):
        ValidateSettings(budgets=(1.0,))
    with pytest.raises(ConfigError, match="--budgets"):
        ValidateSettings(budgets=(1.0, -2.0))
    with pytest.raises(ConfigError, match="--variants"):
        ValidateSettings(variants=1)
    space = load_space(tiny)
    with pytest.raises(ConfigError, match="same step count"):
        budgets_for(space, ValidateSettings(budgets=(1.0, 1.1)))  # 4 steps either way
    raw = load_yaml(tiny)
    raw["parameters"]["pipeline.seed"] = "choice(0, 1)"
    (tmp_path / "seeded.yaml").write_text(dump_yaml(raw))
    seeded = load_space(tmp_path / "seeded.yaml")
    with pytest.raises(ConfigError, match="parameters.pipeline.seed"):
        plan_validation(seeded, ValidateSettings(variants=2))
    # CLI: one line, exit 2, nothing written
    assert main(["validate", str(tiny), "--budgets", "4", "--results", str(tmp_path / "v")]) == 2
    assert main(["validate", str(tiny), "--budgets", "1,a"]) == 2
    assert main(["validate", str(tiny), "--no-train", "--results", str(tmp_path / "v")]) == 2
    assert not (tmp_path / "v").exists()


def test_plan_and_derived_space(tmp_path: Path, tiny: Path) -> None:
    space = load_space(tiny, {"constraints.max_gmacs": None})  # no GMACs traces: fast
    settings = ValidateSettings(variants=3, budgets=(1, 2), seeds=2)
    plan = plan_validation(space, settings)
    again = plan_validation(space, settings)
    assert plan.variants == again.variants  # seeded: the same command plans the same variants
    assert len({json.dumps(v, sort_keys=True) for v in plan.variants}) == 3
    assert [b.steps for b in plan.budgets] == [space.pipeline.steps, 2 * space.pipeline.steps]
    assert plan.budgets[1].overrides["data.train_size"] == 2 * space.pipeline.data.train_size
    trials = plan.trial_params()
    assert len(trials) == 3 * 2 * 2 and len({json.dumps(t, sort_keys=True) for t in trials}) == 12
    derived = validation_space(plan, tmp_path)
    assert derived.name == "tiny-validate" and derived.hash != space.hash
    # every enqueued trial's values lie in the derived space's distributions, and build the right pipeline
    names = {p.name for p in derived.sampled}
    assert {STEPS, "pipeline.seed"} <= names
    pipe = derived.pipeline_for({k: _decode(v) for k, v in trials[1].items()})
    assert pipe.steps == plan.budgets[1].steps and pipe.seed == plan.seeds[0]
    assert derived.pipeline.to_dict() == space.pipeline.to_dict()  # resolved pipeline travels exactly
    # a larger space than feasible variants: all of them, no error
    small = plan_validation(space, ValidateSettings(variants=50, budgets=(1, 2), seeds=1), progress=lambda s: None)
    assert len(small.variants) == 8  # 2 widths x 2 patterns x 2 methods
    with pytest.raises(ConfigError, match="constraints"):
        plan_validation(
            load_space(tiny, {"constraints.max_gmacs": None, "constraints.max_params": 10}),
            ValidateSettings(variants=3),
        )


def _decode(v):
    from radio_nas.search.space import decode_choice

    return decode_choice(v)


def test_analysis_on_known_numbers(tiny: Path) -> None:
    space = load_space(tiny)
    settings = ValidateSettings(variants=4, budgets=(1, 4), seeds=2, n_boot=300)
    budgets = (TrainingBudget(1.0, 4, {"steps": 4}), TrainingBudget(4.0, 16, {"steps": 16}))
    plan = Plan(space, settings, tuple({"v": i} for i in range(4)), budgets, (0, 1), "sampled", (None,) * 4)
    fid = np.array(
        [
            [[0.10, 0.12], [0.40, 0.42]],
            [[0.20, 0.22], [0.50, 0.52]],
            [[0.30, 0.32], [0.45, 0.47]],
            [[0.40, 0.42], [0.60, np.nan]],
        ]
    )
    out = analyse(fid, plan)
    comp = out["comparisons"][0]
    short, long = fid[:, 0].mean(axis=1), np.nanmean(fid[:, 1], axis=1)
    import scipy.stats as st

    assert comp["kendall_tau"] == pytest.approx(st.kendalltau(short, long).statistic)
    assert comp["spearman_rho"] == pytest.approx(st.spearmanr(short, long).statistic)
    assert comp["same_best"] is True and comp["n"] == 4
    noise = np.std([0.10, 0.12], ddof=1)  # every variant's two seeds differ by 0.02
    assert out["noise"]["sweep_seed_std"] == pytest.approx(noise)
    assert out["budgets"][0]["gap_share_2x_noise"] == 1.0  # gaps of 0.1 > 2 x 0.014
    assert out["variants"][3]["seed_std"]["4"] is None  # one seed left: no std, no crash
    assert comp["kendall_tau"] == pytest.approx(4 / 6)  # one swap among four variants
    assert out["recommendation"] is None  # 0.67 < 0.7
    assert out["closest_4x"]["kendall_tau"] == pytest.approx(4 / 6)
    # the rule: tau >= 0.7 against a run >= 4x longer
    pairs = [{"short": 1.0, "long": 4.0, "short_steps": 4, "kendall_tau": 0.69, "kendall_tau_ci": [0, 1]}]
    assert recommend(pairs, plan) is None
    pairs[0]["kendall_tau"] = 0.7
    assert recommend(pairs, plan)["steps"] == 4
    pairs = [{"short": 1.0, "long": 2.0, "short_steps": 4, "kendall_tau": 1.0, "kendall_tau_ci": [1, 1]}]
    assert recommend(pairs, plan) is None  # only 2x longer: not evidence for the rule


def test_noise_threshold_matches_space_and_pipeline(tmp_path: Path, tiny: Path) -> None:
    from radio_nas.search.optuna_study import default_storage, open_study

    space = load_space(tiny)
    sweep = tmp_path / "tiny"
    open_study(space, sweep, default_storage(sweep))  # what a sweep writes before its first trial
    assert noise_threshold(sweep) is None
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "validation.json").write_text(json.dumps({"source_space_hash": "nope", "noise": {"sweep_seed_std": 1.0}}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "validation.json").write_text("{half")
    assert noise_threshold(sweep) is None
    mine = tmp_path / "any-name"
    mine.mkdir()
    (mine / "validation.json").write_text(
        json.dumps({"source_space_hash": space.hash, "noise": {"sweep_seed_std": 0.004}})
    )
    assert noise_threshold(sweep) == pytest.approx(0.008)
    assert find_validation(sweep)["match"] == "space"
    # radio-nas gained a config field since (another space hash): the same name and a pipeline equal
    # on every shared key still match; a different number of steps does not
    (mine / "validation.json").write_text(
        json.dumps({"source_space_hash": space.hash, "noise": {"sweep_seed_std": None}})
    )  # one seed
    drifted = json.loads(json.dumps(space.pipeline.to_dict()))
    drifted["a_new_field"] = 1
    drifted.pop("batch_size")
    later = tmp_path / "later"
    later.mkdir()
    (later / "validation.json").write_text(
        json.dumps(
            {
                "source_space_hash": "older",
                "source_space": "tiny",
                "pipeline": drifted,
                "noise": {"sweep_seed_std": 0.01},
            }
        )
    )
    assert find_validation(sweep)["match"] == "space"  # exact first, though it has no noise
    assert noise_threshold(sweep) == pytest.approx(0.02)  # the first match that measured noise
    drifted["steps"] += 1
    (later / "validation.json").write_text(
        json.dumps(
            {
                "source_space_hash": "older",
                "source_space": "tiny",
                "pipeline": drifted,
                "noise": {"sweep_seed_std": 0.01},
            }
        )
    )
    assert noise_threshold(sweep) is None
    (mine / "validation.json").write_text(
        json.dumps({"source_space_hash": space.hash, "noise": {"sweep_seed_std": 0.004}})
    )
    # another pipeline (steps) is another space hash: the noise does not transfer
    longer = load_space(tiny, {"pipeline.overrides.steps": 8})
    sweep2 = tmp_path / "tiny-long"
    open_study(longer, sweep2, default_storage(sweep2))
    assert noise_threshold(sweep2) is None
    assert noise_threshold(tmp_path / "missing") is None


@pytest.mark.slow
def test_validate_smoke_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "smoke-validate"
    args = [
        "validate",
        str(SMOKE),
        "--variants",
        "3",
        "--budgets",
        "1,2",
        "--seeds",
        "2",
        "--results",
        str(results),
        "--num-cpus",
        "2",
        "--boot",
        "500",
        "--json",
        "--set",
        "pipeline.overrides.steps=2",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    saved = json.loads((results / "validation.json").read_text())
    assert saved["comparisons"] == out["comparisons"]
    assert out["counts"] == {"ok": 12}
    assert [b["trials_ok"] for b in out["budgets"]] == [6, 6]
    comp = out["comparisons"][0]
    assert comp["n"] == 3 and -1 <= comp["kendall_tau"] <= 1 and -1 <= comp["spearman_rho"] <= 1
    for v in out["variants"]:
        # normalised fidelity: 1 is perfect, 0 a constant predictor, below 0 worse than one
        assert all(x is not None and x <= 1 for xs in v["fidelity"].values() for x in xs)
        assert v["seed_std"]["1"] is not None and v["seed_std"]["1"] >= 0
    # the seeds really differ (noise is measured, not zero) and the 2x budget trains differently
    # (whether 4 steps beat 2 is not a property of the recipe: its heads start at the constant)
    assert out["noise"]["sweep_seed_std"] > 0
    assert out["budgets"][1]["mean_fidelity"] != out["budgets"][0]["mean_fidelity"]
    assert (results / "short_vs_long.png").stat().st_size > 1000
    assert "Kendall" in (results / "validation.md").read_text()

    # an Optuna study like any sweep's: its own name, pipeline steps/seed as parameters
    import optuna

    study = optuna.load_study(study_name=out["study"], storage=out["storage"])
    steps = sorted({t.params["pipeline.steps"] for t in study.trials})
    assert steps == [2, 4] and {t.params["pipeline.seed"] for t in study.trials} == {0, 1}
    assert all(t.user_attrs["pipeline"]["steps"] == t.params["pipeline.steps"] for t in study.trials)

    # the same command resumes: nothing re-runs, same statistics
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert len(optuna.load_study(study_name=out["study"], storage=out["storage"]).trials) == 12
    assert again["comparisons"] == out["comparisons"]
    # analysing only (no Ray, nothing trained) gives the same statistics
    assert main(args + ["--no-train"]) == 0
    assert json.loads(capsys.readouterr().out)["comparisons"] == out["comparisons"]
    # a different plan on the same folder is refused, the folder untouched
    before = (results / "validation.json").read_bytes()
    assert main(args[:5] + ["1,3"] + args[6:]) == 2
    assert (results / "validation.json").read_bytes() == before

    # a sweep of the same space (and pipeline) now finds this noise
    from radio_nas.search.optuna_study import default_storage, open_study

    sweep = tmp_path / "smoke"
    open_study(load_space(SMOKE, {"pipeline.overrides.steps": 2}), sweep, default_storage(sweep))
    assert noise_threshold(sweep) == pytest.approx(2 * out["noise"]["sweep_seed_std"])
    assert math.isfinite(noise_threshold(sweep))


def _fake_sweep(folder: Path, space, rows: list[tuple[dict, tuple[float, float, float]]]) -> None:
    """A sweep study as radio_nas.search writes it, with trials told directly (nothing trained)."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    from radio_nas.search.optuna_study import default_storage, open_study
    from radio_nas.search.space import encode_choice

    study = open_study(space, folder, default_storage(folder))
    dists = {p.name: CategoricalDistribution([encode_choice(v) for v in p.dist.values]) for p in space.sampled}
    for params, values in rows:
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=dists,
                values=list(values),
                user_attrs={"status": "ok", "metrics": {"fidelity": values[0]}},
            )
        )


def test_from_takes_the_pareto_set_of_a_sweep(tmp_path: Path, tiny: Path) -> None:
    space = load_space(tiny)
    p = lambda w, m, b: {"arch.width": w, "arch.mra_pattern": m, "pipeline.balancing.method": b}
    a, b = "[[2, 1], [1]]", "[[1], [1]]"
    rows = [
        (p(16, a, "fixed"), (0.30, 0.01, 5.0)),  # front: cheapest
        (p(32, a, "fixed"), (0.50, 0.04, 9.0)),  # front: best fidelity
        (p(32, b, "fixed"), (0.40, 0.03, 7.0)),  # front: in between
        (p(32, b, "adaloss"), (0.35, 0.035, 8.0)),  # dominated by the one above (rank 2)
        (p(16, b, "adaloss"), (0.20, 0.02, 6.0)),
    ]  # dominated by the first (rank 2)
    sweep = tmp_path / "tiny"
    _fake_sweep(sweep, space, rows)
    plan = plan_validation(space, ValidateSettings(), from_dir=sweep)
    assert plan.origin_trials == (1, 2, 0)  # the whole front, best fidelity first
    assert plan.variants[0] == rows[1][0]
    plan = plan_validation(space, ValidateSettings(variants=4), from_dir=sweep)
    assert plan.origin_trials == (1, 2, 0, 3)  # filled from Pareto rank 2
    plan = plan_validation(space, ValidateSettings(variants=2), from_dir=sweep)
    assert plan.origin_trials == (1, 0)  # spread over the front: both ends
    # the sweep's own space copy is used when no space file is given; another space is refused
    from radio_nas.validate.run import _source_space

    assert _source_space(None, sweep, None).hash == space.hash
    with pytest.raises(ConfigError, match="different space"):
        plan_validation(load_space(tiny, {"pipeline.overrides.steps": 3}), ValidateSettings(), from_dir=sweep)
    with pytest.raises(ConfigError, match="no such results folder"):
        plan_validation(space, ValidateSettings(), from_dir=tmp_path / "nothing-here")
