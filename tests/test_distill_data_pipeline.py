"""Pipeline loading/validation and the deterministic crop stream (folders, tar shards, skimage)."""

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radio_nas._config import ConfigError
from radio_nas.distill import load_pipeline
from radio_nas.distill.data import open_dataset
from radio_nas.distill.pipeline import DataConfig

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_pipelines_load_and_override():
    p = load_pipeline(
        ROOT / "pipelines/distill_cpu.yaml",
        {"balancing.method": "adaloss", "steps": 40, "seed": 3, "teachers.rn50_s16.batch_size": 4},
    )
    assert (p.steps, p.seed, p.balancing.method) == (40, 3, "adaloss")
    assert p.teachers[0].batch_size == 4 and p.size == (128, 128)
    assert p.id != load_pipeline(ROOT / "pipelines/distill_cpu.yaml").id
    assert load_pipeline("distill_cpu").id == load_pipeline(ROOT / "pipelines/distill_cpu.yaml").id
    gpu = load_pipeline(ROOT / "pipelines/distill_gpu.yaml")
    assert {t.adapter for t in gpu.teachers} >= {"torch_hub"} and len(gpu.teachers) >= 2
    assert load_pipeline(p.to_dict()).id == p.id


@pytest.mark.parametrize(
    "override,key,words",
    [
        ({"balancing.method": "magic"}, "balancing.method", "expected one of"),
        ({"resolution": 100}, "resolution", "multiples of 32"),
        ({"steps": "many"}, "steps", "integer"),
        ({"data.scale": [0.5, 2.0]}, "data.scale", "0 < min"),
        ({"teachers.rn50_s32.summary.layout": "xyz"}, "teachers[1].summary.layout", "expected one of"),
        ({"teachers.nobody.model": "x"}, "teachers.nobody.model", "no teacher named"),
        ({"optim.lrr": 1}, "optim.lrr", "did you mean 'lr'"),
    ],
)
def test_errors_name_file_and_key(override, key, words):
    with pytest.raises(ConfigError) as info:
        load_pipeline(ROOT / "pipelines/distill_cpu.yaml", override)
    msg = str(info.value)
    assert msg.startswith(str(ROOT / "pipelines/distill_cpu.yaml")) and f": {key}:" in msg and words in msg
    assert "\n" not in msg


def test_duplicate_teacher_and_missing_sections():
    data = load_pipeline(ROOT / "pipelines/distill_cpu.yaml").to_dict()
    data["teachers"][1]["name"] = data["teachers"][0]["name"]
    with pytest.raises(ConfigError, match=r"teachers\[1\]\.name: duplicate"):
        load_pipeline(data)
    with pytest.raises(ConfigError, match="teachers: required key is missing"):
        load_pipeline({"steps": 1})


def test_skimage_crops_are_deterministic_in_seed_and_index():
    a, b = open_dataset(DataConfig()), open_dataset(DataConfig())
    x = a.crops("train", [0, 5, 17], (64, 96))
    assert x.shape == (3, 3, 64, 96) and x.dtype == np.uint8
    assert np.array_equal(x, b.crops("train", [0, 5, 17], (64, 96)))
    assert np.array_equal(x[1], b.crops("train", [5], (64, 96))[0])  # independent of the batch
    assert not np.array_equal(x[0], x[1])
    assert not np.array_equal(x, open_dataset(DataConfig(seed=1)).crops("train", [0, 5, 17], (64, 96)))
    assert not np.array_equal(a.crops("train", [0], (64, 64)), a.crops("eval", [0], (64, 64)))


def test_skimage_eval_photos_are_held_out_whole():
    ds = open_dataset(DataConfig())
    used = {s: [ds._item(s, i)[1].name for i in range(16)] for s in ("train", "eval")}
    assert set(used["eval"]) == {"chelsea", "immunohistochemistry"}  # the default pair, balanced
    assert used["eval"].count("chelsea") == 8
    assert len(set(used["train"])) == 8 and not set(used["train"]) & set(used["eval"])
    assert ds.labels("train", range(4)) is None  # photo identity cannot label held-out photos
    own = open_dataset(DataConfig(images=("astronaut", "coffee", "rocket"), eval_images=("coffee",)))
    assert {own._item("train", i)[1].name for i in range(4)} == {"astronaut", "rocket"}
    # without chelsea/immunohistochemistry among the photos, the last one listed is held out
    assert open_dataset(DataConfig(images=("astronaut", "rocket")))._item("eval", 0)[1].name == "rocket"
    with pytest.raises(ConfigError, match=r"data.eval_images\[0\]: 'logo' is not one of the photos used"):
        open_dataset(DataConfig(images=("astronaut", "coffee"), eval_images=("logo",)))
    with pytest.raises(ConfigError, match="data.eval_images: need at least one training photo"):
        open_dataset(DataConfig(images=("astronaut",)))


