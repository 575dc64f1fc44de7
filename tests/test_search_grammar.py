"""The sweep parameter grammar: Hydra Optuna-sweeper strings and NNI mappings, parsed (never eval'd)."""

import pytest

from radio_nas._config import ConfigError
from radio_nas.search.grammar import (
    Choice,
    Fixed,
    FloatRange,
    IntRange,
    is_grammar,
    parse_param,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("choice(64, 80, 96)", Choice((64, 80, 96))),
        ("choice(fixed, adaloss, 'uncertainty', \"a b\")", Choice(("fixed", "adaloss", "uncertainty", "a b"))),
        ("choice(true, false, null, -3, 2.5e3)", Choice((True, False, None, -3, 2500.0))),
        ("choice([[2, 1], [1]], [[1], [1]])", Choice(([[2, 1], [1]], [[1], [1]]))),
        ("choice([4, 4], [7, 7])", Choice(([4, 4], [7, 7]))),
        ("interval(1e-4, 1e-2)", FloatRange(1e-4, 1e-2)),
        ("interval(0.5, 2)", FloatRange(0.5, 2.0)),
        ("interval(1, 5)", IntRange(1, 5)),  # two integers: an integer interval (Hydra's Optuna sweeper)
        ("tag(log, interval(1e-4, 1e-2))", FloatRange(1e-4, 1e-2, None, True)),
        ("tag(log, interval(16, 256))", IntRange(16, 256, 1, True)),
        ("range(4, 8)", IntRange(4, 8, 1)),  # inclusive of 8, like Optuna's high
        ("range(0, 10, step=2)", IntRange(0, 10, 2)),
        ("range(0, 10, 5)", IntRange(0, 10, 5)),
        ("range(0.0, 1.0, step=0.25)", FloatRange(0.0, 1.0, 0.25)),
        ("  choice( 1 ,2 )  ", Choice((1, 2))),
    ],
)
def test_hydra_strings(text, expected):
    assert is_grammar(text)
    assert parse_param(text) == expected


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"_type": "choice", "_value": [[2, 1], [1]]}, Choice(([2, 1], [1]))),
        ({"_type": "randint", "_value": [2, 6]}, IntRange(2, 5)),  # NNI: upper bound excluded
        ({"_type": "uniform", "_value": [0.1, 0.9]}, FloatRange(0.1, 0.9)),
        ({"_type": "loguniform", "_value": [1e-4, 1e-1]}, FloatRange(1e-4, 1e-1, None, True)),
        ({"_type": "quniform", "_value": [0, 10, 2]}, IntRange(0, 10, 2)),
        ({"_type": "quniform", "_value": [0, 1, 0.5]}, FloatRange(0.0, 1.0, 0.5)),
    ],
)
def test_nni_mappings(spec, expected):
    assert parse_param(spec) == expected


@pytest.mark.parametrize("value", [64, 0.5, "adaloss", [2, 1], [[2, 1], [1]], None, True])
def test_anything_else_is_fixed(value):
    assert parse_param(value) == Fixed(value)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("choice()", "empty choice"),
        ("choice(1, 1)", "listed twice"),
        ("interval(5, 1)", "low 5 is greater than high 1"),
        ("range(0, 9, step=2)", "not a multiple of step"),
        ("range(0, 10, step=0)", "step must be > 0"),
        ("tag(log, interval(0, 1))", "log scale needs low > 0"),
        ("tag(lin, interval(1, 2))", "unknown tag 'lin'"),
        ("tag(log, choice(1, 2))", "not choice()"),
        ("choise(1, 2)", "unknown function 'choise'"),
        ("choice(1, 2", "expected ',' or ')'"),
        ("choice(1, 2) extra", "unexpected 'extra'"),
        ("interval(a, b)", "expects numbers"),
        ("interval(1)", "exactly two numbers"),
        ("range(1, 2, 3, 4)", "at most three"),
        ("range(1, 5, stride=2)", "no argument 'stride'"),
        ("choice(interval(1, 2))", "cannot be nested inside choice()"),
        ("choice([1, choice(2)])", "cannot be nested"),
        ("choice(1; 2)", "cannot read"),
        ("__import__('os')", "unknown function '__import__'"),
        ({"_type": "normal", "_value": [0, 1]}, "unknown _type 'normal'"),
        ({"_type": "uniform", "_value": [0]}, "must be 2 numbers"),
        ({"_type": "choice", "_value": 3}, "must be a list"),
        ({"_type": "choice", "_value": [], "when": 1}, "unknown key 'when'"),
        ({"_type": "randint", "_value": [0.5, 2]}, "expects integers"),
    ],
)
def test_errors_are_one_line_with_the_key(spec, message):
    with pytest.raises(ConfigError) as info:
        parse_param(spec, key="parameters.arch.width")
    text = str(info.value)
    assert text.startswith("parameters.arch.width: ") and "\n" not in text
    assert message in text


def test_never_evaluates(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError):
        parse_param(f"choice(__import__('pathlib').Path('{marker}').touch())")
    assert not marker.exists()
