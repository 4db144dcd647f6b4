"""Typed validation of component parameters from their signatures' annotations.

``check_params(target, values, name)`` checks every configured value against the type
hint of the target's parameter of that name (``int``, ``float``, ``bool``, ``str``,
``None``, ``Literal``, unions, ``list[...]``/``tuple[...]``, ``dict``): a value of the
wrong type (``"maybe"`` for a bool, ``1.5`` for an int), a nan, or an inf where the
annotation says ``float`` gives one :class:`~byzbench.ConfigError` line naming the key,
the value and what is allowed. Ranges are checked by each component's constructor with
``require``; whatever else a constructor raises (``ValueError``, ``TypeError``) is turned
into one line by ``byzbench.build``. Annotations this module does not know (classes,
callables, tensors) are not checked: those values are injected by the build.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from byzbench import ConfigError

_UNION_TYPES = (typing.Union, types.UnionType)


def hints(target: Any) -> dict[str, Any]:
    """The resolved type hints of ``target``'s constructor (or function) parameters;
    empty where they cannot be resolved (third-party signatures)."""
    fn = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: nothing to check
        return {}


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in _UNION_TYPES:
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is not None:
        return {list: "a list", tuple: "a list", dict: "a mapping"}.get(origin, str(hint))
    return {bool: "true or false", int: "an integer", float: "a finite number",
            str: "a string", list: "a list", tuple: "a list", dict: "a mapping"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def matches(value: Any, hint: Any) -> bool | None:
    """Whether ``value`` fits ``hint``; None when the hint is not one this module
    checks (the value is then accepted)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return None
    origin = typing.get_origin(hint)
    if origin in _UNION_TYPES:
        results = [matches(value, a) for a in typing.get_args(hint)]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None) or hint is None:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value))
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if len(args) == 1 or (origin is tuple and args and len(set(args)) == 1):
            inner = [matches(v, args[0]) for v in value]
            return False if any(r is False for r in inner) else True
        return True
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return isinstance(value, Mapping)
    return None


def check_params(target: Any, values: Mapping[str, Any], name: str) -> None:
    """One ConfigError line for the first configured value that does not fit its
    annotation (``name.key=value is invalid: <what is allowed>``)."""
    h = hints(target)
    for key, value in values.items():
        if key in h and matches(value, h[key]) is False:
            raise ConfigError(f"{name}.{key}={value!r} is invalid: {_describe(h[key])}")
