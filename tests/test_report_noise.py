"""The report marks Pareto points whose fidelity gap to the next-better point is seed noise."""

import json

import pandas as pd

from radio_nas.cli import main
from radio_nas.report.report import build_report
from radio_nas.study import open_study


def _front(rep):
    return rep.pareto.sort_values("fidelity", ascending=False)


def test_without_a_validation_nothing_is_marked(tmp_path, make_study):
    rep = build_report(open_study(make_study(tmp_path)), pca=False)
    assert rep.noise is None and rep.table["within_noise_of"].isna().all()
    assert "No validation of this space" in (rep.out_dir / "report.md").read_text()


def test_gaps_below_the_measured_noise_are_marked(tmp_path, monkeypatch, capsys, make_study):
    results = make_study(tmp_path, n_ok=8)
    front = _front(build_report(open_study(results), pca=False))
    assert len(front) >= 2
    gaps = -front["fidelity"].diff().iloc[1:]  # fidelity lost from one front point to the next
    noise = float(gaps.median()) + 1e-9  # some gaps fall below it, the largest does not
    monkeypatch.setattr("radio_nas.study.noise.noise_threshold", lambda results_dir: noise)
    rep = build_report(open_study(results), pca=False)
    front = _front(rep)
    numbers, fid = front["number"].tolist(), front["fidelity"].tolist()
    expected = [None] + [numbers[i - 1] if fid[i - 1] - fid[i] < noise else None for i in range(1, len(fid))]
    got = [None if pd.isna(v) else int(v) for v in front["within_noise_of"]]
    assert got == expected and 1 <= sum(v is not None for v in got) < len(got) - 1
    assert rep.table.loc[~rep.table["pareto"], "within_noise_of"].isna().all()
    assert "within_noise_of" in (results / "report.md").read_text()
    assert main(["report", str(results), "--json", "--no-pca"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["fidelity_noise"] == noise
    assert sum(p["within_noise_of"] is not None for p in payload["pareto"]) == int((gaps < noise).sum())
