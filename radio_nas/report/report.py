"""The sweep report: tables, Pareto front, hypervolume, plots, ablation statistics, PCA pictures.

    from radio_nas.study import open_study
    from radio_nas.report.report import build_report
    rep = build_report(open_study("results/mra"), reference="radio_nas/report/reference_rows.yaml")
    rep.files["report.md"], rep.hypervolume.value, rep.pareto_json()

Writes into the results folder (or `out_dir`): ``report.md``, ``report.html``, ``trials.csv`` (every trial),
``pareto.csv`` (the front), ``fidelity_vs_gmacs.png``, ``fidelity_vs_latency.png``,
``parameter_effects.png``, ``parallel_coordinates.png`` (trained trials coloured by Pareto rank),
``param_importances.png`` and ``importances.csv`` (which parameters matter, per objective: see
:mod:`radio_nas.report.importance`), for ablations ``ablation_<metric>.png`` and ``ablation.csv``, and
``pca/pca_trial<N>.png`` per Pareto variant with saved weights (student beside each teacher). The
plots and these pictures are attached to the study as Optuna artifacts (FileSystemArtifactStore
under ``<results>/artifacts``), so ``optuna-dashboard --artifact-dir results/NAME/artifacts
sqlite:///results/NAME/study.db`` shows them. Optuna 5.0 refuses to change finished trials, so
per-trial pictures are attached by the sweep itself, before it tells a trial's result
(:func:`trial_pca_panel`).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from radio_nas import __version__
from radio_nas._config import ConfigError
from radio_nas._util import atomic_path, atomic_write, markdown_table, write_path
from radio_nas.report import plots
from radio_nas.report.importance import Importances, merged_distributions, param_importances
from radio_nas.report.study_table import trials_table
from radio_nas.study import noise as _noise
from radio_nas.study.ablation import AblationDesign, ablation_markdown, ablation_rows
from radio_nas.study.layout import ARTIFACT_DIR, PCA_FILE
from radio_nas.study.pareto import HypervolumeResult, normalised_hypervolume
from radio_nas.study.record import Objective, TrialRecord
from radio_nas.study.storage import StudyHandle

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.study import Study
    from optuna.trial import Trial


@dataclass
class PcaEntry:
    trial: int
    path: Path | None
    note: str = ""
    artifact_id: str | None = None


@dataclass
class Report:
    handle: StudyHandle
    table: pd.DataFrame
    objectives: list[Objective]
    hypervolume: HypervolumeResult
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    ablation: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Per factor: level, base, n, n_seeds, <metric>_mean/_ci95/_std (for the plots and CSV)."""
    ablation_rows: list[dict[str, Any]] = field(default_factory=list)
    pca: list[PcaEntry] = field(default_factory=list)
    reference: pd.DataFrame | None = None
    noise: float | None = None
    """Fidelity differences below this are seed noise (from a `radio-nas validate` of this space)."""
    importances: Importances | None = None
    pca_note: str = ""
    """Why no PCA pictures were made when they were asked for (e.g. teachers that would run code)."""

    @property
    def pareto(self) -> pd.DataFrame:
        return self.table[self.table["pareto"]]

    def pareto_json(self) -> dict[str, Any]:
        """The Pareto set and how it was computed, as one JSON-ready object."""
        params = [c for c in self.table.columns if c.startswith("param.")]
        front = []
        for _, row in self.pareto.iterrows():
            front.append(
                {
                    "number": int(row["number"]),
                    "arch_id": row["arch_id"],
                    "values": {o.metric: _plain(row[o.metric]) for o in self.objectives},
                    "n_params": _plain(row["n_params"]),
                    "gmacs": _plain(row["gmacs"]),
                    "latency_ms": _plain(row["latency_ms"]),
                    "params": {c[len("param.") :]: _plain(row[c]) for c in params if not _isna(row[c])},
                    "weights_path": _plain(row["weights_path"]),
                    "within_noise_of": _plain(row.get("within_noise_of")),
                }
            )
        counts = self.table["status"].value_counts().to_dict()
        return {
            "study": self.handle.name,
            "storage": self.handle.storage_url,
            "mode": self.handle.mode,
            "objectives": [o.to_dict() for o in self.objectives],
            "n_trials": len(self.table),
            "n_candidates": int(self.table["candidate"].sum()),
            "status_counts": {str(k): int(v) for k, v in counts.items()},
            "hypervolume": {
                "value": self.hypervolume.value,
                "reference": [_plain(v) for v in self.hypervolume.reference],
                "ideal": [_plain(v) for v in self.hypervolume.ideal],
                "nadir": [_plain(v) for v in self.hypervolume.nadir],
                "method": self.hypervolume.describe(),
            },
            "pareto": front,
            "fidelity_noise": self.noise,
            "importances": self.importances.to_dict() if self.importances is not None else None,
            "files": {k: str(v) for k, v in self.files.items()},
        }


