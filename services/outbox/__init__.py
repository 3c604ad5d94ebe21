"""The transactional outbox (docs/outbox.md): `enqueue` a message in the transaction of the change
that causes it; workers deliver it at least once under its idempotency key.

Public to other domains: `enqueue`, and `declare` with `Topic` for the topics each domain declares
beside itself (`topics.py`, a payload dataclass per topic). The handlers are wired in the
composition root (api/outbox_handlers.py), which registers them at start (`register_handlers`);
`enqueue` refuses a topic that has none.
"""

from services.outbox.handlers import HandlerTable, TopicWithoutHandler, register_handlers, route
from services.outbox.store import Outgoing, enqueue, enqueue_many, redrive
from services.outbox.topics import PayloadError, Topic, declare

__all__ = [
    "HandlerTable",
    "Outgoing",
    "PayloadError",
    "Topic",
    "TopicWithoutHandler",
    "declare",
    "enqueue",
    "enqueue_many",
    "redrive",
    "register_handlers",
    "route",
]
