"""Validated, frozen configs that round-trip through plain dicts and YAML.

Every config in radio-nas (architecture, pipeline, search space) is a frozen dataclass built with
:func:`from_dict`, which checks unknown keys and types and raises :class:`ConfigError` naming the
key path. :func:`stable_id` hashes a config's canonical JSON so it can key caches.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad value in a config, a file or an argument; its message is one line for the user."""

    def __init__(self, message: str, *, key: str | None = None, file: str | Path | None = None):
        self.key, self.file, self.detail = key, file, message
        where = ": ".join(str(p) for p in (file, key) if p)
        super().__init__(f"{where}: {message}" if where else message)

    def within(self, file: str | Path | None = None, prefix: str | None = None) -> "ConfigError":
        """The same error placed inside `file` and/or under key `prefix`."""
        key = ".".join(p for p in (prefix, self.key) if p) or None
        return ConfigError(self.detail, key=key, file=self.file or file)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping safely; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("no such file", file=path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", file=path) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(data).__name__}", file=path)
    return data


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def stable_id(data: Any, length: int = 12) -> str:
    """A short content hash of plain data (dict/list/scalars), stable across runs and machines."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


class Config:
    """Base for frozen config dataclasses: fields are type-checked and normalised on construction
    (lists become tuples, ints become floats where a float is declared), then :meth:`validate` runs.

    Subclasses are declared ``@dataclasses.dataclass(frozen=True)`` and override :meth:`validate`
    to raise :class:`ConfigError` naming the field.
    """

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, coerce(hints[f.name], getattr(self, f.name), key=f.name))
        self.validate()

    def validate(self) -> None:
        """Check relations between fields; raise :class:`ConfigError` naming the field."""

    @classmethod
    def from_dict(cls: type[T], data: Any, *, key: str = "") -> T:
        return from_dict(cls, data, key=key)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def replace(self: T, **changes: Any) -> T:
        """A copy with some fields changed (validated like any construction)."""
        return from_dict(type(self), {**to_dict(self), **changes})

    @property
    def id(self) -> str:
        """Stable content hash of this config: keys caches and exported files."""
        return stable_id(self.to_dict())


@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def to_dict(cfg: Any) -> Any:
    """A dataclass (or nested data) as plain dicts/lists/scalars, ready for YAML or JSON."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def from_dict(cls: type[T], data: Any, *, key: str = "") -> T:
    """Build dataclass `cls` from a plain mapping, checking keys and types against annotations.

    >>> @dataclasses.dataclass(frozen=True)
    ... class Opt:
    ...     lr: float = 1e-3
    ...     steps: int = 10
    >>> from_dict(Opt, {"lr": 0.01})
    Opt(lr=0.01, steps=10)
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {_describe(data)}", key=key or None)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        name = str(unknown[0])
        close = difflib.get_close_matches(name, fields, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(fields)}"
        raise ConfigError(f"unknown key; {hint}", key=_join(key, name))
    hints = _type_hints(cls)
    kwargs = {name: coerce(hints[name], value, key=_join(key, name)) for name, value in data.items()}
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise ConfigError("required key is missing", key=_join(key, missing[0]))
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise exc.within(prefix=key or None) from None
    except TypeError as exc:  # a plain dataclass rejecting its arguments
        raise ConfigError(str(exc), key=key or None) from None


def coerce(tp: Any, value: Any, *, key: str) -> Any:
    """Check `value` against type annotation `tp` (converting lists to tuples, ints to floats)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(arg, value, key=key)
            except ConfigError as exc:
                errors.append(exc.detail)
        raise ConfigError(" or ".join(dict.fromkeys(errors)), key=key)
    if origin is Literal:
        if value in args and not isinstance(value, bool):
            return value
        raise ConfigError(f"expected one of {', '.join(map(repr, args))}; got {value!r}", key=key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {_describe(value)}", key=key)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"expected a list of {len(args)} items, got {len(value)}", key=key)
            return tuple(coerce(a, v, key=f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [coerce(item, v, key=f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {_describe(value)}", key=key)
        vt = args[1] if args else Any
        return {str(k): coerce(vt, v, key=_join(key, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key=key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"expected true or false, got {_describe(value)}", key=key)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"expected an integer, got {_describe(value)}", key=key)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"expected a number, got {_describe(value)}", key=key)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"expected a string, got {_describe(value)}", key=key)
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"expected null, got {_describe(value)}", key=key)
    return value


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, creating intermediate mappings."""
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {} if child is None else child
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set '{last}' inside a {type(child).__name__}", key=dotted)
            node[part] = child
        node = child
    node[last] = value


def parse_assignment(text: str) -> tuple[str, Any]:
    """`key=value` from the command line, the value read as a YAML scalar or list (never evaluated)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"expected key=value, got {text!r}", key="--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return type(value).__name__
    return f"{value!r}"
