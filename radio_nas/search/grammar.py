"""The parameter grammar of search-space files: Hydra Optuna-sweeper strings and NNI mappings.

Parsed by a small tokenizer + recursive-descent parser; nothing is ever evaluated.

    parse_param("choice(64, 80, 96)")
    Choice(values=(64, 80, 96))
    parse_param("tag(log, interval(1e-4, 1e-2))")
    FloatRange(low=0.0001, high=0.01, step=None, log=True)
    parse_param("range(0, 10, step=2)")
    IntRange(low=0, high=10, step=2, log=False)
    parse_param({"_type": "choice", "_value": [[2, 1], [1]]})
    Choice(values=([2, 1], [1]))
    parse_param(64)                       # anything else is a fixed value
    Fixed(value=64)

Bounds (documented in search_spaces/README.md): ``interval(a, b)`` and ``range(a, b)`` include both
ends (Optuna's ``low``/``high``, as Hydra's Optuna sweeper maps them); ``interval`` with two
integers is an integer interval; NNI's ``randint [a, b)`` excludes ``b`` (NNI's own meaning).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from radio_nas._config import ConfigError

__all__ = ["Choice", "Distribution", "Fixed", "FloatRange", "IntRange", "is_grammar", "parse_param"]


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of `values` (numbers, strings, booleans, null or lists of them)."""

    values: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class IntRange:
    """An integer in [low, high] (both inclusive), on the grid low + k*step; log-uniform if `log`."""

    low: int
    high: int
    step: int = 1
    log: bool = False


@dataclasses.dataclass(frozen=True)
class FloatRange:
    """A float in [low, high] (both inclusive); on the grid low + k*step if `step`; log if `log`."""

    low: float
    high: float
    step: float | None = None
    log: bool = False


@dataclasses.dataclass(frozen=True)
class Fixed:
    """A value set for every trial."""

    value: Any


Distribution = Choice | IntRange | FloatRange

_FUNCTIONS = ("choice", "interval", "range", "tag")
_GRAMMAR_RE = re.compile(r"^\s*(choice|interval|range|tag)\s*\(")
_NNI_TYPES = ("choice", "randint", "uniform", "quniform", "loguniform")


def is_grammar(text: Any) -> bool:
    """True when `text` is a string written in the sweep grammar (``choice(...)`` etc.)."""
    return isinstance(text, str) and bool(_GRAMMAR_RE.match(text))


def parse_param(spec: Any, *, key: str | None = None) -> Distribution | Fixed:
    """A distribution from a grammar string or an NNI mapping; any other value is :class:`Fixed`."""
    if is_grammar(spec):
        return _check(_GrammarParser(spec, key).parse(), key)
    if isinstance(spec, dict) and "_type" in spec:
        return _check(_from_nni(spec, key), key)
    if isinstance(spec, str) and re.match(r"^\s*[A-Za-z_]\w*\s*\(", spec):
        name = spec.split("(", 1)[0].strip()
        raise ConfigError(f"unknown function {name!r}; expected one of {', '.join(_FUNCTIONS)}", key=key)
    return Fixed(spec)


# ---------------------------------------------------------------------------------------------
# Hydra-style strings

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<num>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<word>[A-Za-z_][\w.\-/]*)
  | (?P<punct>[()\[\],=])
