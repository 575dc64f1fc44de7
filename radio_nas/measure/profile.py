"""One variant's profile: size, compute, speed and memory, with the machine it was measured on."""

from __future__ import annotations

import platform
import warnings
from typing import Any

import torch

from radio_nas import __version__
from radio_nas._util import parse_resolution
from radio_nas.measure.flops import count_gmacs, count_params
from radio_nas.measure.latency import check_settings, measure_latency
from radio_nas.models.eradio import ERadio, WindowPaddingWarning


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import fvcore  # noqa: F401  (version via metadata)

    return {
        "radio_nas": __version__,
        "torch": torch.__version__,
        "fvcore": version("fvcore"),
        "python": platform.python_version(),
    }


def profile(
    spec: Any,
    resolution: Any = 224,
    batch_size: int = 1,
    device: str = "cpu",
    dtype: str = "fp32",
    channels_last: bool = False,
    runs: int = 50,
    warmup: int = 10,
    deploy: bool = True,
    weights: str | None = None,
    compile: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Params, GMACs (per image) and latency of the variant `spec` (preset, dict, YAML, config);
    `weights`: a torch checkpoint to load first (weights-only; published E-RADIO v2 names mapped);
    `compile`: time the deployed graph compiled by torch.compile (see :func:`measure_latency`)."""
    from radio_nas.models import build_model, resolve_config

    check_settings(device, dtype)
    cfg: Any = resolve_config(spec, **overrides)
    h, w = parse_resolution(resolution)
    cfg.check_input_size(h, w)
    with warnings.catch_warnings():  # padding is reported in the result instead
        warnings.simplefilter("ignore", WindowPaddingWarning)
        model = build_model(cfg, resolution=(h, w))
    if weights is not None:
        from radio_nas.models.published import load_weights

        load_weights(model, weights)
    gmacs = count_gmacs(model, (h, w))
    latency = measure_latency(model, (h, w), batch_size, device, dtype, channels_last, warmup, runs, deploy, compile)
    result = {
        "arch_id": cfg.id,
        "arch": cfg.to_dict(),
        "resolution": [h, w],
        "params": count_params(model),
        "gmacs": gmacs,
        "latency": latency.to_dict(),
        "versions": versions(),
        "weights": weights,
    }
    if isinstance(model, ERadio):  # the windows used, how a map they do not tile is fitted, which maps
        result["windows"] = list(model.window_sizes)
        result["window_fit"] = model.cfg.window_fit
        result["window_padding"] = model.cfg.window_padding(h, w)
        result["window_resizing"] = model.cfg.window_resizing(h, w)
    return result
