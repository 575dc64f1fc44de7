"""Search-space files: every mistake is one ConfigError line naming file, key and expectation;
`radio-nas sweep` exits 2 and writes nothing. Valid files load with conditions, fixed values, lists."""

from pathlib import Path

import optuna
import pytest
import yaml

from radio_nas._config import ConfigError
from radio_nas.cli import main
from radio_nas.search.space import load_space

REPO = Path(__file__).resolve().parents[1]
PIPELINE = str(REPO / "pipelines" / "distill_cpu.yaml")
VALID = {
    "name": "t1",
    "pipeline": {"path": PIPELINE, "overrides": {"steps": 2, "resolution": 64}},
    "base": {"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16},
    "parameters": {
        "arch.width": "choice(16, 32)",
        "arch.mra_pattern": "choice([[2, 1], [1]], [[1], [1]])",
        "pipeline.balancing.method": {"_type": "choice", "_value": ["fixed", "adaloss"]},
        "pipeline.balancing.adaloss_momentum": {
            "values": "interval(0.5, 0.95)",
            "when": {"pipeline.balancing.method": "adaloss"},
        },
        "pipeline.optim.lr": "tag(log, interval(1e-4, 1e-2))",
        "arch.window_sizes": [2, 2],
    },
    "constraints": {"max_gmacs": 1.0},
}


def write(tmp_path, data, name="space.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def mutate(**changes):
    data = yaml.safe_load(yaml.safe_dump(VALID, sort_keys=False))
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("/")
        for p in parents:
            node = node[p]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return data


_DELETE = object()


def test_valid_space_loads_and_samples_with_conditions(tmp_path):
    space = load_space(write(tmp_path, VALID))
    assert space.name == "t1" and space.objective_names == ["fidelity", "gmacs", "latency_ms"]
    assert [p.name for p in space.sampled][:2] == ["arch.width", "arch.mra_pattern"]
    study = optuna.create_study(directions=["maximize"], sampler=optuna.samplers.RandomSampler(seed=1))
    seen_methods = set()
    for _ in range(12):
        trial = study.ask()
        values = space.sample(trial)
        seen_methods.add(values["pipeline.balancing.method"])
        assert ("pipeline.balancing.adaloss_momentum" in values) == (values["pipeline.balancing.method"] == "adaloss")
        assert values["arch.window_sizes"] == [2, 2]  # fixed value
        cfg = space.arch_config(values)
        assert cfg.mra_pattern == tuple(tuple(x) for x in values["arch.mra_pattern"])  # list choices round-trip
        pipe = space.pipeline_for(values)
        assert pipe.steps == 2 and pipe.balancing.method == values["pipeline.balancing.method"]
        assert 1e-4 <= pipe.optim.lr <= 1e-2
        study.tell(trial, 0.0)
    assert seen_methods == {"fixed", "adaloss"}


def test_hash_ignores_run_only_keys(tmp_path):
    a = load_space(write(tmp_path, VALID, "a.yaml"))
    b = load_space(write(tmp_path, mutate(budget={"trials": 99}, concurrency=2), "b.yaml"))
    c = load_space(write(tmp_path, mutate(**{"parameters/arch.width": "choice(16, 48)"}), "c.yaml"))
    assert a.hash == b.hash != c.hash


def test_ablation_adds_seed_repeats(tmp_path):
    from radio_nas.search.ablation import ablation_points

    data = mutate(
        **{
            "mode": "ablation",
            "ablation": {"design": "ofat", "seeds": 2},
            "parameters/pipeline.balancing.adaloss_momentum": _DELETE,
            "parameters/pipeline.optim.lr": _DELETE,
        }
    )
    space = load_space(write(tmp_path, data))
    points = ablation_points(space)
    # base point + one more level per factor (3 factors of 2 levels) = 4 points, x2 seeds
    assert len(points) == 8 and {p["pipeline.seed"] for p in points} == {0, 1}
    data["ablation"]["design"] = "grid"
    assert len(ablation_points(load_space(write(tmp_path, data)))) == 2 * 2 * 2 * 2


BAD = [
    ("unknown top-level key", mutate(objectivs=[]), "objectivs", "did you mean 'objectives'"),
    ("wrong type", mutate(concurrency="two"), "concurrency", "expected an integer"),
    ("empty choice", mutate(**{"parameters/arch.width": "choice()"}), "parameters.arch.width", "empty choice"),
    (
        "low > high",
        mutate(**{"parameters/pipeline.optim.lr": "interval(0.1, 0.01)"}),
        "parameters.pipeline.optim.lr",
        "greater than high",
    ),
    (
        "fixed value the model rejects",
        mutate(**{"parameters/arch.window_sizes": [0, 2]}),
        "parameters.arch.window_sizes",
        "the model rejects it",
    ),
    (
        "unknown arch field",
        mutate(**{"parameters/arch.widht": "choice(1, 2)"}),
        "parameters.arch.widht",
        "did you mean 'arch.width'",
    ),
    (
        "unknown pipeline field",
        mutate(**{"parameters/pipeline.balancing.mehtod": "choice(a, b)"}),
        "parameters.pipeline.balancing.mehtod",
        "the pipeline rejects it",
    ),
    (
        "target outside arch/pipeline",
        mutate(**{"parameters/width": "choice(1, 2)"}),
        "parameters.width",
        "starting with 'arch.' or 'pipeline.'",
    ),
    (
        "unknown metric",
        mutate(objectives=[{"metric": "fidelty", "direction": "maximize"}]),
        "objectives[0].metric",
        "unknown metric 'fidelty'",
    ),
    (
        "bad direction",
        mutate(objectives=[{"metric": "fidelity", "direction": "up"}]),
        "objectives[0].direction",
        "expected one of",
    ),
    (
        "condition on a missing parameter",
        mutate(
            **{
                "parameters/pipeline.balancing.adaloss_momentum": {
                    "values": "interval(0.5, 0.9)",
                    "when": {"arch.depth": 2},
                }
            }
        ),
        "parameters.pipeline.balancing.adaloss_momentum.when.arch.depth",
        "not another parameter of this space",
    ),
    (
        "condition on an impossible value",
        mutate(
            **{
                "parameters/pipeline.balancing.adaloss_momentum": {
                    "values": "interval(0.5, 0.9)",
                    "when": {"pipeline.balancing.method": "adaloos"},
                }
            }
        ),
        "parameters.pipeline.balancing.adaloss_momentum.when.pipeline.balancing.method",
        "'adaloos' is not a value",
    ),
    (
        "pipeline that does not exist",
        mutate(**{"pipeline/path": "pipelines/nope.yaml"}),
        "pipeline.path",
        "does not exist",
    ),
    ("bad pipeline override", mutate(**{"pipeline/overrides": {"steps": "many"}}), "pipeline", "expected an integer"),
    ("unknown sampler", mutate(sampler="cmaes"), "sampler.name", "expected one of"),
    ("asha with three objectives", mutate(scheduler="asha"), "scheduler.name", "exactly one objective"),
    (
        "grid over a continuous parameter",
        mutate(sampler="grid"),
        "parameters.pipeline.optim.lr",
        "finitely many values",
    ),
    ("negative constraint", mutate(constraints={"max_params": -1}), "constraints.max_params", "positive number"),
    ("bad wall time", mutate(budget={"wall_time": "soon"}), "budget.wall_time", "duration"),
    (
        "bad grammar",
        mutate(**{"parameters/arch.width": "choice(16, 32"}),
        "parameters.arch.width",
        "expected ',' or ')'",
    ),
    ("bad name", mutate(name="../escape"), "name", "a folder name"),
    ("base the model rejects", mutate(base={"preset": "xt", "head_dim": 0}), "base.head_dim", "positive integer"),
    (
        "ablation base level not in the levels",
        mutate(
            **{
                "mode": "ablation",
                "ablation": {"base": {"arch.width": 99}},
                "parameters/pipeline.balancing.adaloss_momentum": _DELETE,
                "parameters/pipeline.optim.lr": _DELETE,
            }
        ),
        "ablation.base.arch.width",
        "not one of the levels",
    ),
]


@pytest.mark.parametrize("what, data, key, message", BAD, ids=[b[0] for b in BAD])
def test_every_mistake_is_one_line_naming_file_and_key(tmp_path, what, data, key, message):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_space(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: "), text
    assert key in text and message in text, text


@pytest.mark.parametrize("what, data, key, message", BAD[::4], ids=[b[0] for b in BAD[::4]])
def test_cli_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys, what, data, key, message):
    path = write(tmp_path, data)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("radio-nas sweep: error: ") and "\n" not in err and message in err
    assert not (tmp_path / "results").exists()


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nparameters: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line"):
        load_space(path)


def test_check_flag_validates_without_writing(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, VALID)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(path), "--check"]) == 0
    assert "ok" in capsys.readouterr().out and not (tmp_path / "results").exists()


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random", "grid", "gp"])
def test_every_sampler_drives_the_shipped_mra_space(sampler):
    from radio_nas.search.optuna_study import make_sampler

    space = load_space(
        REPO / "search_spaces" / "mra.yaml", {"sampler": {"name": sampler, "seed": 0, "n_startup_trials": 2}}
    )
    study = optuna.create_study(directions=space.objective_directions, sampler=make_sampler(space))
    for i in range(4):
        trial = study.ask()
        values = space.sample(trial)
        assert set(values) == {p.name for p in space.params}
        study.tell(trial, [0.1 * i, 1.0 / (i + 1), 0.5])
    if sampler == "grid":
        assert space.grid_size() == 3 * 3 * 3 * 4


