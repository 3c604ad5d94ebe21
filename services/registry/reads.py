"""Reads of the register by a person and by a clerk, each written to the access log.

The read model they serve is properties.py; the access log is services/audit.
"""

from __future__ import annotations

from dataclasses import dataclass

from services import audit
from services.clock import Clock
from services.identifiers import mask_id_number
from services.identity import Principal
from services.kv import KeyValueStore
from services.pii import PiiVault
from services.ratelimit import RateLimiter, per_day, per_seconds
from services.registry.models import (
    EMPTY_PAGE,
    ClerkLookup,
    EncodedPropertyPage,
    Person,
    PropertyRecord,
    QuerySubject,
)
from services.registry.properties import PropertyFilters, cached_properties, property_detail

# 不动产登记资料查询暂行办法: who may ask a registration office, and on what grounds. The clerk
# records the ground and the document it rests on (application, case or official letter number).
CLERK_PURPOSES: dict[str, str] = {
    "holder_request": "权利人（或其委托代理人）申请查询",
    "interested_party": "利害关系人申请查询",
    "authority_request": "国家机关依法查询",
    "case_processing": "办理登记业务",
}


@dataclass(frozen=True)
class PageRequest:
    """Which page of a property list: filters, the cursor's last right id, the page size."""

    filters: PropertyFilters
    after_id: int | None
    limit: int


class PropertyReads:
    """The register's reads as the API calls them, built once in the composition root: a route
    hands over who asks and what page, not the service's dependencies."""

    def __init__(
        self,
        *,
        vault: PiiVault,
        kv: KeyValueStore,
        limiter: RateLimiter,
        clock: Clock,
        cache_ttl_s: float,
        clerk_limits: tuple[int, int],
    ) -> None:
        self._vault = vault
        self._kv = kv
        self._limiter = limiter
        self._clock = clock
        self._cache_ttl_s = cache_ttl_s
        self._clerk_limits = clerk_limits

    async def own_list(
        self, *, person_id: int, page: PageRequest, request_id: str | None
    ) -> EncodedPropertyPage:
        found = await self._page(person_id, page)
        await self._log_own(person_id, audit.PROPERTY_LIST, "property_list", None, request_id)
        return found

    async def own_detail(self, *, person_id: int, right_id: int, request_id: str | None) -> PropertyRecord:
        record = await property_detail(person_id=person_id, right_id=right_id)
        await self._log_own(person_id, audit.PROPERTY_DETAIL, "right", right_id, request_id)
        return record

    async def clerk_lookup(
        self,
        *,
        principal: Principal,
        id_number: str,
        purpose: str,
        reference: str,
        page: PageRequest,
        request_id: str | None,
    ) -> ClerkLookup:
        """A clerk looks a person up by ID number, at most `clerk_limits` = (per minute, per day)
        times; the limit counts per clerk, before the look-up, so parallel requests cannot pass
        it. The answer says whether the person is in the register at all (no rights is an answer
        too: the basis of a no-housing finding), and the read is logged under the person (or, with
        no register row, under their ID number's blind index, so they see it once they have one)
        with the clerk's office, the ground and the reference."""
        if purpose not in CLERK_PURPOSES:
            raise ValueError(f"unknown purpose {purpose!r}")
        per_minute, per_day_ = self._clerk_limits
        await self._limiter.hit(per_seconds(per_minute, 60), "clerk-lookup-minute", principal.subject)
        await self._limiter.hit(per_day(per_day_), "clerk-lookup-day", principal.subject)
        index = self._vault.blind_index(id_number)
        person = await Person.get_or_none(id_number_index=index).only("id", "name")
        found = EMPTY_PAGE if person is None else await self._page(person.id, page)
        await audit.record_access(
            reader=await audit.reader_for(principal),
            person_id=person.id if person else None,
            person_index=None if person else index,
            action=audit.PROPERTY_LIST,
            object_type="property_list",
            object_id=reference,
            purpose=purpose,
            request_id=request_id,
            clock=self._clock,
        )
        subject = QuerySubject(mask_id_number(id_number), person.name if person else None, person is not None)
        return ClerkLookup(subject, found.items, found.next_after)

    async def _page(self, person_id: int, page: PageRequest) -> EncodedPropertyPage:
        return await cached_properties(
            person_id=person_id,
            filters=page.filters,
            after_id=page.after_id,
            limit=page.limit,
            kv=self._kv,
            ttl_s=self._cache_ttl_s,
        )

    async def _log_own(
        self, person_id: int, action: str, object_type: str, object_id: int | None, request_id: str | None
    ) -> None:
        await audit.record_access(
            reader=audit.Reader(f"person:{person_id}", "citizen", audit.SELF_DISPLAY),
            person_id=person_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            purpose=audit.PURPOSE_SELF,
            request_id=request_id,
            clock=self._clock,
        )
