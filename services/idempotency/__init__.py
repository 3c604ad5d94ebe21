"""The inbound Idempotency-Key store: any write route can run at most once per caller and key.

Public: `IdempotencyStore` (`begin` -> `Begun`, `finish`, `abandon`, `purge_expired`) and
`StoredResponse`; the HTTP side is api/idempotency.py. See docs/security.md, "Idempotency-Key".
"""

from services.idempotency.store import KEY_MAX, SCOPE_MAX, Begun, IdempotencyStore, StoredResponse

__all__ = ["KEY_MAX", "SCOPE_MAX", "Begun", "IdempotencyStore", "StoredResponse"]