def build_report(
    handle: StudyHandle,
    out_dir: str | Path | None = None,
    *,
    reference: str | Path | None = None,
    pca: bool = True,
    pca_image: str = "skimage:astronaut",
    max_pca: int = 8,
    trust_teachers: bool = False,
) -> Report:
    """Compute everything and write the files (see the module docstring).

    The PCA pictures build the teachers of the study's pipeline; those that would run code of
    their own (torch.hub's hubconf.py, ...) are built only with `trust_teachers`: a study may
    come from someone else. Otherwise the pictures are skipped and :attr:`Report.pca_note` says why."""
    from radio_nas.report.pca import DEFAULT_IMAGE

    if out_dir is None:
        if handle.results_dir is None:
            raise ConfigError("a bare storage URL has no results folder; pass --out DIR", key="--out")
        out_dir = handle.results_dir
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _at(out_dir, "pca")  # refused before anything is written, not after the tables
    if handle.results_dir is not None:
        _at(handle.results_dir, ARTIFACT_DIR)
    objectives = handle.objectives
    table = trials_table(handle.study)
    cand = table[table["candidate"].astype(bool)]
    hv = normalised_hypervolume(
        cand[[o.metric for o in objectives]].to_numpy(dtype=float), [o.direction for o in objectives]
    )
    rep = Report(handle, table, objectives, hv, out_dir)
    _mark_noise(rep)
    if reference is not None:
        from radio_nas.report.reference import load_reference

        rep.reference = load_reference(reference).frame()
    _write_csv(table, _at(out_dir, "trials.csv"))
    _write_csv(rep.pareto, _at(out_dir, "pareto.csv"))
    rep.files["trials.csv"], rep.files["pareto.csv"] = _at(out_dir, "trials.csv"), _at(out_dir, "pareto.csv")
    quality = _quality_metric(objectives, table)
    for x, name, label in (
        ("gmacs", "fidelity_vs_gmacs.png", "GMACs (fvcore multiply-adds)"),
        ("latency_ms", "fidelity_vs_latency.png", "latency (ms, median)"),
    ):
        if quality is None:
            break
        path = plots.tradeoff_plot(
            table, x=x, y=quality, out=_at(out_dir, name), x_label=label, title=f"{handle.name}: {quality} vs {x}"
        )
        if path:
            rep.files[name] = path
    params = [c[len("param.") :] for c in table.columns if c.startswith("param.")]
    if quality is not None:
        path = plots.parameter_effects_plot(table, params, quality, _at(out_dir, "parameter_effects.png"))
        if path:
            rep.files["parameter_effects.png"] = path
    records = handle.trials()
    _which_parameters_matter(rep, records)
    if handle.mode == "ablation":
        metrics = [o.metric for o in objectives]
        rep.ablation_rows = ablation_rows(records, AblationDesign.from_record(handle.record, records), metrics)
        if rep.ablation_rows:
            merged = pd.DataFrame(rep.ablation_rows)
            rep.ablation = {
                str(f): g.drop(columns="factor").reset_index(drop=True) for f, g in merged.groupby("factor", sort=False)
            }
            _write_csv(merged, _at(out_dir, "ablation.csv"))
            rep.files["ablation.csv"] = _at(out_dir, "ablation.csv")
            for metric in metrics:
                path = plots.ablation_plot(rep.ablation, metric, _at(out_dir, f"ablation_{_slug(metric)}.png"))
                if path:
                    rep.files[f"ablation_{_slug(metric)}.png"] = path
    if pca:
        rep.pca = _pca_for_front(rep, pca_image or DEFAULT_IMAGE, max_pca, trust_teachers)
    if handle.results_dir is not None and out_dir.resolve() == handle.results_dir.resolve():
        for name, path in rep.files.items():
            if name.endswith(".png") or name == "importances.csv":
                _attach(handle, path)  # the plots, on the dashboard's study page
    atomic_write(_at(out_dir, "report.html"), render_html(rep))
    rep.files["report.html"] = _at(out_dir, "report.html")
    atomic_write(_at(out_dir, "report.md"), render_markdown(rep))
    rep.files["report.md"] = _at(out_dir, "report.md")
    return rep


