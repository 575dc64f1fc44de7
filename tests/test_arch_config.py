"""Architecture config: round trips, stable ids, overrides and every validation error."""

import pytest
import yaml

from radio_nas import ConfigError
from radio_nas._config import dump_yaml, stable_id
from radio_nas.models import resolve_config


def test_round_trip_through_dict_and_yaml(tmp_path):
    cfg = resolve_config("t", window_sizes=[4, 7], mra_pattern=[[2, 1, 1], [1]])
    assert resolve_config(cfg.to_dict()) == cfg
    path = tmp_path / "arch.yaml"
    path.write_text(dump_yaml(cfg.to_dict()))
    again = resolve_config(path)
    assert again == cfg and again.id == cfg.id


def test_id_is_stable_and_content_keyed():
    cfg = resolve_config("t")
    assert cfg.id == stable_id(cfg.id_payload())
    assert cfg.id == resolve_config({"preset": "t"}).id == resolve_config({"width": 80}).id
    assert resolve_config("t", width=96).id != cfg.id
    assert hash(cfg) == hash(resolve_config("t"))


def test_preset_with_overrides_from_yaml_and_exported_variant(tmp_path):
    (tmp_path / "a.yaml").write_text("preset: xt\nwidth: 32\nhead_dim: 16\n")
    cfg = resolve_config(tmp_path / "a.yaml")
    assert cfg.width == 32 and cfg.depths == (1, 3, 4, 5)
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"arch": cfg.to_dict(), "metrics": {"fidelity": 0.5}}))
    assert resolve_config(tmp_path / "b.yaml") == cfg


@pytest.mark.parametrize(
    "overrides,key,text",
    [
        ({"widht": 64}, "widht", "did you mean 'width'"),
        ({"width": 0}, "width", "positive"),
        ({"width": "wide"}, "width", "expected an integer"),
        ({"head_dim": 48}, "head_dim", "not divisible by head_dim 48"),
        ({"depths": [1, 0, 4, 5]}, "depths[1]", ">= 1"),
        ({"depths": [1, 3, 4]}, "depths", "4 items"),
        ({"window_sizes": [0, 7]}, "window_sizes[0]", ">= 1"),
        ({"mra_pattern": [[], [1]]}, "mra_pattern[0]", "empty"),
        ({"mra_pattern": [[2, 0], [1]]}, "mra_pattern[0]", ">= 1"),
        ({"fusion": "pixelshuffle"}, "fusion", "'deconv', 'neck'"),
        ({"pre_conv": True}, "pre_conv", "'none', 'dense', 'depthwise'"),
        ({"output_dim": -1}, "output_dim", "positive"),
        ({"preset": "huge"}, "preset", "expected one of xt, t"),
    ],
)
def test_validation_errors_name_the_field(overrides, key, text):
    with pytest.raises(ConfigError) as info:
        resolve_config({"preset": "t", **overrides})
    assert info.value.key == key
    assert text in str(info.value)
    assert "\n" not in str(info.value)


def test_errors_in_a_file_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("preset: t\nwindow_sizes: [7, seven]\n")
    with pytest.raises(ConfigError) as info:
        resolve_config(path)
    assert str(path) in str(info.value) and "window_sizes[1]" in str(info.value)
    (tmp_path / "broken.yaml").write_text("width: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_config(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="no such file"):
        resolve_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "size,key,text",
    [
        ((230, 224), "resolution", "multiples of 32"),
        ((0, 224), "resolution", "multiples of 32"),
    ],
)
def test_bad_resolutions(size, key, text):
    with pytest.raises(ConfigError, match=text) as info:
        resolve_config("t").check_input_size(*size)
    assert info.value.key == key


def test_ratio_that_does_not_divide_the_map_is_rejected():
    cfg = resolve_config("t", mra_pattern=[[4, 1], [1]])
    cfg.check_input_size(256, 256)  # stage 3 is 16x16: 4 divides it
    with pytest.raises(ConfigError, match="ratio 4 does not divide the stage-3 map 14x14") as info:
        cfg.check_input_size(224, 224)
    assert info.value.key == "mra_pattern[0]"
