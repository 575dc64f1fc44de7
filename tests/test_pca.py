"""PCA pictures: shape and value range for square and non-square inputs, determinism, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

TINY = {"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16}


@pytest.mark.parametrize("resolution", [(64, 64), (64, 128), (96, 64)])
def test_student_pca_shape_and_range(resolution: tuple[int, int]) -> None:
    from radio_nas.models import build_model
    from radio_nas.report.pca import StudentFeatures, feature_pictures, load_image

    torch.manual_seed(0)
    model = StudentFeatures(build_model(TINY))
    image = load_image("skimage:chelsea")  # 300x451, non-square
    pictures = feature_pictures({"s": model}, image, resolution)
    rgb = pictures["s"]
    assert rgb.shape == (resolution[0] // 16, resolution[1] // 16, 3)
    assert rgb.dtype == np.float32 and rgb.min() >= 0.0 and rgb.max() <= 1.0
    assert rgb.std() > 0.01  # not a constant picture
    again = feature_pictures({"s": model}, image, resolution)["s"]
    assert np.array_equal(rgb, again)  # deterministic signs and scaling


def test_student_input_matches_the_trials() -> None:
    """The PCA pictures feed the student exactly as the distillation trials do."""
    from radio_nas.distill import trial
    from radio_nas.report.pca import StudentFeatures

    wrapped = StudentFeatures(torch.nn.Identity())
    assert torch.allclose(wrapped.mean, trial._MEAN) and torch.allclose(wrapped.std, trial._STD)


def test_pca_recovers_planted_components() -> None:
    from radio_nas.report.pca import pca_rgb

    h, w, d = 8, 12, 32
    rng = np.random.default_rng(0)
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    directions = np.linalg.qr(rng.normal(size=(d, 3)))[0]  # orthonormal
    fields = np.stack([3 * xx, 2 * yy, xx * yy], axis=-1)  # decreasing variance
    feats = (fields.reshape(-1, 3) @ directions.T).T.reshape(d, h, w) + 1e-3 * rng.normal(size=(d, h, w))
    rgb = pca_rgb(feats, clip=0.0)
    # each channel is an increasing affine map of +-(its planted field), scaled to [0, 1]
    for c in range(3):
        corr = np.corrcoef(rgb[..., c].ravel(), fields[..., c].ravel())[0, 1]
        assert abs(corr) > 0.99
    assert rgb.min() == pytest.approx(0.0) and rgb.max() == pytest.approx(1.0)


def test_bad_inputs_raise_config_errors(tmp_path: Path) -> None:
    from radio_nas._config import ConfigError
    from radio_nas._util import parse_resolution
    from radio_nas.report.pca import load_image

    assert parse_resolution("256x384") == (256, 384) and parse_resolution("224") == (224, 224)
    with pytest.raises(ConfigError, match="--resolution"):
        parse_resolution("big", key="--resolution")
    with pytest.raises(ConfigError, match="no such image"):
        load_image(tmp_path / "none.jpg")
    (tmp_path / "junk.png").write_text("not a picture")
    with pytest.raises(ConfigError, match="cannot read"):
        load_image(tmp_path / "junk.png")


def test_viz_cli_with_teacher_non_square(tmp_path: Path, capsys) -> None:
    """Student and the offline ONNX teacher (opennsfw ResNet-50) side by side, 64x96 input."""
    from radio_nas._config import dump_yaml
    from radio_nas.cli import main

    arch = tmp_path / "arch.yaml"
    arch.write_text(dump_yaml(TINY))
    out = tmp_path / "pca.png"
    assert (
        main(
            [
                "viz",
                "pca",
                str(arch),
                "--image",
                "skimage:astronaut",
                "--resolution",
                "64x96",
                "--pipeline",
                "distill_cpu",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    info = json.loads(capsys.readouterr().out)
    assert info["pictures"]["student"] == [4, 6, 3]
    teachers = [k for k in info["pictures"] if k.startswith("teacher")]
    assert teachers and all(info["pictures"][k][2] == 3 for k in teachers)
    assert out.is_file() and out.stat().st_size > 1000
    assert main(["viz", "pca", str(arch), "--resolution", "70x96", "--out", str(out)]) == 2
    assert "multiples of 32" in capsys.readouterr().err
