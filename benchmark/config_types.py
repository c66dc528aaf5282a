"""The type of every config key, checked once when the config layers are merged.

A key's type is its default's: ``int``, ``float``, ``bool``, ``str``, a list (of its elements' type)
or a section of keys (a mapping default). What a default cannot say is declared beside it, in the
``conf_types`` of a method or dataset class (dotted keys relative to its section) or in
``CORE_TYPES`` (``benchmark.config``) for ``run``, ``solver`` and ``executor``: the type of a key whose
default is null, a union, a range or a set of choices::

    conf_types = {"scenes": list[str] | None,
                  "ransac.max_error": Key(float | list[float], above=0),
                  "split": Key(str, choices=("train", "val", "test"))}

A declared ``dict`` is a free-form mapping (any sub-keys). Values are normalised as they are
checked: an integer given for a float key becomes a float, one string given for a list of strings
becomes a one-element list; so code reading a config never casts. A null default that nobody
declared accepts anything (``tests/test_config.py`` makes sure the built-in classes declare theirs).
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from .errors import UserError


@dataclass(frozen=True)
class Key:
    """A declared key: its type, and the values it allows (bounds apply to each number of a list)."""

    type: Any
    min: float | None = None  # value >= min
    above: float | None = None  # value > above
    max: float | None = None  # value <= max
    below: float | None = None  # value < below
    choices: tuple = ()

    def describe(self) -> str:
        null = _allows_none(self.type)
        if self.choices:
            return f"one of {', '.join([str(c) for c in self.choices] + (['null'] if null else []))}"
        text = describe_type(tuple(o for o in _options(self.type) if o not in (None, type(None))) or self.type)
        low = f"[{self.min:g}" if self.min is not None else (f"({self.above:g}" if self.above is not None else "")
        high = f"{self.max:g}]" if self.max is not None else (f"{self.below:g})" if self.below is not None else "")
        if low and high:
            text = f"{text} in {low}, {high}"
        elif low:
            text = f"{text} {'>=' if low[0] == '[' else '>'} {low[1:]}"
        elif high:
            text = f"{text} {'<=' if high[-1] == ']' else '<'} {high[:-1]}"
        return f"{text} or null" if null else text


ANY = Key(Any)
_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    dict: "a mapping",
    type(None): "null",
    Any: "anything",
}
_PLURALS = {int: "integers", float: "numbers", bool: "booleans", str: "strings", dict: "mappings", Any: "values"}


def _options(t) -> tuple:
    if isinstance(t, tuple):
        return t
    return typing.get_args(t) if typing.get_origin(t) in (typing.Union, types.UnionType) else (t,)


def _allows_none(t) -> bool:
    return any(o is None or o is type(None) for o in _options(t))


def describe_type(t) -> str:
    words = []
    for o in _options(t):
        o = type(None) if o is None else o
        if o is list or typing.get_origin(o) is list:
            (elem,) = typing.get_args(o) or (Any,)
            words.append(f"a list of {_PLURALS.get(elem, 'values')}")
        else:
            words.append(_NAMES.get(o, getattr(o, "__name__", str(o))))
    return " or ".join(words)


class _Mismatch(Exception):
    pass


def _convert(t, value):
    """``value`` as type ``t`` (normalised), else _Mismatch."""
    if t is Any:
        return value
    if t is None or t is type(None):
        if value is None:
            return None
        raise _Mismatch
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        for option in sorted(typing.get_args(t), key=lambda o: o is not type(None)):  # null first
            try:
                return _convert(option, value)
            except _Mismatch:
                continue
        raise _Mismatch
    if t is list or typing.get_origin(t) is list:
        (elem,) = typing.get_args(t) or (Any,)
        if isinstance(value, str) and elem in (str, Any):
            value = [value]  # `--set dataset.scenes=s00460` names one scene
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        return [_convert(elem, v) for v in value]
    if isinstance(value, bool) != (t is bool):  # YAML's true is no integer, 1 no boolean
        raise _Mismatch
    if t is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, t):
        raise _Mismatch
    return value


def _numbers(value) -> list:
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]


def check_value(key: Key, value, dotted: str, source: str):
    """``value`` normalised to ``key``'s type, or a UserError naming the key, the type and the value."""
    try:
        out = _convert(key.type, value)
        if key.choices and out is not None and out not in key.choices:
            raise _Mismatch
        for v in _numbers(out):
            if (
                (key.min is not None and v < key.min)
                or (key.above is not None and v <= key.above)
                or (key.max is not None and v > key.max)
                or (key.below is not None and v >= key.below)
            ):
                raise _Mismatch
    except _Mismatch:
        hint = ""
        if _numbers(value) and describe_type(key.type).startswith(("a string", "a list of strings")):
            hint = "; put a value that looks like a number in quotes"
        raise UserError(f"{dotted} must be {key.describe()}, not {value!r} (in {source}){hint}.") from None
    return out


def wants_text(key) -> bool:
    """Whether ``key`` holds strings only (so `--set` values are taken as written, not as YAML numbers)."""
    if isinstance(key, dict) or key.type is Any:
        return False
    scalars = []
    for o in _options(key.type):
        if o is list or typing.get_origin(o) is list:
            o = (typing.get_args(o) or (Any,))[0]
        scalars.append(o)
    return str in scalars and not any(s in (int, float, bool, Any) for s in scalars)


def _infer(value):
    if isinstance(value, dict):
        return {k: _infer(v) for k, v in value.items()}
    if value is None:
        return ANY
    if isinstance(value, list):
        kinds = {type(v) for v in value}
        if kinds and kinds <= {int, float} and float in kinds:
            kinds = {float}
        return Key(list[kinds.pop()] if len(kinds) == 1 else list)
    return Key(type(value))


def build_schema(defaults: dict, declared: dict) -> dict:
    """The schema tree of a config section: {key: Key or sub-schema}, from the defaults' types and the
    declarations (dotted keys -> Key or a bare type). Declarations of keys the defaults lack are ignored."""
    schema = _infer(defaults)
    for dotted, key in declared.items():
        node, *parts = [schema, *dotted.split(".")]
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and parts[-1] in node:
            node[parts[-1]] = key if isinstance(key, Key) else Key(key)
    return schema


def class_schema(cls) -> dict:
    """Schema of a method or dataset class: its ``default_conf`` and the ``conf_types`` of it and its bases."""
    declared: dict = {}
    for base in reversed(cls.__mro__):
        declared.update(vars(base).get("conf_types", {}))
    return build_schema(cls.default_conf, declared)


def lookup(schema: dict, keys: list[str]):
    """The Key (or sub-schema) at a dotted path, None when there is none."""
    node: Any = schema
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def undeclared_nulls(cls) -> list[str]:
    """Dotted keys of ``cls`` whose default is null and whose type nobody declared."""
    out = []

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif v is ANY:
                out.append(prefix + k)

    walk(class_schema(cls), "")
    return out