def _which_parameters_matter(rep: Report, records: list[TrialRecord]) -> None:
    """Importances per objective (CSV and bar chart) and the parallel-coordinates plot."""
    out, objectives = rep.out_dir, rep.objectives
    rep.importances = param_importances(records, objectives, mode=rep.handle.mode)
    rows = rep.importances.rows()
    if rows:
        _write_csv(pd.DataFrame(rows), _at(out, "importances.csv"))
        rep.files["importances.csv"] = _at(out, "importances.csv")
        path = plots.importance_plot(rows, _at(out, "param_importances.png"))
        if path:
            rep.files["param_importances.png"] = path
    axes = []
    for name, dist in merged_distributions([r for r in records if r.is_candidate]).items():
        choices = getattr(dist, "choices", None)
        if choices is not None:
            axes.append(plots.Axis(f"param.{name}", name, levels=tuple(str(c) for c in choices)))
        else:
            low, high, log = getattr(dist, "low", None), getattr(dist, "high", None), bool(getattr(dist, "log", False))
            axes.append(plots.Axis(f"param.{name}", name, low=low, high=high, log=log))
    for o in objectives:
        up = o.direction == "maximize"
        axes.append(plots.Axis(o.metric, f"{o.metric} ({'max' if up else 'min'})", better_up=up))
    n = int(rep.table["candidate"].sum())
    path = plots.parallel_coordinates_plot(
        rep.table,
        axes,
        _at(out, "parallel_coordinates.png"),
        title=f"{rep.handle.name}: {n} fully trained trials (red: Pareto front; objectives: better is up)",
    )
    if path:
        rep.files["parallel_coordinates.png"] = path


def _importance_text(rep: Report) -> tuple[str, pd.DataFrame | None]:
    """The section's explanation and its table (parameters x objectives), or None when not computed."""
    imp = rep.importances
    if imp is None:
        return "", None
    if rep.handle.mode == "ablation":
        return f"Not computed: {imp.note}.", None
    if not imp.computed:
        why = imp.note or "; ".join(f"{o.objective.metric}: {o.note}" for o in imp.per_objective if o.note)
        return f"Not computed: {why or 'no parameter varied'}.", None
    tops = ", ".join(f"{o.objective.metric}: best {o.n_top}" for o in imp.per_objective if o.n_top)
    text = (
        f"{imp.method} over the **{imp.n_trials} fully trained trials** ({tops}, ties included). For each "
        "objective, a parameter's share says how much its values among the best trials differ from its "
        "values among all of them (shares sum to 1 per objective), relative to what this sweep tried: a value "
        "its sampler already favoured stands out less. With this few noisy trials they are "
        "indications, not measurements: `[p10–p90]` is the share's spread over random subsets of 80% of the "
        "trials (wide: fragile), and `p` how often shuffling the objective values among the trials gave the "
        "parameter at least this importance (p >= 0.05: could be chance; not corrected for the many "
        "parameter x objective pairs). A share is an association, not a cause: a parameter that happened to vary "
        "with an influential one among so few trials shares its credit (the parallel coordinates show such "
        "pairs). A parameter with one value seen, or fixed in the space, has no share. "
        "`parallel_coordinates.png` draws every trained trial through its parameters and objectives (better "
        "is up; red: the Pareto front): parameters where the red lines bunch on one value are those the front "
        "needs."
    )
    quality = next((o for o in imp.per_objective if o.objective.metric == "fidelity" and o.n_trials), None)
    if quality is not None:
        values = rep.table.loc[rep.table["candidate"].astype(bool), "fidelity"].astype(float)
        span = float(values.max() - values.min())
        if rep.noise:
            text += (
                f" Fidelity spans {span:.4f} over these trials, {span / rep.noise:.1f}x the seed-noise threshold "
                f"{rep.noise:.4f} measured by validation."
            )
        else:
            text += (
                f" Fidelity spans {span:.4f} over these trials; how much of that is seed noise is unknown until "
                "`radio-nas validate` has measured it."
            )
    params = list(dict.fromkeys(p.param for o in imp.per_objective for p in o.params))
    rows = []
    for name in params:
        row: dict[str, Any] = {"parameter": name}
        notes = []
        for o in imp.per_objective:
            found = next((p for p in o.params if p.param == name), None)
            row.setdefault("values seen", found.n_values if found else "")
            if found is None or found.share is None:
                row[o.objective.metric] = "-"
                if found is not None and found.note and found.note not in notes:
                    notes.append(found.note)
                continue
            spread = f" [{found.low:.2f}–{found.high:.2f}]" if found.low is not None and found.high is not None else ""
            chance = f" p={found.p_chance:.2f}" if found.p_chance is not None else ""
            row[o.objective.metric] = f"{found.share:.2f}{spread}{chance}"
        row["note"] = "; ".join(notes)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame["note"].astype(bool).any():
        frame = frame.drop(columns="note")
    return text, frame


