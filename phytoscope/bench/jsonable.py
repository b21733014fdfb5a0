"""Typed dataclasses to and from JSON values, by their type hints.

Small on purpose: the benchmark's results are frozen dataclasses whose fields are numbers,
strings, ``X | None``, tuples, dicts and other such dataclasses, and a ``results.json``
written by an older phytoscope must still load (missing keys take the field's default,
unknown keys are ignored). A general library (cattrs, pydantic) would be one more
dependency in the .deb for these forty lines.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


class SchemaError(ValueError):
    """A JSON value does not fit the type it should be read as (names where)."""


def to_jsonable(value: Any) -> Any:
    """Dataclasses as dicts (recursively), tuples as lists, paths as strings, numpy
    scalars and arrays as Python numbers and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        if to_dict is not None:
            return to_jsonable(to_dict())
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_jsonable(tp: Any, data: Any, where: str = "") -> Any:
    """``data`` (parsed JSON) read as type ``tp``; raises :class:`SchemaError` naming the
    path of the first value that does not fit."""
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return data
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if data is None:
            return None
        return from_jsonable(args[0], data, where)
    if data is None:
        raise SchemaError(f"{where or 'value'}: missing (null) where {tp} is needed")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, data, where)
    if origin is dict:
        key_t, value_t = typing.get_args(tp)
        _expect(data, dict, where)
        return {
            from_jsonable(key_t, k, where): from_jsonable(value_t, v, f"{where}.{k}")
            for k, v in data.items()
        }
    if origin in (tuple, list):
        _expect(data, list, where)
        item_t = typing.get_args(tp)[0]
        items = [from_jsonable(item_t, v, f"{where}[{i}]") for i, v in enumerate(data)]
        return tuple(items) if origin is tuple else items
    return _scalar(tp, data, where)


def _dataclass(cls: type[T], data: Any, where: str) -> T:
    from_dict = getattr(cls, "from_dict", None)
    _expect(data, dict, where)
    if from_dict is not None:
        return typing.cast(T, from_dict(data))
    hints = _hints(cls)
    values = {
        f.name: from_jsonable(hints[f.name], data[f.name], f"{where}.{f.name}".lstrip("."))
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name in data
    }
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise SchemaError(f"{where or cls.__name__}: {exc}") from exc


def _scalar(tp: Any, data: Any, where: str) -> Any:
    try:
        if tp is float:
            return float(data)
        if tp is int and not isinstance(data, bool):
            return int(data)
        if tp is Path:
            return Path(data)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{where}: {data!r} is not a {tp.__name__}") from exc
    if tp in (str, bool) and not isinstance(data, tp):
        raise SchemaError(f"{where}: {data!r} is not a {tp.__name__}")
    return data


def _expect(data: Any, kind: type, where: str) -> None:
    if not isinstance(data, kind):
        raise SchemaError(f"{where or 'value'}: expected a JSON {kind.__name__}, got {data!r:.60}")
