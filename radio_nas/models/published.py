"""Load the published E-RADIO v2 weights (NVlabs/RADIO ``e-radio_v2``) into the ``l-v2`` preset.

The published state dict names follow the reference code's modules (reference notes §1.8); the
mapping below is a table of name patterns, one row per module kind, and every tensor's shape is
checked. The position-bias MLP was trained at window 16: the preset normalises the bias
coordinates by that window (``pretrained_window: 16``), so the weights give the reference's bias
at any window. :func:`load_published_eradio` builds the model the reference's hub entry returns:
window 16 at every resolution and the reference's ``window_fit: resize`` (a map the windows do not
tile is resized, nearest, to a multiple and back); ``window_sizes="auto"`` and
``window_fit="pad_mask"`` give radio-nas's own choices instead (7 at 224, padded and masked).
The ``eradio_xxxtiny_8x_*`` layout (pooled resampling, depthwise pre-conv) loads into a config
with ``mra_resample: pool`` and ``pre_conv: depthwise``, except its stride-8 neck (``_ws16``).

    model = load_published_eradio("eradio_v2.pth.tar")          # l-v2, eval mode
    ours = map_published_state_dict(published, resolve_config("l-v2"))
    state = student_state_dict("eradio_v2.pth.tar", resolve_config("l-v2"))  # or a trial's safetensors

:func:`student_state_dict` is what ``profile --weights``, ``export --checkpoint`` and the pipeline's
``student.init_weights`` (warm start) read: published names mapped, our own names checked.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from radio_nas._config import ConfigError

PUBLISHED_WINDOW = 16
"""The window the published v2 weights were trained at (``eradio_large_fullres_ws16``)."""

PREFIXES = ("base_model.", "model.", "module.")
"""Prefixes the published checkpoints put before the backbone's names (RADIO's hubconf: ``base_model.``)."""

# published module path (regex) -> our module path; the parameter name after it is kept, except
# that the reference's conv-BN pairs (``conv``/``bn``) are our Sequential's items 0 and 1 ({cb}).
# {stem}: stem conv 0 or 2 -> 0 or 1; {down}: the reference's level i downsamples *after* stage i,
# ours before stage i + 1; {block}: unit u, block k of a units-counted stage -> u * len(pattern) + k.
_ATTN = r"levels\.(?P<s>[23])\.blocks\.(?P<u>\d+)\.attention_blocks\.(?P<k>\d+)\."
_TABLE: tuple[tuple[str, str], ...] = (
    (r"patch_embed\.conv_down\.(?P<i>[02])\.(?P<cb>conv|bn)", "stem.{stem}.{cb}"),
    (
        r"levels\.(?P<s>[01])\.blocks\.(?P<part>cv1|cv2|m\.\d+\.cv1|m\.\d+\.cv2)\.(?P<cb>conv|bn)",
        "stages.{s}.blocks.{part}.{cb}",
    ),
    (r"levels\.(?P<s>[012])\.downsample\.reduction\.(?P<cb>conv|bn)", "stages.{down}.downsample.{cb}"),
    (_ATTN + r"downsample_op", "stages.{s}.blocks.{block}.subsample"),
    (_ATTN + r"upsample_op", "stages.{s}.blocks.{block}.upsample"),
    # pooled resampling (conv_base False): AvgPool -> 1x1 conv-BN ``downsample_mixer``, nearest ->
    # 1x1 conv-BN ``upsample_op``; ours: subsample / upsample = (pool or upsample, conv-BN)
    (_ATTN + r"downsample_mixer\.(?P<cb>conv|bn)", "stages.{s}.blocks.{block}.subsample.1.{cb}"),
    (_ATTN + r"upsample_op\.(?P<cb>conv|bn)", "stages.{s}.blocks.{block}.upsample.1.{cb}"),
    (_ATTN + r"pre_conv\.(?P<cb>conv|bn)", "stages.{s}.blocks.{block}.pre_conv.{cb}"),
    (_ATTN + r"(?P<n>norm1|norm2)", "stages.{s}.blocks.{block}.block.{n}"),
    (_ATTN + r"attn\.(?P<n>qkv|proj)", "stages.{s}.blocks.{block}.block.attn.{n}"),
    (_ATTN + r"attn\.pos_emb_funct\.cpb_mlp\.(?P<j>[02])", "stages.{s}.blocks.{block}.block.attn.pos_bias.mlp.{j}"),
    (_ATTN + r"mlp\.fc1", "stages.{s}.blocks.{block}.block.mlp.0"),
    (_ATTN + r"mlp\.fc2", "stages.{s}.blocks.{block}.block.mlp.2"),
    (r"high_res_neck\.neck_features_proj\.(?P<b>[01])\.conv1", "fusion.proj.{b}.1"),
    (r"high_res_neck\.neck_features_proj\.(?P<b>[01])\.norm", "fusion.proj.{b}.2"),
    (r"high_res_neck\.neck_features_proj\.(?P<b>[01])\.conv2", "fusion.proj.{b}.3"),
)
_LEAF = r"\.(?P<leaf>weight|bias|running_mean|running_var|num_batches_tracked)"
_COMPILED = tuple((re.compile(pattern + _LEAF + "$"), target) for pattern, target in _TABLE)
_DROPPED = re.compile(
    r"(.*\.relative_(coords_table|position_index|bias)"  # position-bias tables: rebuilt per window
    r"|norm\..*|head\..*)$"
)  # final BN and classifier: Identity in RADIO (create_model_from_args)
_NECK_FROM_STAGE_2 = re.compile(r"high_res_neck\.neck_features_proj\.2\.")  # a third branch: neck_start_stage 1


def checkpoint_window(published: Mapping[str, Any]) -> int:
    """The window a published state dict's attention was built at, from its position-bias tables
    (``relative_coords_table``, shape (1, 2ws - 1, 2ws - 1, 2)); :data:`PUBLISHED_WINDOW` if it has none."""
    tables = {k: v for k, v in _strip_prefix(_unwrap(dict(published))).items() if k.endswith(".relative_coords_table")}
    sides = {int(v.shape[-2]) for v in tables.values()}
    if not sides:
        return PUBLISHED_WINDOW
    if len(sides) > 1:
        raise ConfigError(
            f"position-bias tables of {len(sides)} different windows; expected one window for every block",
            key=next(iter(tables)),
        )
    return (sides.pop() + 1) // 2


def _check_layout(published: Mapping[str, torch.Tensor], cfg: Any) -> None:
    """One-line reasons, naming the tensor, for published options the architecture lacks."""
    for name in published:
        if _NECK_FROM_STAGE_2.match(name):
            raise ConfigError(
                "a neck from stage 2 (stride-8 features, neck_start_stage 1 as eradio_xxxtiny_8x_ws16) "
                "cannot be expressed: fusion merges stages 3 and 4 only (stride 16)",
                key=name,
            )
    for name, tensor in published.items():
        if ".downsample_mixer." in name and cfg.mra_resample != "pool":
            raise ConfigError(
                "pooled resampling (avg-pool + 1x1 conv-BN, as eradio_xxxtiny_8x_*) needs "
                f"mra_resample: pool; the architecture has {cfg.mra_resample}",
                key=name,
            )
        if name.endswith(".downsample_op.weight") and cfg.mra_resample != "conv":
            raise ConfigError(
                "strided-conv resampling (as e-radio_v2) needs mra_resample: conv; the architecture "
                f"has {cfg.mra_resample}",
                key=name,
            )
        if name.endswith(".pre_conv.conv.weight") and tensor.dim() == 4:
            kind = "depthwise" if tensor.shape[1] == 1 and tensor.shape[0] > 1 else "dense"
            if cfg.pre_conv != kind:
                raise ConfigError(
                    f"a {kind} 3x3 pre-conv needs pre_conv: {kind}; the architecture has {cfg.pre_conv}", key=name
                )


def map_published_state_dict(published: Mapping[str, torch.Tensor], cfg: Any) -> dict[str, torch.Tensor]:
    """Our state dict for `cfg` (an E-RADIO config counting ``units``, v2 options) from the published
    names. Raises ConfigError naming the first unknown, missing or mis-shaped tensor."""
    from radio_nas.models import build_model

    if getattr(cfg, "family", None) != "eradio" or cfg.depth_counts != "units":
        raise ConfigError(
            "published E-RADIO weights need an eradio config counting depth in units (e.g. the l-v2 preset)", key="arch"
        )
    published = _strip_prefix(published)
    _check_layout(published, cfg)
    with torch.device("meta"):
        expected = build_model(cfg).state_dict()
    pattern_len = {2: len(cfg.mra_pattern[0]), 3: len(cfg.mra_pattern[1])}
    out: dict[str, torch.Tensor] = {}
    for name, tensor in published.items():
        if _DROPPED.match(name):
            continue
        ours = _our_name(name, pattern_len)
        if ours is None:
            raise ConfigError("no E-RADIO v2 module is named like this; is it an E-RADIO v2 checkpoint?", key=name)
        if ours not in expected:
            raise ConfigError(
                f"maps to {ours}, which this architecture does not have (depths, pattern or "
                f"fusion differ from the published model)",
                key=name,
            )
        if tuple(tensor.shape) != tuple(expected[ours].shape):
            raise ConfigError(
                f"shape {tuple(tensor.shape)} does not fit {ours} {tuple(expected[ours].shape)}", key=name
            )
        out[ours] = tensor
    missing = [k for k in expected if k not in out]
    if missing:
        raise ConfigError(
            f"the published state dict has nothing for {missing[0]} ({len(missing)} tensors missing)", key="weights"
        )
    return out


def load_published_eradio(
    source: str | Path | Mapping[str, Any],
    arch: Any = "l-v2",
    resolution: tuple[int, int] | None = None,
    *,
    window_sizes: Literal["checkpoint", "auto"] | tuple[int, int] = "checkpoint",
    window_fit: Literal["resize", "pad_mask"] = "resize",
) -> nn.Module:
    """The `arch` model (default ``l-v2``) with published E-RADIO weights, in eval mode, giving the
    published model's outputs by default.

    `source`: a checkpoint file (``{"state_dict": ...}`` as published, loaded weights-only) or a
    state dict. The position-bias coordinates are normalised by the checkpoint's window (16 for
    ``e-radio_v2``) unless `arch` sets ``pretrained_window``.

    `window_sizes` and `window_fit` replace the arch's. The defaults are the reference's (NVlabs/RADIO's
    hub entry): the checkpoint's window at every resolution (16 for ``e-radio_v2``, read from its
    position-bias tables) and ``resize`` (a stage map the windows do not tile, such as 14x14 at 224,
    is resized by nearest interpolation to a multiple of max(ratio) x window and back). For
    radio-nas's own choice pass ``window_sizes="auto"`` (the window picked from the resolution: 7 at
    224, 8 at 256, 16 at 512) and, to pad and mask instead of resizing, ``window_fit="pad_mask"``;
    features then differ from the published ones (18-52 % relative at 224)."""
    from radio_nas.models import build_model, resolve_config

    cfg = resolve_config(arch)
    state = _unwrap(read_checkpoint(source) if isinstance(source, (str, Path)) else dict(source))
    window = checkpoint_window(state)
    changes: dict[str, Any] = {
        "window_fit": window_fit,
        "window_sizes": (window, window) if window_sizes == "checkpoint" else window_sizes,
    }
    if getattr(cfg, "pretrained_window", None) is None:  # the weights were trained at this window
        changes["pretrained_window"] = window
    cfg = cfg.replace(**changes)
    model = build_model(cfg, resolution=resolution)
    model.load_state_dict(map_published_state_dict(state, cfg))
    return model.eval()


def read_checkpoint(path: str | Path, key: str = "--weights") -> dict[str, Any]:
    """A torch checkpoint loaded weights-only (published RADIO checkpoints carry an argparse
    Namespace of training arguments, which is allowed; nothing else that would run code), or the
    tensors of a ``.safetensors`` file. `key` names the option or config key in errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("no such file", key=key, file=path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as exc:
            raise ConfigError(f"cannot be read as safetensors: {_first_line(exc)}", key=key, file=path) from None
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"cannot be read as a weights-only torch checkpoint: {_first_line(exc)}", key=key, file=path
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a state dict or a checkpoint mapping, got {type(data).__name__}", key=key, file=path
        )
    return data


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_published_layout(state: Mapping[str, Any]) -> bool:
    """True when `state` (a state dict or checkpoint) uses the published E-RADIO names."""
    return any(k.startswith("patch_embed.conv_down.") for k in _strip_prefix(_unwrap(dict(state))))


