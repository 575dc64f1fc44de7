"""depth_counts: `units` (published counting) against `layers` (patterns at equal depth)."""

import json

import pytest
import torch

from radio_nas.cli import main
from radio_nas.models import build_model, resolve_config

SPACE = {"preset": "xt", "width": 32, "depths": (1, 2, 3, 1), "head_dim": 16}


def _params(**fields) -> int:
    with torch.device("meta"):
        model = build_model({**SPACE, **fields})
    return sum(p.numel() for p in model.parameters())


def test_layers_applies_the_pattern_cyclically_over_depth_blocks():
    cfg = resolve_config({**SPACE, "depth_counts": "layers", "mra_pattern": [[2, 1, 1], [1]]})
    assert cfg.stage_ratios(3) == (2, 1, 1)
    assert resolve_config({**SPACE, "depth_counts": "layers"}).stage_ratios(3) == (2, 1, 2)
    assert resolve_config(
        {**SPACE, "depth_counts": "layers", "depths": [1, 2, 5, 1], "mra_pattern": [[2, 1, 1], [1, 2]]}
    ).stage_ratios(4) == (1,)
    with torch.device("meta"):
        model = build_model({**SPACE, "depth_counts": "layers", "mra_pattern": [[2, 1, 1], [1]]})
    assert [b.ratio for b in model.stages[2].blocks] == [2, 1, 1]


def test_units_is_the_default_and_keeps_the_reference_counting():
    cfg = resolve_config(SPACE)
    assert cfg.depth_counts == "units"
    assert cfg.stage_ratios(3) == (2, 1) * 3
    assert resolve_config({**SPACE, "mra_pattern": [[2, 1, 1], [1]]}).stage_ratios(3) == (2, 1, 1) * 3
    # the published E-RADIO-L count (reference notes §1) is a units count
    assert _params(preset="l-v2", width=192, depths=(3, 3, 5, 5), head_dim=96) == 389_598_784


def test_patterns_at_equal_depth_differ_only_by_resampling_convs():
    interleaved = _params(depth_counts="layers", mra_pattern=[[2, 1], [1]])
    plain = _params(depth_counts="layers", mra_pattern=[[1], [1]])
    assert plain < interleaved < 1.15 * plain
    # stage 3 (width 128) gains a conv k2 and a transposed conv k2 (with biases) per ratio-2 block
    assert interleaved - plain == 2 * 2 * (128 * 128 * 4 + 128)
    # counted in units, the same pattern doubles stage 3's blocks: not comparable at equal depth
    assert _params(mra_pattern=[[2, 1], [1]]) > 1.15 * _params(mra_pattern=[[1], [1]])


def test_profile_cli_shows_equal_depth_patterns_within_15_percent(capsys):
    def profile(pattern: str) -> int:
        assert (
            main(
                [
                    "profile",
                    "xt",
                    "--set",
                    "width=32",
                    "--set",
                    "depths=[1,2,3,1]",
                    "--set",
                    "head_dim=16",
                    "--set",
                    "depth_counts=layers",
                    "--set",
                    f"mra_pattern={pattern}",
                    "--resolution",
                    "64",
                    "--runs",
                    "1",
                    "--warmup",
                    "0",
                    "--json",
                ]
            )
            == 0
        )
        return json.loads(capsys.readouterr().out)["params"]

    interleaved, plain = profile("[[2,1],[1]]"), profile("[[1],[1]]")
    assert abs(interleaved - plain) / plain < 0.15


def test_bad_depth_counts_names_the_field():
    from radio_nas import ConfigError

    with pytest.raises(ConfigError, match="'units', 'layers'") as info:
        resolve_config({**SPACE, "depth_counts": "blocks"})
    assert info.value.key == "depth_counts"