""",
    re.VERBOSE,
)


def _tokenize(text: str, key: str | None) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise ConfigError(f"cannot read {text[pos:]!r} in {text!r}", key=key)
        pos = m.end()
        if m.lastgroup != "ws":
            tokens.append((m.lastgroup or "", m.group()))
    return tokens


class _GrammarParser:
    """Recursive descent over: call := NAME '(' [arg (',' arg)*] ')'; arg := [NAME '='] value;
    value := call | list | number | string | word; list := '[' [value (',' value)*] ']'."""

    def __init__(self, text: str, key: str | None):
        self.text, self.key = text, key
        self.tokens = _tokenize(text, key)
        self.pos = 0

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{message} in {self.text!r}", key=self.key)

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, text: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok[0] == "end" or (text is not None and tok[1] != text):
            raise self.error(f"expected {text!r}" if text else "unexpected end")
        self.pos += 1
        return tok

    def parse(self) -> Distribution:
        value = self.value()
        if self.peek()[0] != "end":
            raise self.error(f"unexpected {self.peek()[1]!r} after the expression")
        if not isinstance(value, (Choice, IntRange, FloatRange)):
            raise self.error("expected choice(...), interval(...), range(...) or tag(...)")
        return value

    def value(self) -> Any:
        kind, text = self.peek()
        if kind == "punct" and text == "[":
            return self.list_()
        if kind == "word" and self.pos + 1 < len(self.tokens) and self.tokens[self.pos + 1][1] == "(":
            return self.call()
        self.take()
        if kind == "num":
            return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)
        if kind == "str":
            return text[1:-1]
        if kind == "word":
            return {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}.get(
                text, text
            )
        raise self.error(f"unexpected {text!r}")

    def list_(self) -> list[Any]:
        self.take("[")
        items: list[Any] = []
        while self.peek()[1] != "]":
            item = self.value()
            if isinstance(item, (Choice, IntRange, FloatRange)):
                raise self.error("a sweep cannot be nested inside a list")
            items.append(item)
            if self.peek()[1] == ",":
                self.take(",")
            elif self.peek()[1] != "]":
                raise self.error("expected ',' or ']'")
        self.take("]")
        return items

    def call(self) -> Distribution:
        name = self.take()[1]
        if name not in _FUNCTIONS:
            raise self.error(f"unknown function {name!r}; expected one of {', '.join(_FUNCTIONS)}")
        self.take("(")
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        while self.peek()[1] != ")":
            if self.peek()[0] == "word" and self.pos + 1 < len(self.tokens) and self.tokens[self.pos + 1][1] == "=":
                arg_name = self.take()[1]
                self.take("=")
                kwargs[arg_name] = self.value()
            else:
                if kwargs:
                    raise self.error("positional argument after a named one")
                args.append(self.value())
            if self.peek()[1] == ",":
                self.take(",")
            elif self.peek()[1] != ")":
                raise self.error("expected ',' or ')'")
        self.take(")")
        return getattr(self, f"_{name}")(args, kwargs)

    def _choice(self, args: list[Any], kwargs: dict[str, Any]) -> Choice:
        if kwargs:
            raise self.error(f"choice() takes no named arguments, got {next(iter(kwargs))}=")
        if any(isinstance(a, (Choice, IntRange, FloatRange)) for a in args):
            raise self.error("a sweep cannot be nested inside choice(); list plain values")
        return Choice(tuple(args))

    def _interval(self, args: list[Any], kwargs: dict[str, Any]) -> Distribution:
        if kwargs or len(args) != 2:
            raise self.error("interval() takes exactly two numbers: interval(low, high)")
        low, high = (self._number(a, "interval") for a in args)
        if isinstance(low, int) and isinstance(high, int):
            return IntRange(low, high)
        return FloatRange(float(low), float(high))

    def _range(self, args: list[Any], kwargs: dict[str, Any]) -> Distribution:
        unknown = set(kwargs) - {"start", "stop", "step"}
        if unknown:
            raise self.error(f"range() has no argument {min(unknown)!r}; expected start, stop, step")
        names = ["start", "stop", "step"]
        if len(args) > 3:
            raise self.error("range() takes at most three arguments: range(start, stop, step=1)")
        values = dict(zip(names, args))
        for name, val in kwargs.items():
            if name in values:
                raise self.error(f"range() got {name} twice")
            values[name] = val
        if "start" not in values or "stop" not in values:
            raise self.error("range() needs start and stop: range(start, stop[, step])")
        start, stop = self._number(values["start"], "range"), self._number(values["stop"], "range")
        step = self._number(values.get("step", 1), "range")
        if all(isinstance(v, int) for v in (start, stop, step)):
            return IntRange(int(start), int(stop), int(step))
        return FloatRange(float(start), float(stop), float(step))

    def _tag(self, args: list[Any], kwargs: dict[str, Any]) -> Distribution:
        if kwargs or len(args) < 2 or not isinstance(args[-1], (Choice, IntRange, FloatRange)):
            raise self.error("tag() takes tags then one sweep: tag(log, interval(low, high))")
        tags, inner = args[:-1], args[-1]
        for tag in tags:
            if tag != "log":
                raise self.error(f"unknown tag {tag!r}; the only tag understood is 'log'")
        if isinstance(inner, Choice):
            raise self.error("tag(log, ...) applies to interval() or range(), not choice()")
        if inner.step not in (None, 1):
            raise self.error("a log scale cannot have a step")
        if isinstance(inner, IntRange):
            return IntRange(inner.low, inner.high, 1, True)
        return FloatRange(inner.low, inner.high, None, True)

    def _number(self, value: Any, fn: str) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"{fn}() expects numbers, got {value!r}")
        return value


# ---------------------------------------------------------------------------------------------
# NNI mappings: {_type: choice, _value: [...]}


def _from_nni(spec: dict[str, Any], key: str | None) -> Distribution:
    extra = set(spec) - {"_type", "_value"}
    if extra:
        raise ConfigError(f"unknown key {min(extra)!r} in an NNI parameter; expected _type and _value", key=key)
    kind, value = spec.get("_type"), spec.get("_value")
    if kind not in _NNI_TYPES:
        raise ConfigError(f"unknown _type {kind!r}; expected one of {', '.join(_NNI_TYPES)}", key=key)
    if not isinstance(value, list):
        raise ConfigError(f"_value of {kind} must be a list, got {type(value).__name__}", key=key)
    if kind == "choice":
        return Choice(tuple(value))
    nums = _nni_numbers(value, kind, 3 if kind == "quniform" else 2, key)
    if kind == "randint":  # NNI: lower inclusive, upper exclusive
        if not all(isinstance(v, int) for v in nums):
            raise ConfigError("randint expects integers [lower, upper)", key=key)
        return IntRange(int(nums[0]), int(nums[1]) - 1)
    if kind == "uniform":
        return FloatRange(float(nums[0]), float(nums[1]))
    if kind == "loguniform":
        return FloatRange(float(nums[0]), float(nums[1]), None, True)
    low, high, q = nums  # quniform
    if all(isinstance(v, int) for v in nums):
        return IntRange(int(low), int(high), int(q))
    return FloatRange(float(low), float(high), float(q))


def _nni_numbers(value: list[Any], kind: str, n: int, key: str | None) -> list[int | float]:
    if len(value) != n or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
        shape = "[low, high, q]" if n == 3 else "[low, high]"
        raise ConfigError(f"_value of {kind} must be {n} numbers {shape}, got {value!r}", key=key)
    return value


# ---------------------------------------------------------------------------------------------


def _check(dist: Distribution, key: str | None) -> Distribution:
    if isinstance(dist, Choice):
        if not dist.values:
            raise ConfigError("empty choice; expected at least one value", key=key)
        seen: list[Any] = []
        for v in dist.values:
            if v in seen:
                raise ConfigError(f"value {v!r} is listed twice in the choice", key=key)
            seen.append(v)
        return dist
    for bound in (dist.low, dist.high):
        if not math.isfinite(bound):
            raise ConfigError(f"bounds must be finite, got {bound}", key=key)
    if dist.low > dist.high:
        raise ConfigError(f"low {dist.low} is greater than high {dist.high}; expected low <= high", key=key)
    if dist.log and dist.low <= 0:
        raise ConfigError(f"a log scale needs low > 0, got {dist.low}", key=key)
    if dist.step is not None:
        if dist.step <= 0:
            raise ConfigError(f"step must be > 0, got {dist.step}", key=key)
        span = (dist.high - dist.low) / dist.step
        if abs(span - round(span)) > 1e-9:
            raise ConfigError(f"high - low = {dist.high - dist.low} is not a multiple of step {dist.step}", key=key)
    return dist