def _mark_noise(rep: Report, metric: str = "fidelity") -> None:
    """With a validation of this space and pipeline, name for each Pareto point the next-better
    point on the front whose fidelity it cannot be told apart from (gap below the seed noise)."""
    t = rep.table
    t["within_noise_of"] = pd.array([pd.NA] * len(t), dtype="Int64")
    if rep.handle.results_dir is None or metric not in t.columns:
        return
    rep.noise = _noise.noise_threshold(rep.handle.results_dir)
    if rep.noise is None:
        return
    front = t[t["pareto"]].sort_values(metric, ascending=False)
    for (_, better), (index, row) in zip(front.iterrows(), list(front.iterrows())[1:]):
        if better[metric] - row[metric] < rep.noise:
            t.loc[index, "within_noise_of"] = int(better["number"])


# -- PCA pictures for the front, attached as Optuna artifacts ---------------------------------------


def _pca_for_front(rep: Report, image_source: str, max_pca: int, trust_teachers: bool = False) -> list[PcaEntry]:
    from radio_nas.report.export import trial_weights_path
    from radio_nas.report.pca import load_image

    handle = rep.handle
    trials = {t.number: t for t in handle.trials()}
    front = rep.pareto.sort_values(rep.objectives[0].metric, ascending=rep.objectives[0].direction == "minimize")
    numbers = front["number"].astype(int).tolist()[:max_pca]
    if not trust_teachers:
        for number in numbers:
            found = _code_teacher(dict(trials[number].pipeline or handle.record.pipeline or {}))
            if found:
                rep.pca_note = (
                    f"PCA pictures skipped: the study's pipeline has teacher {found}, which would run code "
                    "named by the study; pass --trust-teachers if you trust it"
                )
                return []
    image = load_image(image_source)
    entries: list[PcaEntry] = []
    teacher_cache: dict[str, tuple[dict[str, Any], str]] = {}
    for number in numbers:
        trial = trials[number]
        try:
            weights = trial_weights_path(handle, trial)
        except ConfigError as exc:
            entries.append(PcaEntry(number, None, f"skipped: {exc.detail}"))
            continue
        pipeline = dict(trial.pipeline or handle.record.pipeline or {})
        path, note = trial_pca_panel(
            dict(trial.arch or {}),
            weights,
            pipeline,
            image,
            _at(rep.out_dir, "pca", f"pca_trial{number}.png"),
            f"{handle.name} trial {number}",
            teacher_cache,
        )
        entry = PcaEntry(number, path, note)
        entry.artifact_id = _attach(handle, path)
        entries.append(entry)
    return entries


def trial_pca_panel(
    arch: dict[str, Any],
    weights: str | Path,
    pipeline: dict[str, Any],
    image: Any,
    out: Path,
    title: str,
    teacher_cache: dict[str, tuple[dict[str, Any], str]],
) -> tuple[Path, str]:
    """PCA picture of a trained student beside its pipeline's teachers, at the pipeline's resolution;
    returns the PNG and a note (e.g. why teachers are missing). `teacher_cache` is reused across calls."""
    from radio_nas.report.export import pipeline_resolution
    from radio_nas.report.pca import StudentFeatures, feature_pictures, resized, save_panel
    from radio_nas.report.weights import load_student

    resolution = pipeline_resolution(pipeline)
    models: dict[str, Any] = {"student": StudentFeatures(load_student(arch, weights))}
    teachers, note = _teachers_for(pipeline, teacher_cache)
    models.update(teachers)
    pictures = feature_pictures(models, image, resolution)
    path = save_panel(resized(image, resolution), pictures, out, title=f"{title} at {resolution[0]}x{resolution[1]}")
    return path, note