@pytest.mark.parametrize("name", ["mra", "widths", "loss_balancing", "smoke"])
def test_shipped_spaces_load(name):
    space = load_space(REPO / "search_spaces" / f"{name}.yaml")
    assert space.name == name and space.sampled


# --- malformed files refused while loading (in-process; tests/test_fuzz_cli.py runs the CLI) ---


@pytest.mark.parametrize(
    "text, fragment",
    [
        (
            "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "x"] * 10) + "]\n" for i in range(9)),
            "alias bomb",
        ),
        ("a: &r {x: *r}\n", "recursive alias"),
        ("a: " + "[" * 200 + "]" * 200 + "\n", "nested deeper"),
        ("name: a\nbudget: {trials: 1}\nname: b\n", "'name' is given twice"),
        ("", "empty"),
        ("# only a comment\n", "empty"),
    ],
)
def test_yaml_loader_refuses_what_would_hang_or_mislead(tmp_path, text, fragment):
    from radio_nas._config import load_yaml

    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=fragment) as info:
        load_yaml(f)
    assert str(f) in str(info.value)


def test_yaml_loader_keeps_ordinary_aliases_and_merge_keys(tmp_path):
    from radio_nas._config import load_yaml

    f = tmp_path / "s.yaml"
    f.write_text("base: &b {width: 16}\nother: *b\nmerged: {<<: *b, width: 32}\n")
    assert load_yaml(f) == {"base": {"width": 16}, "other": {"width": 16}, "merged": {"width": 32}}


