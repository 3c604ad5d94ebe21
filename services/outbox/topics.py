"""Outbox topics: a name and the dataclass its payload is, declared beside the domain that enqueues it.

Invariant: a stored payload is plain JSON that decodes to exactly the topic's dataclass, or
decoding fails with `PayloadError` naming the topic and field. Both ends share the dataclass, so
the producer and the handler cannot disagree on a key; a misspelt, missing or extra key fails at
once, never as a `KeyError` deep in a handler on its eighth attempt.

Serialisation (`encode` / `decode`): one JSON object per payload, one key per field. Dates and
timezone-aware datetimes as ISO 8601 strings (a naive datetime is refused), tuples and lists as
arrays, nested dataclasses as objects, `X | None` as the value or null. A field with a default may
be absent, so rows written before a field was added still decode; an unknown key is an error.
The field types a payload may use are checked when the topic is declared.

`declare` keeps one process-wide table of topic names, filled as domain modules are imported
(like the dataclasses themselves, it holds definitions only, never connections): two topics with
one name would route one domain's messages to another's handler, so the second is refused.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

P = TypeVar("P")

TOPIC_MAX = 64  # OutboxMessage.topic's column width


class PayloadError(ValueError):
    """A payload that is not its topic's dataclass, or JSON that does not decode to it."""


@dataclass(frozen=True)
class Topic(Generic[P]):
    """An outbox topic: what workers route on (`name`) and the payload's dataclass."""

    name: str
    payload: type[P]

    def __str__(self) -> str:
        return self.name


_DECLARED: dict[str, Topic[Any]] = {}


def declare(name: str, payload: type[P]) -> Topic[P]:
    """Declare a topic. Declaring the same name with the same payload again (a module imported
    twice) returns the same topic; another payload under a taken name is refused."""
    if not name or len(name) > TOPIC_MAX:
        raise ValueError(f"topic name must be 1..{TOPIC_MAX} characters: {name!r}")
    if not (isinstance(payload, type) and dataclasses.is_dataclass(payload)):
        raise TypeError(f"the payload of topic {name!r} must be a dataclass, not {payload!r}")
    if not payload.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"the payload of topic {name!r} must be a frozen dataclass")
    for field_name, hint in _hints(payload).items():
        _check_supported(hint, f"{name}.{field_name}")
    topic = Topic(name, payload)
    existing = _DECLARED.setdefault(name, topic)
    if existing != topic:
        raise ValueError(
            f"topic {name!r} is already declared with payload "
            f"{existing.payload.__module__}.{existing.payload.__qualname__}"
        )
    return existing


def declared_topics() -> Mapping[str, Topic[Any]]:
    """Every topic declared so far in this process, by name."""
    return types.MappingProxyType(_DECLARED)


def is_declared(topic: Topic[Any]) -> bool:
    return _DECLARED.get(topic.name) == topic


# --- encode / decode ------------------------------------------------------------------------------


def encode(payload: object) -> dict[str, Any]:
    """The JSON object stored for `payload` (a dataclass instance); its field values are checked."""
    if not dataclasses.is_dataclass(payload) or isinstance(payload, type):
        raise PayloadError(f"a payload must be a dataclass instance, not {type(payload).__name__}")
    cls = type(payload)
    hints = _hints(cls)
    return {
        f.name: _to_json(getattr(payload, f.name), hints[f.name], f"{cls.__qualname__}.{f.name}")
        for f in dataclasses.fields(payload)
    }


def decode(topic: Topic[P], data: Any) -> P:
    """The payload dataclass of `topic` from its stored JSON object."""
    cls = topic.payload
    if not isinstance(data, Mapping):
        raise PayloadError(f"{topic.name}: the payload is not a JSON object but {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise PayloadError(f"{topic.name}: unknown field(s) {', '.join(unknown)}")
    missing = sorted(
        name
        for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise PayloadError(f"{topic.name}: missing field(s) {', '.join(missing)}")
    hints = _hints(cls)
    values = {name: _from_json(value, hints[name], f"{topic.name}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:  # the dataclass's own checks (__post_init__)
        raise PayloadError(f"{topic.name}: {exc}") from exc


# --- field types ------------------------------------------------------------------------------------

_SCALARS: tuple[type, ...] = (str, int, float, bool)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """A payload class's resolved field types, once: resolving them costs more than decoding a row."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _parts(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    origin = typing.get_origin(hint)
    if origin is types.UnionType:
        origin = typing.Union
    return origin, typing.get_args(hint)


def _optional(args: tuple[Any, ...], where: str) -> Any:
    """X from `X | None`; other unions have no unambiguous JSON form."""
    rest = [a for a in args if a is not type(None)]
    if len(rest) != 1 or len(args) != 2:
        raise TypeError(f"{where}: only `X | None` unions are supported")
    return rest[0]


def _check_supported(hint: Any, where: str) -> None:
    origin, args = _parts(hint)
    if hint is Any or hint in (*_SCALARS, date, datetime):
        return
    if origin is typing.Union:
        _check_supported(_optional(args, where), where)
    elif (origin is tuple and len(args) == 2 and args[1] is Ellipsis) or (origin is list and len(args) == 1):
        _check_supported(args[0], where)
    elif origin in (dict, Mapping) and len(args) == 2 and args[0] is str:
        _check_supported(args[1], where)
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        for name, sub in _hints(hint).items():
            _check_supported(sub, f"{where}.{name}")
    else:
        raise TypeError(f"{where}: field type {hint!r} has no JSON form here")


def _wrong(where: str, hint: Any, value: Any) -> PayloadError:
    name = getattr(hint, "__name__", None) or str(hint)
    return PayloadError(f"{where}: expected {name}, got {type(value).__name__} {value!r:.40}")


def _to_json(value: Any, hint: Any, where: str) -> Any:
    origin, args = _parts(hint)
    if hint is Any:
        return value
    if origin is typing.Union:
        return None if value is None else _to_json(value, _optional(args, where), where)
    if hint is datetime:
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise _wrong(where, "timezone-aware datetime", value)
        return value.isoformat()
    if hint is date:
        if not isinstance(value, date) or isinstance(value, datetime):
            raise _wrong(where, hint, value)
        return value.isoformat()
    if hint in _SCALARS:
        return _scalar(value, hint, where)
    if origin in (tuple, list):
        if not isinstance(value, tuple | list):
            raise _wrong(where, hint, value)
        return [_to_json(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _wrong(where, hint, value)
        return {k: _to_json(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if not isinstance(value, hint):
        raise _wrong(where, hint, value)
    return encode(value)


def _from_json(value: Any, hint: Any, where: str) -> Any:
    origin, args = _parts(hint)
    if hint is Any:
        return value
    if origin is typing.Union:
        return None if value is None else _from_json(value, _optional(args, where), where)
    if hint in (datetime, date):
        if not isinstance(value, str):
            raise _wrong(where, hint, value)
        try:
            parsed = hint.fromisoformat(value)
        except ValueError as exc:
            raise PayloadError(f"{where}: not an ISO 8601 {hint.__name__}: {value!r:.40}") from exc
        if hint is datetime and parsed.tzinfo is None:
            raise PayloadError(f"{where}: a datetime without a timezone: {value!r:.40}")
        return parsed
    if hint in _SCALARS:
        return _scalar(value, hint, where)
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise _wrong(where, hint, value)
        return origin(_from_json(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _wrong(where, hint, value)
        return {str(k): _from_json(v, args[1], f"{where}.{k}") for k, v in value.items()}
    return decode(Topic(where, hint), value)


def _scalar(value: Any, hint: type, where: str) -> Any:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise _wrong(where, hint, value)
    return value