def _unwrap(state: dict[str, Any]) -> dict[str, Any]:
    for key in ("state_dict_ema", "state_dict"):
        if isinstance(state.get(key), Mapping):
            return dict(state[key])
    return state


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    for prefix in PREFIXES:
        if any(k.startswith(prefix + "patch_embed.") for k in state):
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)


def _our_name(name: str, pattern_len: Mapping[int, int]) -> str | None:
    for regex, target in _COMPILED:
        m = regex.match(name)
        if m is None:
            continue
        g = m.groupdict()
        fields = {k: v for k, v in g.items() if v is not None}
        if "cb" in fields:
            fields["cb"] = "0" if fields["cb"] == "conv" else "1"
        if "i" in fields:
            fields["stem"] = str(int(fields["i"]) // 2)
        if "s" in fields:
            fields["down"] = str(int(fields["s"]) + 1)
        if "u" in fields:
            fields["block"] = str(int(fields["u"]) * pattern_len[int(fields["s"])] + int(fields["k"]))
        return target.format(**fields) + "." + fields["leaf"]
    return None


STUDENT_PREFIXES = ("model.", "student.")
"""Prefixes of the student's tensors in a file that holds more (a trial's safetensors: ``model.``
beside ``adaptors.`` and ``balancer.``)."""


def student_state_dict(
    source: str | Path | Mapping[str, Any], cfg: Any, key: str = "--weights", file: str | Path | None = None
) -> dict[str, torch.Tensor]:
    """The tensors of `source` for a student built from `cfg`, names and shapes checked.

    `source` is a file (or what :func:`read_checkpoint` read from one; `file` then names it in
    errors): a weights-only torch checkpoint or a safetensors file holding the published E-RADIO v2
    state dict (names mapped, :func:`map_published_state_dict`; `cfg` must normalise the position
    bias by the published window 16, as ``l-v2`` does), the student's own state dict, or a trial's
    file (``radio-nas trial --weights``: the student under ``model.``, adaptors and balancer beside
    it, which are dropped). Raises ConfigError naming `key`, the file and the first tensor that
    does not fit.
    """
    from radio_nas.models import build_model

    if isinstance(source, (str, Path)):
        file = source
        state = _unwrap(read_checkpoint(source, key))
    else:
        state = _unwrap(dict(source))
    try:
        if is_published_layout(state):
            window = checkpoint_window(state)
            if getattr(cfg, "pretrained_window", None) != window:
                raise ConfigError(
                    f"published E-RADIO weights were trained at window {window}; the architecture "
                    f"needs pretrained_window: {window} (the l-v2 preset has 16), got "
                    f"{getattr(cfg, 'pretrained_window', None)}",
                    key=key,
                )
            return map_published_state_dict(state, cfg)
        state = _own_student(state)
        with torch.device("meta"):
            expected = build_model(cfg).state_dict()
        for name, tensor in state.items():
            if name not in expected:
                raise ConfigError(f"holds {name}, which this architecture does not have", key=key)
            if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != tuple(expected[name].shape):
                shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
                raise ConfigError(
                    f"{name} has shape {shape}, the architecture needs {tuple(expected[name].shape)}", key=key
                )
        missing = [k for k in expected if k not in state]
        if missing:
            raise ConfigError(f"has nothing for {missing[0]} ({len(missing)} tensors missing)", key=key)
        return state
    except ConfigError as exc:
        raise exc.within(file=file) from None


def _own_student(state: dict[str, Any]) -> dict[str, Any]:
    for prefix in STUDENT_PREFIXES:
        if any(k.startswith(prefix) for k in state):
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def load_weights(model: nn.Module, path: str | Path, key: str = "--weights") -> nn.Module:
    """Load `path` into `model` (weights-only; see :func:`student_state_dict` for what it may hold)."""
    model.load_state_dict(student_state_dict(path, getattr(model, "cfg", None), key), strict=True)
    return model
