"""A guardian's reads of a ward's property data: open the link (links.py), read, alert the
other guardians (alerts.py), write the access log.
"""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.transactions import in_transaction

from integrations.civil_registry.base import CivilRegistry
from services import audit
from services.clock import Clock
from services.errors import NotFound
from services.guardianship import alerts as guardian_alerts
from services.guardianship.feed import GuardianshipFeed
from services.guardianship.links import WardAccess, open_ward
from services.identifiers import mask_name
from services.kv import KeyValueStore
from services.pii import PiiVault
from services.registry import (
    EMPTY_PAGE,
    EncodedPropertyPage,
    PageRequest,
    PropertyRecord,
    cached_properties,
    property_detail,
)


@dataclass(frozen=True)
class WardReadPolicy:
    """The settings a ward read follows (config/settings.py, guardians section)."""

    reverify_days: int
    cache_ttl_s: float
    hotline: str
    alert_period_s: int


class WardReads:
    """A guardian's ward reads as the API calls them, built once in the composition root."""

    def __init__(
        self,
        *,
        vault: PiiVault,
        civil_registry: CivilRegistry,
        feed: GuardianshipFeed,
        kv: KeyValueStore,
        clock: Clock,
        policy: WardReadPolicy,
    ) -> None:
        self._vault = vault
        self._civil_registry = civil_registry
        self._feed = feed
        self._kv = kv
        self._clock = clock
        self._policy = policy

    async def properties(
        self, *, guardian_person_id: int, link_id: int, page: PageRequest, request_id: str | None
    ) -> EncodedPropertyPage:
        access = await self._open(guardian_person_id, link_id)
        found = EMPTY_PAGE
        if access.ward_person_id is not None:
            found = await cached_properties(
                person_id=access.ward_person_id,
                filters=page.filters,
                after_id=page.after_id,
                limit=page.limit,
                kv=self._kv,
                ttl_s=self._policy.cache_ttl_s,
            )
        await self._alert_and_log(
            access,
            action=audit.PROPERTY_LIST,
            object_type="property_list",
            object_id=f"ward:{link_id}",
            request_id=request_id,
        )
        return found

    async def property(
        self, *, guardian_person_id: int, link_id: int, right_id: int, request_id: str | None
    ) -> PropertyRecord:
        access = await self._open(guardian_person_id, link_id)
        if access.ward_person_id is None:
            raise NotFound(right_id=right_id)
        record = await property_detail(person_id=access.ward_person_id, right_id=right_id)
        await self._alert_and_log(
            access,
            action=audit.PROPERTY_DETAIL,
            object_type="right",
            object_id=right_id,
            request_id=request_id,
        )
        return record

    async def _open(self, guardian_person_id: int, link_id: int) -> WardAccess:
        return await open_ward(
            guardian_person_id=guardian_person_id,
            link_id=link_id,
            vault=self._vault,
            civil_registry=self._civil_registry,
            feed=self._feed,
            clock=self._clock,
            reverify_days=self._policy.reverify_days,
        )

    async def _alert_and_log(
        self,
        access: WardAccess,
        *,
        action: str,
        object_type: str,
        object_id: str | int,
        request_id: str | None,
    ) -> None:
        """One unit of work: the other guardians' alerts and the access-log entry commit together,
        so no one is told of a read that was not logged, nor a read logged that no one was told of."""
        async with in_transaction():
            await guardian_alerts.notify_other_guardians(
                reader=access.guardian,
                ward_index=access.ward_index,
                ward_person_id=access.ward_person_id,
                what=action,
                clock=self._clock,
                hotline=self._policy.hotline,
                alert_period_s=self._policy.alert_period_s,
            )
            await audit.record_access(
                reader=audit.Reader(
                    f"person:{access.guardian.id}", "guardian", mask_name(access.guardian.name)
                ),
                person_id=access.ward_person_id,
                person_index=access.ward_index,
                action=action,
                object_type=object_type,
                object_id=object_id,
                purpose=audit.PURPOSE_GUARDIAN,
                request_id=request_id,
                clock=self._clock,
            )
