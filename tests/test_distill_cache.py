"""Teacher-output cache: content keys, atomic writes, two processes racing, ls/clear."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from radio_nas.cli import main
from radio_nas.distill.cache import cache_key, clear, list_entries, teacher_outputs
from radio_nas.distill.data import open_dataset
from radio_nas.distill.pipeline import DataConfig, TeacherConfig

FAKE = {
    "name": "fake",
    "adapter": "torch_hub",
    "model": "nobody/fake:teacher",
    "resolution": 32,
    "summary": {"layout": "vector"},
    "features": {},
    "batch_size": 4,
}


class FakeTeacher:
    """Deterministic numpy 'teacher': summary = channel means, features = 2x2 pooled crop."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, crops):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("teacher broke")
        x = torch.from_numpy(crops).float() / 255
        return x.mean((2, 3)), torch.nn.functional.adaptive_avg_pool2d(x, 2)


def test_key_changes_with_teacher_data_crops_resolution_and_split():
    t = TeacherConfig.from_dict(FAKE)
    ds = open_dataset(DataConfig(train_size=8, eval_size=4))
    base = cache_key(t, ds, "train")
    changed = [
        cache_key(t.replace(resolution=64), ds, "train"),
        cache_key(t.replace(model="nobody/fake:other"), ds, "train"),
        cache_key(t.replace(summary={"output": "x", "layout": "vector"}), ds, "train"),
        cache_key(t.replace(mean=[0.5, 0.5, 0.5]), ds, "train"),
        cache_key(t, open_dataset(DataConfig(train_size=8, eval_size=4, seed=1)), "train"),
        cache_key(t, open_dataset(DataConfig(train_size=8, eval_size=4, scale=[0.5, 1.0])), "train"),
        cache_key(t, open_dataset(DataConfig(train_size=16, eval_size=4)), "train"),
        cache_key(t, open_dataset(DataConfig(train_size=8, eval_size=4, images=["astronaut", "coffee"])), "train"),
        cache_key(t, ds, "eval"),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    # what does not change the outputs does not change the key
    assert cache_key(t.replace(name="other", batch_size=9, weight_summary=0.3), ds, "train") == base


def test_build_then_warm_without_teacher(tmp_path):
    t = TeacherConfig.from_dict(FAKE)
    ds = open_dataset(DataConfig(train_size=10, eval_size=4))
    teacher = FakeTeacher()
    entries, built = teacher_outputs(
        [t], ds, "train", root=tmp_path, get_teachers=lambda: {"fake": teacher}, progress=False
    )
    assert built and teacher.calls == 3  # 10 crops in batches of 4
    e = entries["fake"]
    assert e.summary.dtype == np.float16 and isinstance(e.summary, np.memmap) and e.features.shape == (10, 3, 2, 2)
    ref_s, ref_f = FakeTeacher()(ds.crops("train", range(10), (32, 32)))
    assert np.allclose(e.summary, ref_s.numpy(), atol=1e-3) and np.allclose(e.features, ref_f.numpy(), atol=1e-3)

    def boom():
        raise AssertionError("a warm cache must not build teachers")

    again, built = teacher_outputs([t], ds, "train", root=tmp_path, get_teachers=boom)
    assert not built and np.array_equal(again["fake"].summary, e.summary)
    # cache disabled: computed in memory, nothing written
    mem, built = teacher_outputs(
        [t],
        ds,
        "eval",
        root=tmp_path / "off",
        get_teachers=lambda: {"fake": FakeTeacher()},
        enabled=False,
        progress=False,
    )
    assert built and mem["fake"].path is None and not (tmp_path / "off").exists()


def test_interrupted_build_leaves_nothing_behind(tmp_path):
    t = TeacherConfig.from_dict(FAKE)
    ds = open_dataset(DataConfig(train_size=12, eval_size=4))
    with pytest.raises(RuntimeError, match="teacher broke"):
        teacher_outputs(
            [t], ds, "train", root=tmp_path, get_teachers=lambda: {"fake": FakeTeacher(fail_at=2)}, progress=False
        )
    assert list_entries(tmp_path) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    _entries, built = teacher_outputs(
        [t], ds, "train", root=tmp_path, get_teachers=lambda: {"fake": FakeTeacher()}, progress=False
    )
    assert built and len(list_entries(tmp_path)) == 1


RACER = textwrap.dedent("""
    import hashlib, os, sys, time
    import numpy as np, torch
    from radio_nas.distill.cache import teacher_outputs
    from radio_nas.distill.data import open_dataset
    from radio_nas.distill.pipeline import DataConfig, TeacherConfig

    root, log, go = sys.argv[1], sys.argv[2], float(sys.argv[3])
    t = TeacherConfig.from_dict({fake})
    ds = open_dataset(DataConfig(train_size=12, eval_size=4))

    def teacher(crops):
        with open(log, "a") as fh:
            fh.write(f"{{os.getpid()}}\\n")
        time.sleep(0.3)  # slow enough that the other process arrives while we build
        x = torch.from_numpy(crops).float() / 255
        return x.mean((2, 3)), torch.nn.functional.adaptive_avg_pool2d(x, 2)

    while time.time() < go:
        time.sleep(0.01)
    entries, built = teacher_outputs([t], ds, "train", root=root, get_teachers=lambda: {{"fake": teacher}},
                                     progress=False)
    e = entries["fake"]
    print(built, hashlib.sha1(np.asarray(e.summary).tobytes() + np.asarray(e.features).tobytes()).hexdigest())
""").format(fake=repr(FAKE))


@pytest.mark.slow
def test_two_processes_racing_build_once(tmp_path):
    import time

    script = tmp_path / "racer.py"
    script.write_text(RACER)
    log = tmp_path / "calls.log"
    go = str(time.time() + 4.0)  # both start importing now and begin together
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "cache"), str(log), go],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    results = [o[0].split() for o in outs]
    assert sorted(r[0] for r in results) == ["False", "True"]  # one built, the other waited and read it
    assert results[0][1] == results[1][1]
    pids = set(log.read_text().split())
    assert len(pids) == 1 and len(log.read_text().split()) == 3  # one process ran the teacher, 3 batches
    assert len(list_entries(tmp_path / "cache")) == 1


