"""`@idempotent()`: a write route runs at most once per caller and `Idempotency-Key`
(IETF draft-ietf-httpapi-idempotency-key-header; the store and its invariant are in
services/idempotency/store.py).

Applied below `@requires(...)`, so the caller is known: the scope is `principal.subject`, and one
caller's key never meets another's. The fingerprint is SHA-256 over the method, the path (with
the query string) and the raw body bytes: the same key with anything else is 422
IDEMPOTENCY_KEY_REUSED, never a replay of a different request.

What is stored is the answer the client would have seen: a success, and a 4xx domain refusal
(the draft: a retry gets the same refusal, it does not run again). An unexpected error, a 5xx,
a cancelled request (the client went away) is abandoned: the row is deleted and a retry runs.
Without the header the route runs as before, unless `required=True` (400, as the IETF
idempotency-key draft says).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

from sanic import HTTPResponse, Request

from api.errors import domain_problem, status_for
from api.guards import current_principal
from api.openapi import IDEMPOTENCY_MARK
from services.errors import DomainError, IdempotencyKeyInvalid, IdempotencyKeyRequired
from services.idempotency import KEY_MAX, SCOPE_MAX, IdempotencyStore, StoredResponse

log = logging.getLogger("estate.api.idempotency")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Set on the handler (and copied by functools.wraps onto `requires`' wrapper), so `doc()` can
# document the header: {"required": bool}.
MARK = IDEMPOTENCY_MARK

# Not stored for a replay: per connection or per request, set again by the server and the
# middleware, or a credential.
_NOT_REPLAYED = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "date",
        "server",
        "set-cookie",
        "x-request-id",
        REPLAYED_HEADER.lower(),
    }
)


def parse_key(values: list[str]) -> str:
    """The key: one header, a bare token of visible ASCII or a Structured Field string
    (`"..."`, RFC 8941, as the draft writes it), 1..255 characters."""
    if len(values) != 1:
        raise IdempotencyKeyInvalid("只能提供一个 Idempotency-Key", "Send exactly one Idempotency-Key header")
    value = values[0].strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        key = _sf_string(value[1:-1])
    elif value and all(0x21 <= ord(c) <= 0x7E for c in value) and '"' not in value:
        key = value
    else:
        key = None
    if key is None or not 0 < len(key) <= KEY_MAX:
        raise IdempotencyKeyInvalid(
            f"Idempotency-Key 须为 1 至 {KEY_MAX} 个可打印 ASCII 字符",
            f"The Idempotency-Key must be 1 to {KEY_MAX} printable ASCII characters",
            max_length=KEY_MAX,
        )
    return key


def _sf_string(inner: str) -> str | None:
    out: list[str] = []
    chars = iter(inner)
    for c in chars:
        if not 0x20 <= ord(c) <= 0x7E:
            return None
        if c == "\\":
            escaped = next(chars, "")
            if escaped not in ('"', "\\"):
                return None
            out.append(escaped)
        elif c == '"':
            return None
        else:
            out.append(c)
    return "".join(out)


def fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    target = request.path + ("?" + request.query_string if request.query_string else "")
    digest.update(f"{request.method}\n{target}\n".encode())
    digest.update(request.body or b"")
    return digest.hexdigest()


def scope_of(subject: str) -> str:
    """The caller's subject (`person:42`); hashed in the unlikely case it exceeds the column."""
    return subject if len(subject) <= SCOPE_MAX else hashlib.sha256(subject.encode()).hexdigest()


def _store(request: Request) -> IdempotencyStore:
    ctx = request.app.ctx
    store: IdempotencyStore | None = getattr(ctx, "idempotency_store", None)
    if store is None:
        services = ctx.services
        store = getattr(services, "idempotency", None) or IdempotencyStore(
            services.clock, services.settings.idempotency_ttl_s
        )
        ctx.idempotency_store = store
    return store


def _to_store(response: HTTPResponse) -> StoredResponse:
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() not in _NOT_REPLAYED}
    if response.content_type:
        headers["content-type"] = response.content_type
    return StoredResponse(status=response.status, body=bytes(response.body or b""), headers=headers)


def replayed(stored: StoredResponse) -> HTTPResponse:
    headers = dict(stored.headers)
    content_type = headers.pop("content-type", None)
    headers[REPLAYED_HEADER] = "true"
    return HTTPResponse(stored.body or None, status=stored.status, headers=headers, content_type=content_type)


def idempotent(*, required: bool = False) -> Callable[[F], F]:
    """Run the route at most once per caller and Idempotency-Key; replay its answer after."""

    def decorator(handler: F) -> F:
        @wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Any:
            values = request.headers.getall(HEADER, [])
            if not values:
                if required:
                    raise IdempotencyKeyRequired()
                return await handler(request, *args, **kwargs)
            key = parse_key(values)
            principal = await current_principal(request)
            store = _store(request)
            begun = await store.begin(scope_of(principal.subject), key, fingerprint(request))
            if begun.replay is not None:
                return replayed(begun.replay)
            record = begun.record
            try:
                response = await handler(request, *args, **kwargs)
            except DomainError as error:
                if status_for(error) >= 500:
                    await _abandon(store, record)
                    raise
                response = domain_problem(request, error)  # what the error handler would answer
            except BaseException:
                await _abandon(store, record)
                raise
            if not isinstance(response, HTTPResponse) or response.status >= 500:
                await _abandon(store, record)  # a stream cannot be stored; a 5xx may be retried
                return response
            stored = _to_store(response)
            try:
                if not await store.finish(record, stored.status, stored.body, stored.headers):
                    log.warning("idempotency: the record was replaced before the answer was stored")
            except Exception:  # the operation happened: answer it; the row is replaced once stale
                log.exception("idempotency: could not store the answer")
            return response

        setattr(wrapper, MARK, {"required": required})
        return wrapper  # type: ignore[return-value]

    return decorator


async def _abandon(store: IdempotencyStore, record: Any) -> None:
    """Shielded: a request cancelled mid-way (client gone) must still release its key."""
    try:
        await asyncio.shield(store.abandon(record))
    except Exception:  # the original error matters more; the row is replaced once stale
        log.exception("idempotency: could not abandon the record")
