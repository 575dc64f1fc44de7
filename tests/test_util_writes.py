"""Writes that stay in their folder (write_path) and temporaries a killed writer left (atomic_path)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from radio_nas._config import ConfigError
from radio_nas._util import _HOST, atomic_path, write_path


def test_write_path_refuses_links_and_leaving_the_folder(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    assert write_path(root, "sub", "f.txt") == root / "sub" / "f.txt"
    for parts in (("..", "f.txt"), ("sub", "..", "..", "f.txt"), (str(outside / "f.txt"),)):
        with pytest.raises(ConfigError, match="would leave"):
            write_path(root, *parts)
    (root / "pca").symlink_to(outside)
    with pytest.raises(ConfigError, match=r"pca is a symbolic link \(to .*outside\).*refusing") as exc:
        write_path(root, "pca", "p.png", key="results folder")
    assert "results folder" in str(exc.value) and "\n" not in str(exc.value)
    (root / "sub" / "f.txt").symlink_to(outside / "f.txt")  # dangling: the write would create it outside
    with pytest.raises(ConfigError, match="f.txt is a symbolic link"):
        write_path(root, "sub", "f.txt")
    linked_root = tmp_path / "chosen"
    linked_root.symlink_to(root)  # the folder the user named may itself be a link
    assert write_path(linked_root, "sub", "g.txt") == linked_root / "sub" / "g.txt"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_atomic_path_removes_what_a_killed_writer_left(tmp_path):
    target = tmp_path / "model.onnx"
    dead = tmp_path / f".model.onnx.{_HOST}-{_dead_pid()}.abc123.onnx"
    alive = tmp_path / f".model.onnx.{_HOST}-{os.getppid()}.def456.onnx"  # a writer still at work
    elsewhere = tmp_path / f".model.onnx.otherhost-{_dead_pid()}.ghi789.onnx"  # cannot tell: kept
    other_target = tmp_path / f".other.onnx.{_HOST}-{_dead_pid()}.jkl012.onnx"
    for p in (dead, alive, elsewhere, other_target):
        p.write_bytes(b"half")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and f"{_HOST}-{os.getpid()}." in tmp.name and tmp.suffix == ".onnx"
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and not tmp.exists()
    assert not dead.exists()
    assert alive.exists() and elsewhere.exists() and other_target.exists()


def test_atomic_path_leaves_nothing_when_the_write_fails(tmp_path):
    target = tmp_path / "a.yaml"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_under_the_storage_is_one_line(monkeypatch, capsys, tmp_path):
    """SQLite's own full disk reaches the command wrapped (sqlalchemy, Optuna): one line, exit 1."""
    from radio_nas.cli import main
    from radio_nas.distill import cache

    def full(*_args, **_kwargs):
        try:
            raise OSError(28, "No space left on device")
        except OSError as exc:
            raise RuntimeError("(sqlite3.OperationalError) database or disk is full\n[SQL: INSERT ...]") from exc

    monkeypatch.setattr(cache, "list_entries", full)
    assert main(["cache", "ls", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space left on device (" in err and "database or disk is full" in err
    monkeypatch.setattr(cache, "list_entries", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("other")))
    with pytest.raises(RuntimeError, match="other"):  # anything else is not dressed up as a full disk
        main(["cache", "ls", "--dir", str(tmp_path)])