def test_cache_cli_ls_and_clear(tmp_path, capsys):
    t = TeacherConfig.from_dict(FAKE)
    ds = open_dataset(DataConfig(train_size=4, eval_size=4))
    for split in ("train", "eval"):
        teacher_outputs([t], ds, split, root=tmp_path, get_teachers=lambda: {"fake": FakeTeacher()}, progress=False)
    assert main(["cache", "ls", "--dir", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed["entries"]) == 2 and listed["bytes"] > 0
    entry = listed["entries"][0]
    assert {"key", "teacher", "split", "n", "summary_shape", "features_shape", "bytes"} <= set(entry)
    assert main(["cache", "ls", "--dir", str(tmp_path)]) == 0
    assert "fake" in capsys.readouterr().out
    assert main(["cache", "clear", entry["key"][:8], "--dir", str(tmp_path)]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert [e["key"] for e in list_entries(tmp_path)] == [listed["entries"][1]["key"]]
    assert main(["cache", "clear", "--dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == [listed["entries"][1]["key"]]
    assert list_entries(tmp_path) == [] and clear(tmp_path) == []


def test_identical_teachers_under_two_names_are_computed_once(tmp_path):
    a = TeacherConfig.from_dict(FAKE)
    b = a.replace(name="twin")
    ds = open_dataset(DataConfig(train_size=8, eval_size=4))
    teacher = FakeTeacher()
    entries, built = teacher_outputs(
        [a, b], ds, "train", root=tmp_path, get_teachers=lambda: {"fake": teacher, "twin": teacher}, progress=False
    )
    assert built and teacher.calls == 2 and entries["fake"].key == entries["twin"].key
    assert len(list_entries(tmp_path)) == 1


def _one_entry(root):
    t = TeacherConfig.from_dict(FAKE)
    ds = open_dataset(DataConfig(train_size=8, eval_size=4))
    entries, _ = teacher_outputs(
        [t], ds, "train", root=root, get_teachers=lambda: {"fake": FakeTeacher()}, progress=False
    )
    return t, ds, entries["fake"]


def _break(folder, how):
    if how == "truncated-array":
        data = (folder / "features.npy").read_bytes()
        (folder / "features.npy").write_bytes(data[: len(data) // 2])
    elif how == "broken-metadata":
        (folder / "meta.json").write_text('{"key": "trunc')
    elif how == "shape-mismatch":
        meta = json.loads((folder / "meta.json").read_text())
        meta["summary_shape"] = [meta["n"] + 1, *meta["summary_shape"][1:]]
        meta["n"] += 1
        (folder / "meta.json").write_text(json.dumps(meta))
    elif how == "missing-array":
        (folder / "summary.npy").unlink()


@pytest.mark.parametrize("how", ["truncated-array", "broken-metadata", "shape-mismatch", "missing-array"])
def test_broken_entry_is_listed_then_rebuilt_in_place(tmp_path, capsys, how):
    t, ds, good = _one_entry(tmp_path)
    reference = (np.array(good.summary), np.array(good.features))
    folder = good.path
    del good
    _break(folder, how)
    assert list_entries(tmp_path) == []  # not offered as a usable entry
    listed = list_entries(tmp_path, broken=True)
    assert [(e["key"], e["status"]) for e in listed] == [(folder.name, "broken")] and listed[0]["problem"]
    assert main(["cache", "ls", "--dir", str(tmp_path)]) == 0
    assert "BROKEN" in capsys.readouterr().out

    teacher = FakeTeacher()
    entries, built = teacher_outputs(
        [t], ds, "train", root=tmp_path, get_teachers=lambda: {"fake": teacher}, progress=False
    )
    assert built and teacher.calls > 0 and entries["fake"].path == folder  # rebuilt in place
    assert np.array_equal(entries["fake"].summary, reference[0])
    assert np.array_equal(entries["fake"].features, reference[1])
    assert [e["status"] for e in list_entries(tmp_path, broken=True)] == ["ok"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".broken-"))]
    # and the next trial reads it without building
    _again, built = teacher_outputs([t], ds, "train", root=tmp_path, get_teachers=dict, progress=False)
    assert not built


def test_clear_removes_broken_entries_but_never_a_users_folder(tmp_path):
    _, _, good = _one_entry(tmp_path)
    _break(good.path, "broken-metadata")
    users = tmp_path / "my-notes"
    users.mkdir()
    (users / "meta.json").write_text(json.dumps({"key": "my-notes", "teacher": "mine"}))
    (users / "thesis.txt").write_text("precious")
    lookalike = tmp_path / ("a" * 20)  # named like a key, but holds the user's own file too
    lookalike.mkdir()
    (lookalike / "meta.json").write_text(json.dumps({"key": "a" * 20}))
    (lookalike / "draft.md").write_text("precious too")
    strange_tmp = tmp_path / ".tmp-not-ours-x"
    strange_tmp.mkdir()
    assert [e["key"] for e in list_entries(tmp_path, broken=True)] == [good.path.name]
    assert clear(tmp_path) == [good.path.name]
    assert not good.path.exists()
    assert (users / "thesis.txt").read_text() == "precious"
    assert (lookalike / "draft.md").read_text() == "precious too"
    assert strange_tmp.is_dir()


def test_two_trials_racing_on_a_broken_entry(tmp_path):
    """Two threads (the lock is per process+file, fcntl) rebuild one broken entry: both get the
    sound entry, it is rebuilt once, and no leftovers stay behind."""
    import threading

    t, ds, good = _one_entry(tmp_path)
    _break(good.path, "truncated-array")
    teacher = FakeTeacher()
    results, errors = [], []

    def worker():
        try:
            entries, built = teacher_outputs(
                [t], ds, "train", root=tmp_path, get_teachers=lambda: {"fake": teacher}, progress=False
            )
            results.append((built, np.array(entries["fake"].features)))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    assert sorted(b for b, _ in results) == [False, True]
    assert np.array_equal(results[0][1], results[1][1])
    assert [e["status"] for e in list_entries(tmp_path, broken=True)] == ["ok"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".broken-"))]


def test_clear_says_so_when_an_entry_stays(tmp_path, monkeypatch, capsys):
    """A cache the user may not write (read-only folder, another owner): nothing is claimed removed.
    Root ignores permission bits, so the refusal of the file system is played by rmtree itself."""
    import shutil

    _, _, entry = _one_entry(tmp_path)

    def refused(path, onerror=None, **_):
        onerror(os.unlink, str(path), (PermissionError, PermissionError(13, "Permission denied"), None))

    monkeypatch.setattr(shutil, "rmtree", refused)
    assert main(["cache", "clear", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "could not remove 1 of 1 entries (Permission denied); removed 0" in err
    assert str(tmp_path) in err and entry.path.is_dir()
