"""Guardians reading a minor's property data: links verified by the civil registry.

A minor's personal information is sensitive (PIPL art. 28), so access is narrow and visible:
- a link exists only after the civil registry confirmed the guardianship, and only while the
  ward is under 18 (by the birth date in the ID number, Shanghai's calendar day);
- a link verified longer ago than `reverify_days` is verified again before the next read; a
  refusal suspends it, an unreachable registry refuses the read (503) rather than trusting an
  old answer;
- every failure to reach a ward's data is the same NotFound: not linked, suspended, ended, or
  someone else's ward, so ward ids say nothing to a prober;
- every read tells the ward's other linked guardians (in-app always, SMS at most once a day
  per guardian and ward) and is written to the access log under the ward.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from integrations.civil_registry.base import CivilRegistry
from integrations.errors import IntegrationError, RequestRejected
from services import audit
from services.clock import SHANGHAI, Clock, local_today
from services.errors import (
    GuardianshipNotVerified,
    NotFound,
    UpstreamUnavailable,
    WardIsSelf,
    WardNotMinor,
)
from services.identifiers import eighteenth_birthday, mask_id_number, mask_name
from services.kv import KeyValueStore
from services.messages import GUARDIAN_QUERY, post_message
from services.models.guardianship import GuardianshipLink
from services.models.registry import Person
from services.outbox import enqueue
from services.outbox_handlers import SMS_SEND
from services.pii import PiiVault
from services.properties import PropertyFilters, cached_properties, property_detail
from services.ratelimit import RateLimiter, per_day

ACTIVE = "active"
SUSPENDED = "suspended"
ENDED = "ended"
WARD_OF_AGE = "WARD_OF_AGE"
QUERY_ALERT_TEMPLATE = "guardian_query_alert"


@dataclass(frozen=True)
class Verdict:
    verified: bool
    relation: str | None
    reason: str | None


async def _verify(civil_registry: CivilRegistry, guardian_id_number: str, ward_id_number: str) -> Verdict:
    """The registry's answer as a verdict; only an unreachable registry raises."""
    try:
        check = await civil_registry.verify_guardianship(guardian_id_number, ward_id_number)
    except RequestRejected as exc:  # GUARDIANSHIP_NOT_FOUND, PERSON_NOT_FOUND, ...
        return Verdict(False, None, exc.code)
    except IntegrationError as exc:
        raise UpstreamUnavailable(
            "户籍系统暂时无法核验监护关系，请稍后再试",
            "The civil registry cannot verify the guardianship now; try again later",
            system="civil_registry",
        ) from exc
    return Verdict(check.verified, check.relation, None if check.verified else check.reason)


def _ward_view(link: GuardianshipLink, ward_name: str | None, today: date) -> dict[str, Any]:
    status = ENDED if link.status == ACTIVE and today >= link.access_ends_on else link.status
    return {
        "ward_id": link.id,
        "id_number": link.ward_id_number_masked,
        "name": mask_name(ward_name) if ward_name else None,
        "relation": link.relation,
        "status": status,
        "linked_at": link.linked_at.astimezone(SHANGHAI).isoformat(),
        "verified_at": link.verified_at.astimezone(SHANGHAI).isoformat(),
        "access_ends_on": link.access_ends_on.isoformat(),
    }


# --- linking -------------------------------------------------------------------------------------


