"""The transactional outbox (docs/outbox.md): `enqueue` a message in the transaction of the change
that causes it; workers deliver it at least once under its idempotency key.

Public to other domains: `enqueue`. Each domain declares its topics beside itself (`topics.py`);
the handlers are wired in the composition root (api/outbox_handlers.py).
"""

from services.outbox.store import enqueue

__all__ = ["enqueue"]
