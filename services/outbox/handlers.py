"""The outbox handler table, and which topics this process may enqueue.

Invariant: `enqueue` writes only messages that a handler is registered for, so a topic nobody
handles fails in the use case that enqueues it, in its transaction, instead of as a dead
message later.

The composition root builds the table (api/outbox_handlers.py: each declared topic wired to the
integration that delivers it) and calls `register_handlers(table)` once at start, before anything
can enqueue; workers deliver with the same table. The record of registered topics is
process-wide, like the logging configuration: enqueue is called from deep inside use cases that
are not handed the table, and threading it through every one of them would put delivery
wiring into every domain's signature. It holds topic names only (no handlers, no connections),
is only ever added to (every composition root in a process builds the same table), and tests
that need other topics use `handlers_registered(...)`, which restores it on exit.

This guards the process that enqueues; a worker in another process delivers with its own
table and makes a message with no handler there `dead`, which an operator re-drives once it has one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from services.outbox.topics import Topic, decode, is_declared

P = TypeVar("P")

# (payload, idempotency_key) -> result stored on the row. Raise integrations.errors to fail.
Handler: TypeAlias = Callable[[P, str], Awaitable[dict[str, Any] | None]]


class TopicWithoutHandler(LookupError):
    """A topic no handler is registered for in this process: its messages could never be delivered."""


@dataclass(frozen=True)
class Route(Generic[P]):
    """A topic and the handler that delivers its payload."""

    topic: Topic[P]
    handler: Handler[P]

    def decode(self, payload: Any) -> P:
        return decode(self.topic, payload)


def route(topic: Topic[P], handler: Handler[P]) -> Route[P]:
    """Pair a topic with its handler; mypy checks the handler takes the topic's payload."""
    return Route(topic, handler)


class HandlerTable:
    """Routes by topic name. Every topic must be declared (`services.outbox.declare`), once."""

    def __init__(self, *routes: Route[Any]) -> None:
        self._routes: dict[str, Route[Any]] = {}
        for r in routes:
            if not is_declared(r.topic):
                raise ValueError(f"topic {r.topic.name!r} is not declared (services.outbox.declare)")
            if r.topic.name in self._routes:
                raise ValueError(f"two handlers for topic {r.topic.name!r}")
            self._routes[r.topic.name] = r

    def get(self, name: str) -> Route[Any] | None:
        return self._routes.get(name)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._routes)

    def __contains__(self, topic: object) -> bool:
        return isinstance(topic, Topic) and topic == (
            r.topic if (r := self._routes.get(topic.name)) else None
        )

    def __iter__(self) -> Iterator[Route[Any]]:
        return iter(self._routes.values())

    def __len__(self) -> int:
        return len(self._routes)

    def __repr__(self) -> str:
        return f"HandlerTable({sorted(self._routes)})"


# --- the topics this process may enqueue -----------------------------------------------------------

_REGISTERED: dict[str, Topic[Any]] = {}


def register_handlers(table: HandlerTable) -> None:
    """Called by the composition root at start: `enqueue` accepts the table's topics from now on."""
    for r in table:
        known = _REGISTERED.get(r.topic.name)
        if known is not None and known != r.topic:
            raise ValueError(f"topic {r.topic.name!r} is registered with another payload type")
    _REGISTERED.update((r.topic.name, r.topic) for r in table)


def require_handler(topic: Topic[Any]) -> None:
    """Raise `TopicWithoutHandler` unless a registered table handles `topic`."""
    if _REGISTERED.get(topic.name) != topic:
        raise TopicWithoutHandler(
            f"no handler is registered for outbox topic {topic.name!r}: wire one in the composition "
            f"root (api/outbox_handlers.py) before enqueueing it; registered: {sorted(_REGISTERED)}"
        )


@contextlib.contextmanager
def handlers_registered(table: HandlerTable) -> Iterator[HandlerTable]:
    """For tests: register `table` for the block, then restore what was registered before."""
    saved = dict(_REGISTERED)
    register_handlers(table)
    try:
        yield table
    finally:
        _REGISTERED.clear()
        _REGISTERED.update(saved)
