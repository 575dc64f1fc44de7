"""Student model families, their configs and presets.

    from radio_nas.models import resolve_config, build_model
    cfg = resolve_config("t", window_sizes=[4, 7])     # preset + overrides, validated
    cfg.id                                            # stable content hash
    model = build_model(cfg)                          # or build_model("t"), build_model("arch.yaml")

A config source is a preset name, a mapping (``{"preset": "t", "width": 96}`` or full fields), a
YAML file holding such a mapping (or an exported variant with an ``arch:`` section), or a config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from radio_nas._config import Config, ConfigError, load_yaml
from radio_nas.models.deploy import compile_deployed, deploy_model, fuse_conv_bn
from radio_nas.models.eradio import PRESETS as ERADIO_PRESETS
from radio_nas.models.eradio import ERadio, ERadioConfig, optimal_window_size
from radio_nas.models.vit import PRESETS as VIT_PRESETS
from radio_nas.models.vit import ViT, ViTConfig

ArchConfig = ERadioConfig | ViTConfig
"""An architecture config of the built-in families (what :func:`resolve_config` gives for them)."""


class Family(NamedTuple):
    config: type[Config]
    model: type[nn.Module]
    presets: dict[str, dict[str, Any]]


FAMILIES: dict[str, Family] = {
    "eradio": Family(ERadioConfig, ERadio, ERADIO_PRESETS),
    "vit": Family(ViTConfig, ViT, VIT_PRESETS),
}


def register_family(name: str, family: Family) -> None:
    """Add a student family (its config must have a ``family`` field defaulting to ``name``)."""
    clash = set(family.presets) & set(preset_names())
    if clash:
        raise ValueError(f"preset names already taken: {sorted(clash)}")
    FAMILIES[name] = family


def preset_names() -> list[str]:
    return [name for fam in FAMILIES.values() for name in fam.presets]


def resolve_config(spec: Any, **overrides: Any) -> Config:
    """A validated architecture config from a preset name, mapping, YAML path or config."""
    file = None
    if isinstance(spec, Config):
        data: dict[str, Any] = spec.to_dict()
    elif isinstance(spec, dict):
        data = dict(spec)
    elif isinstance(spec, (str, Path)) and str(spec) in preset_names():
        data = {"preset": str(spec)}
    elif isinstance(spec, (str, Path)) and (Path(spec).suffix in (".yaml", ".yml") or Path(spec).exists()):
        file = spec
        data = load_yaml(spec)
        if isinstance(data.get("arch"), dict):  # an exported variant
            data = dict(data["arch"])
    else:
        raise ConfigError(
            f"unknown preset or file {str(spec)!r}; expected one of {', '.join(preset_names())} or a .yaml file",
            key="arch",
        )
    try:
        return _from_mapping({**data, **overrides})
    except ConfigError as exc:
        raise exc.within(file=file) from None


def build_model(spec: Any, *, resolution: tuple[int, int] | None = None, **overrides: Any) -> nn.Module:
    """Build the student described by `spec` (see :func:`resolve_config`).

    `resolution` (H, W) is the input size it will run at: E-RADIO's ``window_sizes: auto`` are
    chosen from it (a model also adapts on the first forward at another size)."""
    cfg = resolve_config(spec, **overrides)
    model = FAMILIES[cfg.family].model(cfg)  # type: ignore[attr-defined]
    if resolution is not None:
        cfg.check_input_size(*resolution)  # type: ignore[attr-defined]
        set_input_size = getattr(model, "set_input_size", None)
        if callable(set_input_size):
            set_input_size(*resolution)
    return model


def _from_mapping(data: dict[str, Any]) -> Config:
    data = dict(data)
    preset = data.pop("preset", None)
    family_name = data.get("family")
    if preset is not None:
        owner = next((n for n, f in FAMILIES.items() if preset in f.presets), None)
        if owner is None:
            raise ConfigError(f"unknown preset {preset!r}; expected one of {', '.join(preset_names())}", key="preset")
        if family_name not in (None, owner):
            raise ConfigError(f"preset {preset!r} belongs to family {owner!r}", key="family")
        family_name = owner
        data = {**FAMILIES[owner].presets[preset], **data}
    family_name = family_name or "eradio"
    if family_name not in FAMILIES:
        raise ConfigError(f"unknown family {family_name!r}; expected one of {', '.join(FAMILIES)}", key="family")
    return FAMILIES[family_name].config.from_dict(data)


__all__ = [
    "FAMILIES",
    "ArchConfig",
    "ERadio",
    "ERadioConfig",
    "Family",
    "ViT",
    "ViTConfig",
    "build_model",
    "compile_deployed",
    "deploy_model",
    "fuse_conv_bn",
    "optimal_window_size",
    "preset_names",
    "register_family",
    "resolve_config",
]
