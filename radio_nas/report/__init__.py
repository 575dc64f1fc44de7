"""After a sweep: look, compare, pick, take away.

    from radio_nas.study import open_study
    from radio_nas.report.study_table import trials_table
    from radio_nas.report.report import build_report
    from radio_nas.report.export import export_trials, pareto_numbers
    handle = open_study("results/mra")                   # or open_study(url, "study-name")
    rep = build_report(handle)                           # report.md, CSVs, PNGs, PCA pictures
    export_trials(handle, pareto_numbers(handle), weights=True, onnx=True)

Modules (one job each): ``study_table`` (study -> pandas; the records, Pareto ranks, hypervolume
and ablation statistics it reads live in :mod:`radio_nas.study`), ``importance`` (what each
parameter does to each objective), ``plots`` (PNG), ``reference``
(published rows), ``report`` (writes the report), ``export`` (YAML/weights/ONNX per variant),
``weights`` (weights-only loading), ``pca`` (feature PCA pictures, AM-RADIO supplementary §B).
Imports stay light here; each module imports torch/optuna/matplotlib only where it needs them.
"""