async def link_ward(
    *,
    guardian_person_id: int,
    ward_id_number: str,
    relation: str | None,
    vault: PiiVault,
    civil_registry: CivilRegistry,
    limiter: RateLimiter,
    clock: Clock,
    attempts_per_day: int,
) -> dict[str, Any]:
    """Link a minor after the civil registry verified the guardianship; re-linking a suspended
    link verifies again. Nothing is stored unless the registry said yes."""
    guardian = await Person.get_or_none(id=guardian_person_id)
    if guardian is None:
        raise NotFound()
    guardian_id_number = vault.decrypt(guardian.id_number_enc)
    if ward_id_number == guardian_id_number:
        raise WardIsSelf()
    today = local_today(clock)
    ends_on = eighteenth_birthday(ward_id_number)
    if today >= ends_on:
        raise WardNotMinor(field="id_number")
    await limiter.hit(per_day(attempts_per_day), "ward-link", str(guardian_person_id))
    verdict = await _verify(civil_registry, guardian_id_number, ward_id_number)
    if not verdict.verified:
        if verdict.reason == WARD_OF_AGE:
            raise WardNotMinor(field="id_number")
        raise GuardianshipNotVerified()

    index = vault.blind_index(ward_id_number)
    ward = await Person.get_or_none(id_number_index=index).only("id", "name")
    now = clock.now()
    values: dict[str, Any] = {
        "ward_person_id": ward.id if ward else None,
        "relation": (verdict.relation or relation or None),
        "status": ACTIVE,
        "verified_at": now,
        "suspended_at": None,
        "suspended_reason": None,
        "access_ends_on": ends_on,
    }
    link = await GuardianshipLink.get_or_none(guardian_id=guardian.id, ward_id_number_index=index)
    if link is None:
        try:
            link = await GuardianshipLink.create(
                guardian_id=guardian.id,
                ward_id_number_enc=vault.encrypt(ward_id_number),
                ward_id_number_index=index,
                ward_id_number_masked=mask_id_number(ward_id_number),
                linked_at=now,
                **values,
            )
            return _ward_view(link, ward.name if ward else None, today)
        except IntegrityError:  # the same link, created concurrently: renew it below
            link = await GuardianshipLink.get(guardian_id=guardian.id, ward_id_number_index=index)
    await GuardianshipLink.filter(id=link.id).update(**values)
    await link.refresh_from_db()
    return _ward_view(link, ward.name if ward else None, today)


async def list_wards(*, guardian_person_id: int, clock: Clock) -> list[dict[str, Any]]:
    links = (
        await GuardianshipLink.filter(guardian_id=guardian_person_id)
        .order_by("id")
        .select_related("ward_person")
    )
    today = local_today(clock)
    return [_ward_view(link, link.ward_person.name if link.ward_person else None, today) for link in links]


# --- opening a ward's data -----------------------------------------------------------------------


@dataclass(frozen=True)
class WardAccess:
    link: GuardianshipLink
    guardian: Person
    ward_person_id: int | None  # None: the minor holds nothing in the register (yet)
    ward_index: str


async def open_ward(
    *,
    guardian_person_id: int,
    link_id: int,
    vault: PiiVault,
    civil_registry: CivilRegistry,
    clock: Clock,
    reverify_days: int,
) -> WardAccess:
    link = await GuardianshipLink.get_or_none(id=link_id, guardian_id=guardian_person_id)
    if link is None or link.status != ACTIVE:
        raise NotFound(ward_id=link_id)
    if local_today(clock) >= link.access_ends_on:
        await GuardianshipLink.filter(id=link.id, status=ACTIVE).update(status=ENDED)
        raise NotFound(ward_id=link_id)
    guardian = await Person.get(id=guardian_person_id)
    now = clock.now()
    if now - link.verified_at >= timedelta(days=reverify_days):
        verdict = await _verify(
            civil_registry, vault.decrypt(guardian.id_number_enc), vault.decrypt(link.ward_id_number_enc)
        )
        if not verdict.verified:
            await GuardianshipLink.filter(id=link.id, status=ACTIVE).update(
                status=ENDED if verdict.reason == WARD_OF_AGE else SUSPENDED,
                suspended_at=now,
                suspended_reason=verdict.reason or "NOT_VERIFIED",
            )
            raise NotFound(ward_id=link_id)
        await GuardianshipLink.filter(id=link.id).update(verified_at=now)
    ward_person_id = link.ward_person_id  # type: ignore[attr-defined]
    if ward_person_id is None:
        # The minor may have entered the register since the link was made.
        ward = await Person.get_or_none(id_number_index=link.ward_id_number_index).only("id")
        if ward is not None:
            ward_person_id = ward.id
            await GuardianshipLink.filter(id=link.id).update(ward_person_id=ward.id)
    return WardAccess(link, guardian, ward_person_id, link.ward_id_number_index)


