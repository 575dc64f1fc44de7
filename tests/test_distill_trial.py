"""End-to-end distillation trials with a tiny student and the real bundled ONNX teacher."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from radio_nas._config import ConfigError, dump_yaml
from radio_nas.cli import main
from radio_nas.distill import load_pipeline, run_trial

ROOT = Path(__file__).resolve().parents[1]
TINY = {"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16, "cpb_hidden": 16}
# The default recipe (constant-start heads, MSE on PHI-S targets, lr 3e-4) at a length where the
# tiny student learns something that holds on photos never trained on; the data keys are the
# ones the untrained run uses too, so both share one teacher cache entry.
DATA = {"data.train_size": 480, "data.eval_size": 64}
TRAINED = {"steps": 120, "eval.every": 60, "optim.lr": 3e-4, "optim.warmup_steps": 10, **DATA}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("teacher-cache")


def tiny(cache_dir, **overrides):
    base = {
        "resolution": 64,
        "batch_size": 8,
        "steps": 4,
        "data.train_size": 32,
        "data.eval_size": 16,
        "eval.size": 8,
        "eval.every": 2,
        "eval.knn_train_size": 16,
        "eval.batch_size": 16,
        "optim.lr": 0.003,
        "optim.warmup_steps": 0,
        "cache.dir": str(cache_dir),
        "adaptor.hidden": 64,
    }
    return load_pipeline(ROOT / "pipelines/distill_cpu.yaml", {**base, **overrides})


@pytest.mark.slow
def test_tiny_student_beats_the_constant_on_unseen_photos_and_warm_trial_runs_no_teacher(cache_dir, monkeypatch):
    before = run_trial(tiny(cache_dir, steps=0, **DATA), TINY)
    assert before.ok and before.cache_hit is False and before.time_teacher_s > 0
    terms = [f"fidelity/{t}/{m}" for t in ("rn50_s16", "rn50_s32") for m in ("summary", "features")]
    # adaptor.init constant: untrained, the heads predict the constant exactly, on every term
    assert all(abs(before.scores[k]) < 1e-6 for k in terms), before.scores
    reports = []
    # warm from here on: any teacher construction or forward pass is an error
    import radio_nas.distill.teachers as teachers_mod
    import radio_nas.distill.trial as trial_mod

    def no_teacher(*a, **k):
        raise AssertionError("a warm trial must not run a teacher")

    monkeypatch.setattr(trial_mod, "build_teachers", no_teacher)
    monkeypatch.setattr(teachers_mod.Teacher, "__call__", no_teacher)
    monkeypatch.setattr(teachers_mod._OnnxRunner, "__init__", no_teacher)
    after = run_trial(tiny(cache_dir, **TRAINED), TINY, report=reports.append)
    assert after.ok, after.failure_reason
    assert after.cache_hit is True and after.time_teacher_s < 1.0
    print("fidelity trained", after.fidelity, after.scores)
    # measured on this recipe: 0.025, 0.026, 0.032 over seeds 0-2, every term > 0
    assert after.fidelity > 0.015
    assert all(after.scores[k] > 0 for k in terms), after.scores
    # one batch's MSE is noisy; over 20 batches the loss falls
    assert np.mean(after.loss_curve[-20:]) < np.mean(after.loss_curve[:20])
    assert after.knn_accuracy is None  # photos are held out whole: no labels to match
    # a different trial seed re-uses the same teacher cache (crops are seeded by data.seed)
    other = run_trial(tiny(cache_dir, seed=5, steps=1, **DATA), TINY)
    assert other.ok and other.cache_hit is True


def test_reports_and_learning_curve_at_every_eval_step(cache_dir):
    reports = []
    r = run_trial(
        tiny(cache_dir, steps=4, batch_size=4, **{"eval.every": 2, "eval.knn": False}), TINY, report=reports.append
    )
    assert r.ok, r.failure_reason
    assert [m["step"] for m in reports] == [2, 4]
    assert [(p.step, p.fidelity) for p in r.fidelity_curve] == [(m["step"], m["fidelity"]) for m in reports]
    assert reports[-1]["fidelity"] == r.fidelity  # the last report carries the final evaluation
    seconds = [m["seconds"] for m in reports]
    assert 0 < seconds[0] < seconds[1] == r.fidelity_curve[-1].seconds <= r.seconds
    assert r.seconds < r.wall_s  # the clock leaves out the teacher cache and the model build
    assert r.steps == 4 and len(r.loss_curve) == 4
    # steps that are not a multiple of eval.every: the final evaluation still closes the curve
    r = run_trial(tiny(cache_dir, steps=3, batch_size=4, **{"eval.every": 2, "eval.knn": False}), TINY)
    assert [p.step for p in r.fidelity_curve] == [2, 3]
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))  # one flat strict-JSON object
    assert d["fidelity_curve"][-1] == {"step": 3, "fidelity": r.fidelity, "seconds": r.fidelity_curve[-1].seconds}
    assert d["fidelity/rn50_s32/features"] == r.scores["fidelity/rn50_s32/features"] and d["steps"] == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.fidelity = 1.0  # type: ignore[misc]


@pytest.mark.slow
def test_one_step_default_trial_is_no_better_than_a_constant(tmp_path, capsys):
    """The documented check: `radio-nas trial pipelines/distill_cpu.yaml --arch xt --set steps=1 --json`."""
    args = [
        "trial",
        str(ROOT / "pipelines/distill_cpu.yaml"),
        "--arch",
        "xt",
        "--json",
        "--quiet",
        "--set",
        "steps=1",
        "--set",
        f"cache.dir={tmp_path}",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    print("1-step fidelity", out["fidelity"], "cos", out["fidelity_cos"])
    assert out["status"] == "ok" and out["fidelity"] <= 0.05


def test_same_seed_same_numbers_and_weights_saved(cache_dir, tmp_path):
    p = tiny(cache_dir, steps=2, **{"eval.every": 0, "eval.knn": False, "data.eval_size": 8})
    a = run_trial(p, TINY, weights_path=tmp_path / "w.safetensors")
    b = run_trial(p, TINY)
    assert a.ok and b.ok
    assert a.loss_curve == b.loss_curve and a.fidelity == b.fidelity
    c = run_trial(p.replace(seed=1), TINY)
    assert c.loss_curve != a.loss_curve
    from safetensors.torch import load_file, safe_open

    tensors = load_file(a.weights_path)
    assert any(k.startswith("model.") for k in tensors) and any(k.startswith("adaptors.rn50_s16.") for k in tensors)
    with safe_open(a.weights_path, "pt") as fh:
        assert json.loads(fh.metadata()["arch"])["width"] == 16


@pytest.mark.parametrize("method", ["fixed", "uncertainty", "uncertainty_static", "adaloss"])
def test_every_balancing_method_trains(cache_dir, method):
    reports = []
    r = run_trial(
        tiny(
            cache_dir,
            steps=2,
            batch_size=4,
            **{"balancing.method": method, "eval.every": 1, "eval.knn": False, "eval.size": 4},
        ),
        TINY,
        report=reports.append,
    )
    assert r.ok, r.failure_reason
    assert all(np.isfinite(r.loss_curve)) and len(reports) == 2
    lam = {k: v for k, v in reports[0].items() if k.startswith("lambda/")}
    assert len(lam) == 4
    if method in ("fixed", "uncertainty"):
        assert all(v == pytest.approx(1.0) for v in lam.values())  # fixed weights 1; b starts at 0
    if method == "uncertainty_static":
        assert all(v == pytest.approx(0.5) for v in lam.values())


def test_nan_loss_and_exceptions_fail_the_trial_not_the_caller(cache_dir, monkeypatch):
    import radio_nas.distill.trial as trial_mod

    real = trial_mod.mse_loss  # the default recipe's loss
    monkeypatch.setattr(trial_mod, "mse_loss", lambda p, t: real(p, t) * float("nan"))
    r = run_trial(tiny(cache_dir, steps=2), TINY)
    assert r.status == "failed" and "non-finite loss" in r.failure_reason and "step 1" in r.failure_reason
    assert r.fidelity is None and r.to_dict()["fidelity/rn50_s16/summary"] is None
    json.dumps(r.to_dict(), allow_nan=False)

    def broken(s, t):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(trial_mod, "mse_loss", broken)
    r = run_trial(tiny(cache_dir, steps=2), TINY)
    assert r.status == "failed" and "RuntimeError: out of memory (simulated)" in r.failure_reason


def test_config_errors_raise_before_training(cache_dir):
    with pytest.raises(ConfigError, match="mra_pattern.*ratio 4 does not divide"):
        run_trial(tiny(cache_dir, resolution=96), {**TINY, "mra_pattern": [[4, 1], [1]]})
    with pytest.raises(ConfigError, match="arch"):
        run_trial(tiny(cache_dir), "no-such-preset")
    with pytest.raises(
        ConfigError, match=r"teachers\.rn50_s32\.features\.output: open-nsfw.onnx has no tensor 'Add_77:0'"
    ):
        run_trial(tiny(cache_dir, **{"teachers.rn50_s32.features.output": "Add_77:0"}), TINY)


def test_trial_cli_json(cache_dir, tmp_path, capsys):
    arch = tmp_path / "tiny.yaml"
    arch.write_text(dump_yaml(TINY))
    args = ["trial", str(ROOT / "pipelines/distill_cpu.yaml"), "--arch", str(arch), "--json", "--quiet"]
    sets = [
        "resolution=64",
        "steps=1",
        "batch_size=4",
        "data.train_size=32",
        "data.eval_size=16",
        f"cache.dir={cache_dir}",
        "eval.knn=false",
        "adaptor.hidden=64",
    ]
    assert main(args + [x for s in sets for x in ("--set", s)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["steps"] == 1 and "fidelity/rn50_s32/features" in out
    assert [p["step"] for p in out["fidelity_curve"]] == [1]
    assert main(args + ["--set", "balancing.method=nope"]) == 2
    assert "balancing.method: expected one of" in capsys.readouterr().err


def test_bf16_autocast_option(cache_dir):
    r = run_trial(tiny(cache_dir, steps=1, batch_size=4, **{"student.amp": True, "eval.knn": False}), TINY)
    assert r.ok, r.failure_reason
    assert np.isfinite(r.loss_curve[0]) and np.isfinite(r.fidelity)


def test_constant_predictor_baseline_on_hand_numbers():
    from radio_nas.distill.cache import CacheEntry
    from radio_nas.distill.targets import entry_stats
    from radio_nas.distill.trial import _constant_baseline, normalised_fidelity

    def entry(summary, features):
        return CacheEntry("k", None, {}, np.array(summary, np.float16), np.array(features, np.float16))

    # train: summaries (1, 0) and (0, 1) -> mean (0.5, 0.5); 2-channel 1x2 feature maps whose
    # per-position mean is (1, 0) at token 0 and (0, 1) at token 1
    train = entry([[1, 0], [0, 1]], [[[[2, 0]], [[0, 2]]], [[[0, 0]], [[0, 0]]]])
    evals = entry([[1, 1], [1, -1]], [[[[1, 1]], [[0, 1]]]] * 2)
    base = _constant_baseline({"t": entry_stats(train)}, {"t": evals}, beta=2.0, chunk=1)
    assert base["t/summary"].tolist() == pytest.approx([1.0, 0.0])  # cos((.5,.5),(1,1)), cos(.,(1,-1))
    # token 0: constant (1, 0) vs (1, 0) -> cos 1; token 1: (0, 1) vs (1, 1) -> cos 1/sqrt(2)
    assert base["t/features"].tolist() == pytest.approx([(1 + 2**-0.5) / 2] * 2)
    # SmoothL1(beta=2) per element: token 0 |0|,|0|; token 1 |1| -> 0.25, |0| -> 0: mean 0.25 / 4
    assert base["t/smooth_l1"].tolist() == pytest.approx([0.0625] * 2)
    assert normalised_fidelity(0.8, 0.6) == pytest.approx(0.5)
    assert normalised_fidelity(0.6, 0.6) == 0.0 and normalised_fidelity(1.0, 0.3) == pytest.approx(1.0)
    assert normalised_fidelity(0.2, 0.6) < 0  # worse than the constant


def test_fidelity_is_the_mean_normalised_score_over_terms(cache_dir):
    r = run_trial(tiny(cache_dir, steps=2, batch_size=4, **{"eval.every": 0, "eval.knn": False}), TINY).to_dict()
    assert r["status"] == "ok", r["failure_reason"]
    terms = [f"{t}/{m}" for t in ("rn50_s16", "rn50_s32") for m in ("summary", "features")]
    for k in terms:
        cos, base = r[f"fidelity_cos/{k}"], r[f"fidelity_baseline/{k}"]
        assert r[f"fidelity/{k}"] == pytest.approx((cos - base) / (1 - base))
    assert r["fidelity"] == pytest.approx(np.mean([r[f"fidelity/{k}"] for k in terms]))
    assert r["fidelity_cos"] == pytest.approx(np.mean([r[f"fidelity_cos/{k}"] for k in terms]))
    assert r["feature_smooth_l1"] == pytest.approx(
        np.mean([r["feature_smooth_l1/rn50_s16"], r["feature_smooth_l1/rn50_s32"]])
    )


def test_init_weights_warm_start_from_a_trial_or_the_published_layout(cache_dir, tmp_path):
    import torch
    from safetensors.torch import load_file
    from test_models_published import SMALL, _random_state, published_layout

    from radio_nas.models import resolve_config
    from radio_nas.models.published import map_published_state_dict

    p = tiny(cache_dir, steps=2, **{"eval.every": 0, "eval.knn": False, "data.eval_size": 8})
    first = run_trial(p, TINY, weights_path=tmp_path / "first.safetensors")
    # zero steps from the first trial's file: the student is exactly what that trial saved
    warm = p.replace(steps=0, student=p.student.replace(init_weights=first.weights_path))
    again = run_trial(warm, TINY, weights_path=tmp_path / "again.safetensors")
    assert again.ok, again.failure_reason
    saved, loaded = load_file(first.weights_path), load_file(again.weights_path)
    student_keys = [k for k in saved if k.startswith("model.")]
    assert student_keys and all(torch.equal(saved[k], loaded[k]) for k in student_keys)
    # the published E-RADIO v2 names, mapped onto a units-counted v2 config
    published = _random_state(published_layout(32, 32, (1, 3, 4, 5), (8, 16), 256))
    ckpt = tmp_path / "eradio_small.pth.tar"
    torch.save({"state_dict": {f"base_model.{k}": v for k, v in published.items()}}, ckpt)
    arch = {**SMALL, "pretrained_window": 16}
    from_published = p.replace(steps=0, student=p.student.replace(init_weights=str(ckpt)))
    run = run_trial(from_published, arch, weights_path=tmp_path / "pub.safetensors")
    assert run.ok, run.failure_reason
    loaded = load_file(run.weights_path)
    for name, tensor in map_published_state_dict(published, resolve_config(arch)).items():
        assert torch.equal(loaded[f"model.{name}"], tensor), name


def test_init_weights_that_do_not_fit_fail_in_one_line_before_training(cache_dir, tmp_path):
    import torch
    from test_models_published import SMALL, _random_state, published_layout

    p = tiny(cache_dir, steps=1, **{"eval.every": 0, "eval.knn": False, "data.eval_size": 8})
    first = run_trial(p.replace(steps=0), TINY, weights_path=tmp_path / "tiny.safetensors")

    def warm(path):
        return p.replace(student=p.student.replace(init_weights=str(path)))

    mismatch = r"tiny\.safetensors: student\.init_weights: \S+ has shape \(64,\), the architecture needs \(96,\)"
    with pytest.raises(ConfigError, match=mismatch):
        run_trial(warm(first.weights_path), {**TINY, "width": 24})
    with pytest.raises(ConfigError, match="no such file"):
        run_trial(warm(tmp_path / "missing.safetensors"), TINY)
    ckpt = tmp_path / "published.pt"
    torch.save(_random_state(published_layout(32, 32, (1, 3, 4, 5), (8, 16), 256)), ckpt)
    with pytest.raises(ConfigError, match="needs pretrained_window: 16"):
        run_trial(warm(ckpt), SMALL)
    with pytest.raises(ConfigError, match=r"maps to stages\.2\.blocks\.\d+.*does not have"):
        run_trial(warm(ckpt), {**SMALL, "pretrained_window": 16, "depths": [1, 3, 3, 5]})
    with pytest.raises(ConfigError, match="student.init_weights"):
        load_pipeline(ROOT / "pipelines/distill_cpu.yaml", {"student.init_weights": 3})