def _code_teacher(pipeline: dict[str, Any]) -> str | None:
    """'name (adapter:model)' of the first teacher of `pipeline` that would run code when built."""
    from radio_nas.distill import load_pipeline
    from radio_nas.distill.teachers import code_loading_teachers

    try:
        loaded = load_pipeline(pipeline)
    except ConfigError:
        return None  # never built: _teachers_for notes why
    found = code_loading_teachers(loaded)
    return f"{found[0][1].name!r} ({found[0][1].adapter}:{found[0][1].model})" if found else None


def _teachers_for(pipeline: dict[str, Any], cache: dict[str, tuple[dict[str, Any], str]]) -> tuple[dict[str, Any], str]:
    """Teachers of a pipeline dict by name (built once per distinct teacher list)."""
    key = json.dumps(pipeline.get("teachers"), sort_keys=True, default=str)
    if key not in cache:
        try:
            from radio_nas.distill import build_teachers, load_pipeline

            cache[key] = ({f"teacher {t.name}": t for t in build_teachers(load_pipeline(pipeline))}, "")
        except Exception as exc:
            cache[key] = ({}, f"teachers not shown: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    return cache[key]


def _attach(handle: StudyHandle, path: Path) -> str | None:
    """Upload `path` to the study (a report runs after the trials finished; see attach_artifact)."""
    if handle.results_dir is None:
        return None
    return attach_artifact(handle.study, path, handle.results_dir, storage=handle.storage)


def sweep_pictures(results_dir: str | Path, title: str) -> Callable[[Trial, TrialRecord], None]:
    """The sweep's hook (:data:`radio_nas.search.searcher.TrainedHook`): a trained student's PCA
    picture beside its teachers, attached to its Optuna trial while it still runs."""
    results = Path(results_dir)
    image: list[np.ndarray] = []
    teachers: dict[str, tuple[dict[str, Any], str]] = {}  # built once per sweep

    def hook(trial: Trial, record: TrialRecord) -> None:
        from radio_nas.report.export import trial_weights_path
        from radio_nas.report.pca import DEFAULT_IMAGE, load_image

        if not image:
            image.append(load_image(DEFAULT_IMAGE))
        weights = trial_weights_path(StudyHandle(trial.study, "", trial.storage, results), record)
        path, _ = trial_pca_panel(
            dict(record.arch or {}),
            weights,
            dict(record.pipeline or {}),
            image[0],
            weights.parent / PCA_FILE,
            f"{title} trial {record.number}",
            teachers,
        )
        attach_artifact(trial, path, results)

    return hook


def attach_artifact(
    target: Study | Trial, path: str | Path, results_dir: str | Path, *, storage: BaseStorage | None = None
) -> str:
    """Upload `path` as an Optuna artifact of `target` (a running Trial, or a Study) into the
    FileSystemArtifactStore at ``<results_dir>/artifacts``; returns the artifact id.

    Optuna 5.0 (and optuna-dashboard 0.21) refuse to change a finished trial, so a report made
    after the sweep attaches its pictures to the study (the dashboard lists them on the study
    page, named ``pca_trial<N>.png``); a sweep can attach to a trial before telling it. A file
    name already attached to `target` is overwritten in place instead of piling up copies.
    """
    from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta, upload_artifact

    path = Path(path)
    store_dir = _at(results_dir, ARTIFACT_DIR)
    store_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(store_dir))
    for meta in get_all_artifact_meta(target, storage=storage):
        if meta.filename == path.name:
            _at(results_dir, ARTIFACT_DIR, meta.artifact_id)  # an id recorded in the study names the file
            with open(path, "rb") as f:
                store.write(meta.artifact_id, f)
            return meta.artifact_id
    return upload_artifact(
        artifact_store=store,
        file_path=str(path),
        study_or_trial=target,
        storage=storage,
        mimetype="image/png" if path.suffix == ".png" else None,
    )


# -- Markdown ------------------------------------------------------------------------------------


