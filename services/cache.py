"""Per-person cache of property lists in the KV store, invalidated by generation tokens.

Why generations and not "delete the key": a reader that started before a registry change commits
can finish after it and write the list it read into the cache. With a plain delete-on-change that
late write would repopulate the cache with the old list. So every cached list is stored under the
person's current *generation token*, and a change replaces the token once it has committed:

    reader:  token = get(gen)            (a missing token is created: a fresh random one)
             rows  = read the database   (strictly after the token was fetched)
             set(list:{token}:..., rows)
    writer:  commit the change
             set(gen, fresh random token)  (the "bump", strictly after the commit)

If a reader's database read happened before the commit, its token was fetched even earlier, so
the bump after the commit replaces that token and the reader's late write lands under a key no
one asks for again (it expires after `ttl_s`). Any read that starts after the writer returned
sees the new token, misses, and reads the committed data. The bump is a `set` of a random value,
not an increment, so concurrent writers need no read-modify-write, and an evicted or expired
token is simply recreated (an old entry can never be reached under a fresh random token).

The only stale window is between the commit and the bump (the writer's own next statement). If
the bump itself fails (Redis down), it is retried once and logged; the entry TTL bounds what a
lost bump can cost. A KV failure on the read path falls back to the database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from services.kv import KeyValueStore

log = logging.getLogger("estate.cache")

_GEN_PREFIX = "props:gen:"
_LIST_PREFIX = "props:list:"
GEN_TTL_S = 7 * 24 * 3600  # longer than any entry; when it lapses the next reader makes a new one


def _gen_key(person_id: int) -> str:
    return f"{_GEN_PREFIX}{person_id}"


def _fingerprint(params: dict[str, Any]) -> str:
    raw = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


async def _current_generation(kv: KeyValueStore, person_id: int) -> str:
    token = await kv.get(_gen_key(person_id))
    if token is not None:
        return token.decode()
    fresh = secrets.token_hex(8)
    await kv.set(_gen_key(person_id), fresh.encode(), ttl_s=GEN_TTL_S)
    return fresh


async def cached_property_list(
    *,
    kv: KeyValueStore,
    person_id: int,
    params: dict[str, Any],
    ttl_s: float,
    load: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """The person's list for `params` (filters, cursor, limit): from the cache, or `load()` and store."""
    try:
        generation = await _current_generation(kv, person_id)
        key = f"{_LIST_PREFIX}{person_id}:{generation}:{_fingerprint(params)}"
        hit = await kv.get(key)
    except Exception:  # the cache is an optimisation: a KV outage must not fail the read
        log.warning("property cache unavailable; reading the database", exc_info=True)
        return await load()
    if hit is not None:
        cached: dict[str, Any] = json.loads(hit)
        return cached
    page = await load()
    try:
        await kv.set(key, json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode(), ttl_s=ttl_s)
    except Exception:
        log.warning("property cache write failed", exc_info=True)
    return page


async def invalidate_persons(kv: KeyValueStore, person_ids: Iterable[int]) -> None:
    """Call after the change committed: every list cached for these persons becomes unreachable."""
    for person_id in sorted(set(person_ids)):
        for attempt in (1, 2):
            try:
                await kv.set(_gen_key(person_id), secrets.token_hex(8).encode(), ttl_s=GEN_TTL_S)
                break
            except Exception:
                if attempt == 2:
                    log.error(
                        "property cache invalidation failed; lists may be stale until they expire",
                        exc_info=True,
                        extra={"person_id": person_id},
                    )
