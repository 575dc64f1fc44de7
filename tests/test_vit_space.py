"""search_spaces/vitdet.yaml: the ViTDet ablation loads, has the intended design and runs a ViT."""

from __future__ import annotations

from pathlib import Path

import pytest

from radio_nas.models.vit import ViTConfig
from radio_nas.search.ablation import ablation_points, factors
from radio_nas.search.space import load_space

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "vitdet.yaml"


def test_vitdet_space_is_an_ofat_ablation_of_the_augmentation():
    space = load_space(SPACE)
    assert space.config.mode == "ablation"
    assert factors(space) == {"arch.vitdet_window_sizes": ([2, 4], [], [4]), "arch.vitdet_num_windowed": (2, 5)}
    points = ablation_points(space)
    assert len(points) == 4 * 3  # base + 3 other levels, 3 seeds each
    configs = {space.arch_config(space.sample(_Fixed(p))).id for p in points}
    assert len(configs) == 4
    off = space.arch_config({"arch.vitdet_window_sizes": [], "arch.vitdet_num_windowed": 2})
    assert isinstance(off, ViTConfig) and off.vitdet_window_sizes == ()
    h, w = space.pipeline.size
    off.check_input_size(h, w)
    grid = (h // off.patch_size, w // off.patch_size)
    for level in factors(space)["arch.vitdet_window_sizes"]:  # every listed window tiles the grid
        assert all(grid[0] % ws == 0 and grid[1] % ws == 0 and ws < min(grid) for ws in level)


@pytest.mark.slow
def test_vitdet_space_sweeps_a_tiny_vit_end_to_end(tmp_path):
    from radio_nas.search.sweep import run_sweep

    overrides = {
        "pipeline.overrides": {
            "steps": 3,
            "batch_size": 4,
            "resolution": 64,
            "data.train_size": 12,
            "data.eval_size": 8,
            "eval.knn": False,
            "eval.size": 8,
            "eval.every": 3,
        },
        "base": {"preset": "vit-t", "width": 32, "depth": 3, "num_heads": 2},
        "parameters": {"arch.vitdet_window_sizes": "choice([2], [])", "arch.vitdet_num_windowed": "choice(2, 5)"},
        "ablation.base": {},
        "ablation.seeds": 1,
        "objectives": [{"metric": "fidelity", "direction": "maximize"}],
    }
    out = run_sweep(SPACE, results_dir=tmp_path / "vitdet", num_cpus=2, progress=None, overrides=overrides)
    import optuna

    study = optuna.load_study(study_name=None, storage=out["storage"])
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 3  # base ([2], 2), off ([], 2), ([2], 5)
    for t in trials:
        assert t.user_attrs.get("status") == "ok", t.user_attrs.get("failure_reason")
        metrics = t.user_attrs["metrics"]
        assert metrics["fidelity"] <= 1 and 0 < metrics["fidelity_cos"] <= 1  # normalised and raw cosine


class _Fixed:
    """An Optuna-trial stand-in that replays one ablation point's encoded parameters."""

    def __init__(self, params):
        self.params = params

    def suggest_categorical(self, name, choices):
        assert self.params[name] in choices
        return self.params[name]
