"""After a sweep: look, compare, pick, take away.

    from radio_nas.report.study_table import open_study, trials_table
    from radio_nas.report.report import build_report
    from radio_nas.report.export import export_trials, pareto_numbers
    handle = open_study("results/mra")                   # or open_study(url, "study-name")
    rep = build_report(handle)                           # report.md, CSVs, PNGs, PCA pictures
    export_trials(handle, pareto_numbers(handle), weights=True, onnx=True)

Modules (one job each): ``pareto`` (non-dominated ranks, exact hypervolume), ``study_table``
(study -> pandas), ``ablation`` (mean ± 95% CI per level), ``plots`` (PNG), ``reference``
(published rows), ``report`` (writes the report), ``export`` (YAML/weights/ONNX per variant),
``weights`` (weights-only loading), ``pca`` (feature PCA pictures, AM-RADIO supplementary §B).
Imports stay light here; each module imports torch/optuna/matplotlib only where it needs them.
"""