def _png(color, size=(40, 32)):
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_folder_labels_split_and_corrupt_files_skipped(tmp_path):
    for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        for i in range(6):
            (tmp_path / cls / f"{i}.png").write_bytes(_png(color))
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg at all")
    (tmp_path / "dog" / "truncated.png").write_bytes(_png((0, 0, 255))[:40])
    ds = open_dataset(DataConfig(source="folder", path=str(tmp_path), train_size=40, eval_size=8, eval_fraction=0.3))
    assert ds.classes == ["cat", "dog"]
    names = {s: {i.name for i in ds._items[s]} for s in ("train", "eval")}
    assert names["train"].isdisjoint(names["eval"]) and names["eval"]
    x = ds.crops("train", range(40), (32, 32))
    labels = ds.labels("train", range(40))
    # every crop is a real image of its class (red cats, blue dogs): unreadable files were skipped
    assert np.all(x[labels == 0][:, 0] > 200) and np.all(x[labels == 1][:, 2] > 200)
    ds.crops("eval", range(8), (32, 32))
    train_bad = {"cat/broken.jpg", "dog/truncated.png"} & names["train"]
    assert train_bad <= ds.skipped and ds.skipped <= {"cat/broken.jpg", "dog/truncated.png"}


def test_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.path: not a directory"):
        open_dataset(DataConfig(source="folder", path=str(tmp_path / "nope")))
    with pytest.raises(ConfigError, match="no images"):
        open_dataset(DataConfig(source="folder", path=str(tmp_path)))
    with pytest.raises(ConfigError, match="path: source 'tar' needs a path"):
        DataConfig(source="tar")


def test_tar_shards_with_cls_labels(tmp_path):
    for shard in range(2):
        with tarfile.open(tmp_path / f"shard-{shard}.tar", "w") as tf:
            for i in range(5):
                label = i % 2
                for name, data in (
                    (f"s{shard}_{i}.png", _png((200 * label, 50, 100))),
                    (f"s{shard}_{i}.cls", str(label).encode()),
                ):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    ds = open_dataset(DataConfig(source="tar", path=str(tmp_path), train_size=12, eval_size=4))
    assert ds.classes == ["0", "1"]
    x = ds.crops("train", range(12), (32, 32))
    labels = ds.labels("train", range(12))
    assert np.all((x[:, 0].mean((1, 2)) > 100) == (labels == 1))
    same = open_dataset(DataConfig(source="tar", path=str(tmp_path / "*.tar"), train_size=12, eval_size=4))
    assert np.array_equal(x, same.crops("train", range(12), (32, 32)))


def test_teacher_by_index_and_cache_dir_precedence(monkeypatch, tmp_path):
    p = load_pipeline(ROOT / "pipelines/distill_cpu.yaml", {"teachers[1].resolution": [192, 256]})
    assert p.teachers[1].size == (192, 256)
    monkeypatch.delenv("RADIO_NAS_CACHE", raising=False)
    assert p.cache_dir() == Path("~/.cache/radio-nas/teachers").expanduser()
    monkeypatch.setenv("RADIO_NAS_CACHE", str(tmp_path / "env"))
    assert p.cache_dir() == tmp_path / "env" / "teachers"  # the root of every cache
    assert p.replace(cache={"dir": str(tmp_path / "own")}).cache_dir() == tmp_path / "own"


def test_bundled_photos_have_a_manifest_row_each_and_are_held_out_whole():
    import csv

    from radio_nas._shipped import PHOTOS

    rows = {r["file"]: r for r in csv.DictReader(open(PHOTOS / "MANIFEST.csv", encoding="utf-8"))}
    files = sorted(p.name for p in PHOTOS.glob("*.jpg"))
    assert len(files) >= 70 and sorted(rows) == files
    redistributable = {
        "MIT",
        "BSD-3-Clause",
        "PSF-2.0",
        "GPL-2.0-or-later",
        "CC0-1.0",
        "CC-BY-2.0",
        "CC-BY-4.0",
        "CC-BY-SA-3.0",
        "CC-BY-SA-4.0",
        "public-domain",
        "no-known-copyright-restrictions",
    }
    for name in files:
        r = rows[name]
        assert r["licence"] in redistributable and r["source"] and r["original_name"], name
        with Image.open(PHOTOS / name) as im:
            assert im.mode == "RGB" and max(im.size) <= 640, name
    ds = open_dataset(DataConfig(source="photos"))
    train = {i.name for i in ds._items["train"]}
    held = {i.name for i in ds._items["eval"]}
    assert not train & held and train | held == set(files)
    assert 0.15 < len(held) / len(files) < 0.3  # the hash rule, about 20 %
    # the split is a property of the file name: a subset keeps each photo on its side
    some = tuple(sorted(n[:-4] for n in files)[:20])
    sub = open_dataset(DataConfig(source="photos", images=some))
    assert {i.name for i in sub._items["eval"]} <= held
    with pytest.raises(ConfigError, match="no bundled photo 'nope'") as e:
        open_dataset(DataConfig(source="photos", images=("caer_bear", "nope")))
    assert e.value.key == "data.images[1]"
