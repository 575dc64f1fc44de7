"""Sizes counted before anything is allocated: exact parameter counts, refusals with the estimate."""

from __future__ import annotations

import time

import pytest

from radio_nas._config import ConfigError
from radio_nas.measure.size import check_fits, estimate_size
from radio_nas.models import build_model, resolve_config
from radio_nas.validate.plan import MAX_TRIALS, ValidateSettings


@pytest.mark.parametrize(
    "spec",
    [
        "xt",
        "t",
        "vit-t",
        {"preset": "xt", "width": 48, "depths": [1, 3, 5, 2], "head_dim": 16},  # deep stages extended
        {"preset": "t", "width": 160, "window_sizes": [4, 7]},  # windows shape buffers, not parameters
        {"preset": "vit-t", "width": 96, "num_heads": 3, "depth": 5},
    ],
    ids=str,
)
def test_parameters_are_counted_exactly(spec):
    cfg = resolve_config(spec)
    real = sum(p.numel() for p in build_model(cfg).parameters())
    assert estimate_size(cfg).params == real


def test_an_absurd_width_is_counted_without_building_it():
    t0 = time.perf_counter()
    est = estimate_size(resolve_config("xt", width=10**9), (224, 224))
    assert time.perf_counter() - t0 < 30
    # quadratic in the width: xt has 26.6 M parameters at width 64
    assert 10**20 < est.params < 10**23 and est.param_bytes == est.params * 4
    with pytest.raises(ConfigError, match=r"arch xt at 224x224, batch 1 would need about .* parameters"):
        check_fits(resolve_config("xt", width=10**9), (224, 224), what="arch xt")


def test_windows_grow_the_tables_not_the_parameters():
    small = estimate_size(resolve_config("xt"), (224, 224))
    huge = estimate_size(resolve_config("xt", window_sizes=[10**6, 10**6]), (224, 224))
    assert huge.params == small.params and huge.buffer_bytes > 10**20


def test_check_fits_against_a_limit_and_training_costs_more():
    cfg = resolve_config("xt")
    est = check_fits(cfg, (224, 224), limit=2**30)
    trained = estimate_size(cfg, (224, 224), 8, training=True)
    assert trained.param_bytes == 4 * est.param_bytes  # weights, gradients and two Adam moments
    assert trained.activation_bytes > est.activation_bytes
    with pytest.raises(ConfigError, match="this machine has 1 MiB"):
        check_fits(cfg, (224, 224), limit=2**20)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"seeds": 10**9}, "--seeds"),
        ({"variants": 10**9}, "--variants"),
        ({"variants": 200, "seeds": 30}, "--variants"),
    ],
)
def test_a_validation_queueing_too_many_trials_is_refused_before_planning(kwargs, key):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=f"at most {MAX_TRIALS:,}") as exc:
        ValidateSettings(**kwargs)
    assert exc.value.key == key and time.perf_counter() - t0 < 1
    ValidateSettings(variants=100, seeds=50)  # 10,000 trials: the limit itself is allowed
