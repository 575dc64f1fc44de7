"""Validated, frozen configs that round-trip through plain dicts and YAML.

Every config in radio-nas (architecture, pipeline, search space) is a frozen dataclass built with
:func:`from_dict`, which checks unknown keys and types and raises :class:`ConfigError` naming the
key path. :func:`stable_id` hashes a config's canonical JSON so it can key caches.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad value in a config, a file or an argument; its message is one line for the user."""

    def __init__(self, message: str, *, key: str | None = None, file: str | Path | None = None):
        self.key, self.file, self.detail = key, file, message
        where = ": ".join(str(p) for p in (file, key) if p)
        super().__init__(f"{where}: {message}" if where else message)

    def within(self, file: str | Path | None = None, prefix: str | None = None) -> ConfigError:
        """The same error placed inside `file` and/or under key `prefix`."""
        key = ".".join(p for p in (prefix, self.key) if p) or None
        return ConfigError(self.detail, key=key, file=self.file or file)


# Limits of what a config file may hold: far above any real config, far below what hangs a loader.
MAX_YAML_BYTES = 16 * 2**20
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 200_000
"""Nodes after alias expansion: a billion-laughs file is refused while it is composed."""


def read_text(path: str | Path, *, key: str | None = None, max_bytes: int | None = None) -> str:
    """A text file the user named, read as bytes and decoded as UTF-8; errors name the file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError("is a folder; expected a file", file=path, key=key)
    if not path.is_file():
        raise ConfigError("no such file", file=path, key=key)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1) if max_bytes is not None else fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read it: {exc.strerror or exc}", file=path, key=key) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise ConfigError(f"larger than {max_bytes // 2**20} MiB; expected a small text file", file=path, key=key)
    if b"\x00" in data:
        raise ConfigError(
            f"binary content (a NUL byte at offset {data.index(0)}); expected UTF-8 text", file=path, key=key
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}); save it as UTF-8", file=path, key=key
        ) from None


def load_yaml(path: str | Path, *, key: str | None = None) -> dict[str, Any]:
    """Load a YAML mapping safely (UTF-8, no duplicate keys, bounded depth and alias expansion,
    not empty); errors name the file."""
    path = Path(path)
    text = read_text(path, key=key, max_bytes=MAX_YAML_BYTES)
    try:
        data = parse_yaml(text)
    except ConfigError as exc:
        raise ConfigError(exc.detail, file=path, key=key) from None
    if data is None:
        raise ConfigError("the file is empty (no YAML document); expected a mapping", file=path, key=key)
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(data).__name__}", file=path, key=key)
    return data


def parse_yaml(text: str) -> Any:
    """YAML text to plain data with :class:`_SafeLoader` (safe tags only, limits on depth, alias
    expansion and duplicate keys); raises ConfigError with the line."""
    _check_flow_depth(text)
    loader = _SafeLoader(text)
    try:
        return loader.get_single_data()
    except ConfigError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:  # belt and braces: depth is capped while composing
        raise ConfigError(f"nested deeper than {MAX_YAML_DEPTH} levels") from None
    finally:
        loader.dispose()


_BRACKETS_RE = re.compile(r"[\[\]{}]")


def _check_flow_depth(text: str) -> None:
    """Refuse deep ``[[[...`` / ``{{{...`` nesting before PyYAML's scanner sees it: the scanner reads
    a whole flow collection ahead in time quadratic in its depth (about 1 s at 5000 levels), before
    the composer's depth cap could answer. Brackets inside quoted strings count too; the bound is
    four times the depth cap, far above any real config."""
    depth = 0
    for m in _BRACKETS_RE.finditer(text):
        depth = depth + 1 if m.group() in "[{" else max(depth - 1, 0)
        if depth > 4 * MAX_YAML_DEPTH:
            line = text.count("\n", 0, m.start()) + 1
            raise ConfigError(f"nested deeper than {MAX_YAML_DEPTH} levels at line {line}; expected a flat config")


class _SafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses, while composing, documents nested deeper than MAX_YAML_DEPTH or
    expanding (aliases followed) to more than MAX_YAML_NODES nodes, recursive aliases, and
    duplicate keys in a mapping (YAML says keys are unique; PyYAML silently keeps the last)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            mark = self.peek_event().start_mark
            raise ConfigError(
                f"nested deeper than {MAX_YAML_DEPTH} levels at line {mark.line + 1}; expected a flat config"
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                k = self.construct_object(key_node, deep=True)
                try:
                    if k in seen:
                        raise ConfigError(
                            f"key {k!r} is given twice (lines {seen[k]} and {key_node.start_mark.line + 1}); keep one"
                        )
                    seen[k] = key_node.start_mark.line + 1
                except TypeError:  # an unhashable key: SafeConstructor reports it
                    pass
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: Any) -> int:
    """Nodes of the document with every alias expanded, counted without expanding (memoised per
    node); ConfigError beyond MAX_YAML_NODES or on a node that contains itself."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            active.discard(nid)
            children = _children(node)
            size = 1 + sum(sizes[id(c)] for c in children)
            if size > MAX_YAML_NODES:
                raise ConfigError(
                    f"aliases expand to more than {MAX_YAML_NODES:,} values (line "
                    f"{node.start_mark.line + 1}); an alias bomb? expected a plain config"
                )
            sizes[nid] = size
            continue
        if nid in sizes:
            continue
        if nid in active:
            raise ConfigError(
                f"a recursive alias (line {node.start_mark.line + 1}): a value that contains "
                "itself; expected plain data"
            )
        active.add(nid)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in active:
                raise ConfigError(
                    f"a recursive alias (line {child.start_mark.line + 1}): a value that "
                    "contains itself; expected plain data"
                )
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


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

    Ids recorded before a field existed stay valid: a field added later is listed in the class's
    ``late_fields`` (a plain class attribute, not a field) and enters :attr:`id` only when it
    differs from its default, so every config that leaves it alone keeps the id it had.
    """

    late_fields: typing.ClassVar[tuple[str, ...]] = ()
    """Fields added after ids were first recorded; left out of :meth:`id_payload` at their default."""

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, coerce(hints[f.name], getattr(self, f.name), key=f.name))
        self.validate()

    def validate(self) -> None:
        """Check relations between fields; raise :class:`ConfigError` naming the field."""

    @classmethod
    def from_dict(cls, data: Any, *, key: str = "") -> typing.Self:
        return from_dict(cls, data, key=key)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def replace(self, **changes: Any) -> typing.Self:
        """A copy with some fields changed (validated like any construction)."""
        return from_dict(type(self), {**to_dict(self), **changes})

    def id_payload(self) -> dict[str, Any]:
        """What :attr:`id` hashes: :meth:`to_dict` without the ``late_fields`` at their defaults (at
        every level of nesting)."""
        data = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self.late_fields and f.default is not dataclasses.MISSING:
                if to_dict(value) == to_dict(f.default):
                    continue
            # nested configs drop their own late fields too
            data[f.name] = value.id_payload() if isinstance(value, Config) else to_dict(value)
        return data

    @property
    def id(self) -> str:
        """Stable content hash of this config (:meth:`id_payload`): keys caches and exported files."""
        return stable_id(self.id_payload())


_HINTS: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    """Resolved annotations of a config class, computed once per class."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


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

    @dataclasses.dataclass(frozen=True)
    class Opt:
        lr: float = 1e-3
        steps: int = 10
    from_dict(Opt, {"lr": 0.01})
    # Opt(lr=0.01, steps=10)
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {_describe(data)}", key=key or None)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # T is a dataclass
    unknown = [k for k in data if k not in fields]
    if unknown:
        name = str(unknown[0])
        close = difflib.get_close_matches(name, fields, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(fields)}"
        raise ConfigError(f"unknown key; {hint}", key=_join(key, name))
    hints = _type_hints(cls)
    kwargs = {name: coerce(hints[name], value, key=_join(key, name)) for name, value in data.items()}
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
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
        return from_dict(cast(type, tp), value, key=key)
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
            try:
                number = float(value)
            except OverflowError:
                raise ConfigError(
                    f"number too large ({len(str(value))} digits); expected a finite number", key=key
                ) from None
            if not math.isfinite(number):
                raise ConfigError(f"expected a finite number, got {value}", key=key)
            return number
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


_DOTTED_RE = re.compile(r"[\w\-]+(\[\d+\])?(\.[\w\-]+(\[\d+\])?)*")


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, creating intermediate mappings."""
    parts = dotted.split(".")
    for part in parts:
        if not re.fullmatch(r"[\w\-]+", part):
            what = "an index [i] (only teachers[i] takes one)" if "[" in part else "an empty or malformed name"
            raise ConfigError(
                f"cannot set {dotted!r}: {part!r} is {what}; expected dotted names like a.b.c", key=dotted
            )
    *parents, last = parts
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


def parse_assignment(text: str, *, option: str = "--set") -> tuple[str, Any]:
    """`key=value` from the command line, the value read as YAML (never evaluated). Keys are dotted
    names (``a.b.c``; ``teachers[0].x`` addresses a list item where a config allows it)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"expected key=value, got {text!r}", key=option)
    if not _DOTTED_RE.fullmatch(key):
        raise ConfigError(
            f"malformed key {key!r}; expected dotted names like optim.lr or teachers[0].batch_size", key=option
        )
    if not raw.strip():
        return key, ""
    try:
        value = parse_yaml(raw)
    except ConfigError as exc:
        if "alias" in exc.detail or "nested" in exc.detail or "twice" in exc.detail:
            raise ConfigError(f"{key}: {exc.detail}", key=option) from None
        value = raw  # not YAML: the text itself
    return key, value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return type(value).__name__
    return f"{value!r}"