def render_markdown(rep: Report) -> str:
    h = rep.handle
    t = rep.table
    counts = t["status"].value_counts().to_dict()
    lines = [
        f"# Sweep report: {h.name}",
        "",
        f"- storage: `{h.storage_url}`; mode: {h.mode}; space: {h.record.space_name or '-'}"
        f" (hash {h.record.space_hash or '-'})",
        f"- trials: {len(t)} ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}); "
        f"fully trained (Pareto candidates): {int(t['candidate'].sum())}",
        f"- objectives: {', '.join(f'{o.metric} ({o.direction})' for o in rep.objectives)}",
        f"- generated {_dt.datetime.now(_dt.UTC).isoformat(timespec='seconds')} by radio-nas {__version__}",
        "",
        "## Pareto front",
        "",
        "Non-dominated among fully trained trials (COMPLETE, status ok) over all objectives; the same "
        "set as Optuna's `study.best_trials`. The all-trials table gives every trained trial's "
        "`pareto_rank` (non-dominated sorting; 1 = front).",
        "",
        f"**Hypervolume: {rep.hypervolume.value:.4f}** — {rep.hypervolume.describe()}.",
        "",
        (
            f"Seed noise (from a validation of this space and pipeline): fidelity gaps below "
            f"{rep.noise:.4f} (2x the median seed std) are not resolved; `within_noise_of` names the "
            "next-better Pareto point a variant cannot be told apart from on fidelity."
            if rep.noise is not None
            else "No validation of this space and pipeline yet: `radio-nas validate <space.yaml>` measures "
            "which fidelity gaps are seed noise, and this report then marks them."
        ),
        "",
    ]
    params = [c for c in t.columns if c.startswith("param.")]
    cols = [
        "number",
        "arch_id",
        *[o.metric for o in rep.objectives],
        "n_params",
        "gmacs",
        "latency_ms",
        *(["within_noise_of"] if rep.noise is not None else []),
        *params,
    ]
    cols = list(dict.fromkeys(c for c in cols if c in t.columns))
    first = rep.objectives[0]
    lines += [_md_table(rep.pareto[cols].sort_values(first.metric, ascending=first.direction == "minimize")), ""]
    text, frame = _importance_text(rep)
    if text:
        lines += ["## Which parameters matter", "", text, ""]
        if frame is not None:
            lines += [_md_table(frame), ""]
    figures = [(k, v) for k, v in rep.files.items() if k.endswith(".png")]
    if figures:
        lines += ["## Plots", ""]
        lines += [f"![{k}]({_rel(v, rep.out_dir)})" for k, v in figures]
        lines.append("")
    if rep.pca_note:
        lines += ["## PCA of spatial features (Pareto variants)", "", rep.pca_note + ".", ""]
    if rep.pca:
        lines += [
            "## PCA of spatial features (Pareto variants)",
            "",
            "Top-3 principal components of the stride-16 features mapped to RGB (AM-RADIO supplementary §B); the "
            "student beside each teacher of its pipeline. Attached to the study as Optuna "
            "artifacts (shown by optuna-dashboard): "
            f"`optuna-dashboard --artifact-dir {_artifact_hint(h)} {h.storage_url}`.",
            "",
        ]
        for e in rep.pca:
            if e.path is not None:
                lines.append(
                    f"- trial {e.trial}: ![trial {e.trial}]({_rel(e.path, rep.out_dir)})"
                    + (f" ({e.note})" if e.note else "")
                )
            else:
                lines.append(f"- trial {e.trial}: {e.note}")
        lines.append("")
    if rep.ablation_rows:
        lines += [
            "## Ablation: mean ± 95% CI per level",
            "",
            "Student-t interval over the fully trained runs at each level (n runs, distinct seeds); "
            "one factor at a time: a level's runs have every other factor at base (`*`); grid: "
            "a level pools the other factors. The sweep's closing summary prints the same table.",
            "",
            ablation_markdown(rep.ablation_rows, [o.metric for o in rep.objectives]),
            "",
        ]
    if rep.reference is not None:
        lines += [
            "## Side by side with published models (reference rows)",
            "",
            "Rows marked `reference` are published numbers of other models, not measured here "
            "(different teachers, data and training length: only params/GMACs compare directly).",
            "",
        ]
        ours = rep.pareto.assign(
            name=lambda d: [f"{h.name} #{n}" for n in d["number"]],
            kind="this sweep",
            params_m=lambda d: d["n_params"].astype(float) / 1e6,
            resolution=_resolution_column(rep),
        )
        keep = [
            "name",
            "kind",
            "params_m",
            "resolution",
            "gmacs",
            *[o.metric for o in rep.objectives if o.metric not in ("gmacs",)],
        ]
        side = pd.concat([ours[[c for c in keep if c in ours]], rep.reference], ignore_index=True)
        lines += [_md_table(side), ""]
    lines += ["## All trials", ""]
    lines += [_md_table(t[_trial_columns(rep)]), ""]
    lines += [
        "Files: "
        + ", ".join(f"`{_rel(v, rep.out_dir)}`" for k, v in rep.files.items() if not k.endswith(".png"))
        + ", `report.md`.",
        "",
    ]
    return "\n".join(lines)