@pytest.mark.parametrize("raw", [b"name: caf\xe9\n", b"\x00\x01binary"])
def test_non_utf8_and_binary_files_name_the_file(tmp_path, raw):
    from radio_nas._config import load_yaml

    f = tmp_path / "s.yaml"
    f.write_bytes(raw)
    with pytest.raises(ConfigError, match="UTF-8") as info:
        load_yaml(f)
    assert str(f) in str(info.value)


@pytest.mark.parametrize(
    "extra, key",
    [
        ("  pipeline.balancing.method: choice(fixed, bogus)\n", "parameters.pipeline.balancing.method"),
        ("  arch.mra_pattern: choice([[2, 1], [1]], [[3], [1]])\n", "parameters.arch.mra_pattern"),
        ("  pipeline.optim.lr: interval(0.001, 1e999)\n", "parameters.pipeline.optim.lr"),
    ],
)
def test_every_value_is_built_at_load(tmp_path, extra, key):
    text = (
        "name: v\npipeline: {overrides: {resolution: 64, steps: 2}}\n"
        "base: {preset: xt, width: 16, depths: [1, 1, 1, 1], head_dim: 16}\n"
        "parameters:\n  arch.width: choice(16, 32)\n" + extra
    )
    f = tmp_path / "v.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_space(f)
    assert info.value.key == key or key in str(info.value)


def test_a_value_valid_in_some_combination_is_kept(tmp_path):
    # ratio 4 divides the 8x8 stage-3 map at 128 px, not the 6x6 at 96 px nor the 10x10 at 160 px
    def space(resolution: str) -> Path:
        f = tmp_path / "v.yaml"
        f.write_text(
            "name: v\npipeline: {overrides: {steps: 2}}\n"
            "base: {preset: xt, width: 16, depths: [1, 1, 1, 1], head_dim: 16}\n"
            "parameters:\n  arch.mra_pattern: choice([[1], [1]], [[4], [1]])\n"
            f"  pipeline.resolution: {resolution}\n"
        )
        return f

    assert [p.name for p in load_space(space("choice(96, 128)")).sampled] == ["arch.mra_pattern", "pipeline.resolution"]
    with pytest.raises(ConfigError, match="ratio 4") as info:
        load_space(space("choice(96, 160)"))
    assert info.value.key == "parameters.arch.mra_pattern"


def test_a_huge_range_is_never_listed(tmp_path):
    f = tmp_path / "v.yaml"
    f.write_text(
        "name: v\npipeline: {overrides: {resolution: 64, steps: 2}}\n"
        "base: {preset: xt, width: 16, depths: [1, 1, 1, 1], head_dim: 16}\n"
        "parameters:\n  pipeline.steps: range(1, 1000000000000)\n"
    )
    space = load_space(f)
    assert space.grid_size() is None and space.sampled[0].count == 10**12  # both ends included