async def notify_other_guardians(*, access: WardAccess, what: str, clock: Clock, hotline: str) -> int:
    """Tell every other actively linked guardian of the ward: an in-app message each time, an SMS
    at most once per Shanghai day per (guardian, ward). The once-a-day rule is a conditional
    update of that guardian's link (`last_alert_sms_on < today`), so of two concurrent reads
    only one wins the SMS. Returns how many guardians were told."""
    today = local_today(clock)
    others = [
        link
        for link in await GuardianshipLink.filter(ward_id_number_index=access.ward_index, status=ACTIVE)
        .exclude(guardian_id=access.guardian.id)
        .select_related("guardian")
        if today < link.access_ends_on
    ]
    if not others:
        return 0
    now = clock.now()
    when = now.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    reader = mask_name(access.guardian.name)
    ward = access.link.ward_id_number_masked
    async with in_transaction() as conn:
        for other in others:
            await post_message(
                person_id=other.guardian.id,
                kind=GUARDIAN_QUERY,
                title="监护人查询提醒",
                body=f"您监护的未成年人（身份证号{ward}）的不动产信息于{when}被其另一监护人{reader}查询。",
                data={"ward_id": other.id, "reader": reader, "what": what},
                clock=clock,
                connection=conn,
            )
            won = (
                await GuardianshipLink.filter(
                    Q(id=other.id) & (Q(last_alert_sms_on__isnull=True) | Q(last_alert_sms_on__lt=today))
                )
                .using_db(conn)
                .update(last_alert_sms_on=today)
            )
            if won == 1 and other.guardian.phone:
                await enqueue(
                    topic=SMS_SEND,
                    payload={
                        "phone": other.guardian.phone,
                        "template": QUERY_ALERT_TEMPLATE,
                        "params": {"ward": ward, "time": when, "guardian": reader, "hotline": hotline},
                    },
                    idempotency_key=f"guardian-query-alert:{other.id}:{today.isoformat()}",
                    connection=conn,
                    clock=clock,
                )
    return len(others)


# --- the use cases the routes call ----------------------------------------------------------------


def _reader(access: WardAccess) -> audit.Reader:
    return audit.Reader(f"person:{access.guardian.id}", "guardian", mask_name(access.guardian.name))


async def read_ward_properties(
    *,
    guardian_person_id: int,
    link_id: int,
    filters: PropertyFilters,
    after_id: int | None,
    limit: int,
    vault: PiiVault,
    civil_registry: CivilRegistry,
    kv: KeyValueStore,
    clock: Clock,
    reverify_days: int,
    cache_ttl_s: float,
    hotline: str,
    request_id: str | None,
) -> dict[str, Any]:
    access = await open_ward(
        guardian_person_id=guardian_person_id,
        link_id=link_id,
        vault=vault,
        civil_registry=civil_registry,
        clock=clock,
        reverify_days=reverify_days,
    )
    page: dict[str, Any] = {"items": [], "next_after": None}
    if access.ward_person_id is not None:
        page = await cached_properties(
            person_id=access.ward_person_id,
            filters=filters,
            after_id=after_id,
            limit=limit,
            kv=kv,
            ttl_s=cache_ttl_s,
        )
    await notify_other_guardians(access=access, what=audit.PROPERTY_LIST, clock=clock, hotline=hotline)
    await audit.record_access(
        reader=_reader(access),
        person_id=access.ward_person_id,
        person_index=access.ward_index,
        action=audit.PROPERTY_LIST,
        object_type="property_list",
        object_id=f"ward:{link_id}",
        purpose=audit.PURPOSE_GUARDIAN,
        request_id=request_id,
        clock=clock,
    )
    return page


async def read_ward_property(
    *,
    guardian_person_id: int,
    link_id: int,
    right_id: int,
    vault: PiiVault,
    civil_registry: CivilRegistry,
    clock: Clock,
    reverify_days: int,
    hotline: str,
    request_id: str | None,
) -> dict[str, Any]:
    access = await open_ward(
        guardian_person_id=guardian_person_id,
        link_id=link_id,
        vault=vault,
        civil_registry=civil_registry,
        clock=clock,
        reverify_days=reverify_days,
    )
    if access.ward_person_id is None:
        raise NotFound(right_id=right_id)
    record = await property_detail(person_id=access.ward_person_id, right_id=right_id)
    await notify_other_guardians(access=access, what=audit.PROPERTY_DETAIL, clock=clock, hotline=hotline)
    await audit.record_access(
        reader=_reader(access),
        person_id=access.ward_person_id,
        person_index=access.ward_index,
        action=audit.PROPERTY_DETAIL,
        object_type="right",
        object_id=right_id,
        purpose=audit.PURPOSE_GUARDIAN,
        request_id=request_id,
        clock=clock,
    )
    return record
