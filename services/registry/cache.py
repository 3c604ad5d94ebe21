"""Per-person cache of property lists in the KV store, invalidated by generation tokens.

Why generations and not "delete the key": a reader that started before a registry change commits
can finish after it and write the list it read into the cache. With a plain delete-on-change that
late write would repopulate the cache with the old list. So every cached list is stamped with the
person's *generation token* as it was before the database was read, and a change replaces the
token once it has committed:

    reader:  token, entry = get_many(gen, list)  (one round trip)
             hit if entry is stamped with token
             otherwise: a missing token is created (a fresh random one),
             rows = read the database              (strictly after the token was fetched)
             set(list, token + rows)
    writer:  commit the change
             set(gen, fresh random token)          (the "bump", strictly after the commit)

If a reader's database read happened before the commit, its token was fetched even earlier, so
the bump after the commit replaces that token and the reader's late write carries a stamp no
reader accepts again. Any read that starts after the writer returned sees the new token, finds
the entry's stamp differs, and reads the committed data. The bump is a `set` of a random value,
not an increment, so concurrent writers need no read-modify-write, and an evicted or expired
token is simply recreated (an old stamp can never equal a fresh random token). One entry per
person and query shape exists at a time: a newer list overwrites the stale one.

What is cached is the page's items as JSON bytes (serialised once, by orjson, when the page is
read from the database) and the next position: a hit is handed to the response as an
`orjson.Fragment` without being parsed, rebuilt or validated, so the hot path costs two byte
splits. The entry is `token|next_after|items` (`next_after` empty on the last page).

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

import orjson

from services.kv import KeyValueStore
from services.registry.models import EncodedPropertyPage, PropertyPage

log = logging.getLogger("estate.cache")

_GEN_PREFIX = "props:gen:"
_LIST_PREFIX = "props:list:v2:"  # v2: token|next_after|items (v1 held the whole page as JSON)
_STAMP_SEPARATOR = b"|"
GEN_TTL_S = 7 * 24 * 3600  # longer than any entry; when it lapses the next reader makes a new one


def _gen_key(person_id: int) -> str:
    return f"{_GEN_PREFIX}{person_id}"


def _fingerprint(params: dict[str, Any]) -> str:
    raw = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _encode(page: PropertyPage) -> EncodedPropertyPage:
    return EncodedPropertyPage(orjson.Fragment(orjson.dumps(page.items)), page.next_after)


def _entry(generation: bytes, page: PropertyPage) -> tuple[bytes, EncodedPropertyPage]:
    """The cache entry for `page` and the page it serves: the items are serialised once."""
    items = orjson.dumps(page.items)
    position = b"" if page.next_after is None else str(page.next_after).encode()
    entry = _STAMP_SEPARATOR.join((generation, position, items))
    return entry, EncodedPropertyPage(orjson.Fragment(items), page.next_after)


def _stamped_page(entry: bytes | None, generation: bytes) -> EncodedPropertyPage | None:
    """The cached page if `entry` carries the current generation, else None."""
    if entry is None:
        return None
    stamp, separator, rest = entry.partition(_STAMP_SEPARATOR)
    if not separator or stamp != generation:
        return None
    next_after, separator, items = rest.partition(_STAMP_SEPARATOR)
    if not separator:
        return None
    return EncodedPropertyPage(orjson.Fragment(items), int(next_after) if next_after else None)


async def cached_property_list(
    *,
    kv: KeyValueStore,
    person_id: int,
    params: dict[str, Any],
    ttl_s: float,
    load: Callable[[], Awaitable[PropertyPage]],
) -> EncodedPropertyPage:
    """The person's list for `params` (filters, cursor, limit): from the cache, or `load()` and store."""
    key = f"{_LIST_PREFIX}{person_id}:{_fingerprint(params)}"
    try:
        generation, entry = await kv.get_many([_gen_key(person_id), key])
        if generation is None:
            generation = secrets.token_hex(8).encode()
            await kv.set(_gen_key(person_id), generation, ttl_s=GEN_TTL_S)
    except Exception:  # the cache is an optimisation: a KV outage must not fail the read
        log.warning("property cache unavailable; reading the database", exc_info=True)
        return _encode(await load())
    cached = _stamped_page(entry, generation)
    if cached is not None:
        return cached
    value, page = _entry(generation, await load())
    try:
        await kv.set(key, value, ttl_s=ttl_s)
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