def _trial_columns(rep: Report) -> list[str]:
    """The columns of the every-trial table (Markdown and HTML), those the table has."""
    cols = ["number", "state", "status", "pareto_rank", *[o.metric for o in rep.objectives]]
    cols += ["n_params", "gmacs", "latency_ms", "failure_reason"]
    return [c for c in dict.fromkeys(cols) if c in rep.table]


def render_html(rep: Report) -> str:
    """A self-contained page: summary, Pareto table, plots, PCA pictures, every trial."""
    import html

    h, t = rep.handle, rep.table
    obj = [o.metric for o in rep.objectives]
    params = [c for c in t.columns if c.startswith("param.")]
    front_cols = list(
        dict.fromkeys(c for c in ["number", "arch_id", *obj, "n_params", "gmacs", "latency_ms", *params] if c in t)
    )
    all_cols = _trial_columns(rep)
    images = [v for k, v in rep.files.items() if k.endswith(".png")] + [e.path for e in rep.pca if e.path]
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(h.name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%;margin:6px 0}</style>",
        f"<h1>Sweep report: {html.escape(h.name)}</h1>",
        f"<p>objectives: {html.escape(', '.join(f'{o.metric} ({o.direction})' for o in rep.objectives))}; "
        f"trials: {len(t)}; fully trained: {int(t['candidate'].sum())}; hypervolume "
        f"<b>{rep.hypervolume.value:.4f}</b> ({html.escape(rep.hypervolume.describe())})</p>",
        "<h2>Pareto front</h2>",
        rep.pareto[front_cols].to_html(index=False, na_rep=""),
    ]
    text, frame = _importance_text(rep)
    if text:
        parts += ["<h2>Which parameters matter</h2>", f"<p>{html.escape(text).replace('**', '')}</p>"]
        if frame is not None:
            parts.append(frame.to_html(index=False, na_rep=""))
    parts += [f"<div><img src='{html.escape(_rel(p, rep.out_dir))}'></div>" for p in images]
    if rep.reference is not None:
        parts += [
            "<h2>Published reference rows (not measured here)</h2>",
            rep.reference.to_html(index=False, na_rep=""),
        ]
    for factor, frame in rep.ablation.items():
        parts += [
            f"<h2>Ablation: {html.escape(factor)} (mean, 95% CI half-width)</h2>",
            frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}"),
        ]
    parts += ["<h2>All trials</h2>", t[all_cols].to_html(index=False, na_rep="")]
    return "\n".join(parts) + "\n"


def _resolution_column(rep: Report) -> list[Any]:
    from radio_nas.report.export import pipeline_resolution

    trials = {t.number: t for t in rep.handle.trials()}
    out = []
    for n in rep.pareto["number"]:
        pipe = trials[int(n)].pipeline or rep.handle.record.pipeline
        hgt, wid = pipeline_resolution(dict(pipe) if pipe is not None else None)
        out.append(hgt if hgt == wid else f"{hgt}x{wid}")
    return out


def _md_table(frame: pd.DataFrame) -> str:
    rows = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
    return markdown_table(rows, [str(c) for c in frame.columns])


def _quality_metric(objectives: list[Objective], table: pd.DataFrame) -> str | None:
    names = [o.metric for o in objectives]
    if "fidelity" in table:
        return "fidelity"
    maxi = [o.metric for o in objectives if o.direction == "maximize"]
    return (maxi or names)[0] if (maxi or names) else None


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _at(root: str | Path, *parts: str) -> Path:
    """A file or folder the report writes under `root`, never through a symbolic link out of it."""
    return write_path(root, *parts, key="results folder")


def _rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return str(path)


def _artifact_hint(handle: StudyHandle) -> str:
    return str(handle.results_dir / ARTIFACT_DIR) if handle.results_dir else "<results>/artifacts"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _isna(value: Any) -> bool:
    try:
        return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def _plain(value: Any) -> Any:
    if _isna(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
