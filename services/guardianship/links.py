"""Guardians reading a minor's property data: links verified by the civil registry.

A minor's personal information is sensitive (PIPL art. 28), so access is narrow and visible:
- a link exists only after the civil registry confirmed the guardianship, and only while the
  ward is under 18 (by the birth date in the ID number, Shanghai's calendar day);
- before a ward read the registry's guardianship change feed is synced (services/
  guardianship_feed.py); a link whose pair the feed named since its last verification, or
  verified longer ago than `reverify_days`, is verified again before the read; an unreachable
  registry refuses the read (503) rather than trusting an old answer;
- any refusal the registry gives for a (guardian, ward) pair, on a read, a link attempt or a
  background re-verification, suspends the pair's active link in one conditional update
  (ward of age: ends it), so the next read is 404 and `GET /me/wards` says so;
- a guardian can end their own link (`end_link`); linking again verifies with the registry again;
- every failure to reach a ward's data is the same NotFound: not linked, suspended, ended, or
  someone else's ward, so ward ids say nothing to a prober;
- every read tells the ward's other linked guardians, coalesced per (guardian, ward, period)
  (services/guardianship/alerts.py), and is written to the access log under the ward.

The ward's ID number is stored only encrypted (plus a blind index); the masked form is computed
from it for the linked guardian. Messages to the other guardian name the ward by masked name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from integrations.civil_registry.base import CivilRegistry
from integrations.errors import IntegrationError, RequestRejected
from services.clock import SHANGHAI, Clock, local_today
from services.errors import (
    GuardianshipNotVerified,
    NotFound,
    UpstreamUnavailable,
    WardIsSelf,
    WardNotMinor,
)
from services.guardianship.feed import GuardianshipFeed
from services.guardianship.models import ACTIVE, ENDED, SUSPENDED, GuardianshipLink
from services.identifiers import eighteenth_birthday, mask_id_number, mask_name
from services.pii import PiiVault
from services.ratelimit import RateLimiter, per_day
from services.registry.models import Person

log = logging.getLogger("estate.guardianship")

WARD_OF_AGE = "WARD_OF_AGE"
NOT_VERIFIED = "NOT_VERIFIED"
ENDED_BY_GUARDIAN = "ENDED_BY_GUARDIAN"


@dataclass(frozen=True, slots=True)
class WardView:
    """A link as its guardian sees it (the API's response shape; Field annotations document it)."""

    ward_id: int
    id_number: Annotated[
        str, Field(description="masked: first 4 and last 4", examples=["3101**********0025"])
    ]
    name: Annotated[
        str | None, Field(description="masked; null when the minor holds nothing in the register")
    ]
    relation: str | None
    status: Annotated[
        Literal["active", "suspended", "ended"],
        Field(
            description=(
                "suspended: the civil registry refused the guardianship (link again once it is "
                "restored); ended: the ward turned 18, or you ended the link"
            )
        ),
    ]
    linked_at: datetime
    verified_at: datetime
    access_ends_on: Annotated[date, Field(description="the ward's 18th birthday")]


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


def _ward_view(link: GuardianshipLink, ward_id_number: str, ward_name: str | None, today: date) -> WardView:
    status = ENDED if link.status == ACTIVE and today >= link.access_ends_on else link.status
    return WardView(
        ward_id=link.id,
        id_number=mask_id_number(ward_id_number),
        name=mask_name(ward_name) if ward_name else None,
        relation=link.relation,
        status=status,  # type: ignore[arg-type]
        linked_at=link.linked_at.astimezone(SHANGHAI),
        verified_at=link.verified_at.astimezone(SHANGHAI),
        access_ends_on=link.access_ends_on,
    )


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
) -> WardView:
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
    index = vault.blind_index(ward_id_number)
    existing = await GuardianshipLink.get_or_none(guardian_id=guardian.id, ward_id_number_index=index)
    pending = existing.changes_reported if existing is not None else 0
    verdict = await _verify(civil_registry, guardian_id_number, ward_id_number)
    if not verdict.verified:
        # The registry's no also stops the link this guardian already has for this ward.
        await _stop_pair(guardian.id, index, verdict, clock.now())
        if verdict.reason == WARD_OF_AGE:
            raise WardNotMinor(field="id_number")
        raise GuardianshipNotVerified()

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
    link = existing
    if link is None:
        try:
            # One pending change: a feed entry for this pair processed between the registry's
            # answer and this insert found no row to flag, so the first read verifies again.
            link = await GuardianshipLink.create(
                guardian_id=guardian.id,
                ward_id_number_enc=vault.encrypt(ward_id_number),
                ward_id_number_index=index,
                linked_at=now,
                changes_reported=1,
                changes_verified=0,
                **values,
            )
            return _ward_view(link, ward_id_number, ward.name if ward else None, today)
        except IntegrityError:  # the same link, created concurrently: renew it below
            link = await GuardianshipLink.get(guardian_id=guardian.id, ward_id_number_index=index)
            pending = 0
    await GuardianshipLink.filter(id=link.id).update(**values)
    await _record_verified(link.id, pending)
    await link.refresh_from_db()
    return _ward_view(link, ward_id_number, ward.name if ward else None, today)


async def list_wards(
    *,
    guardian_person_id: int,
    vault: PiiVault,
    civil_registry: CivilRegistry,
    feed: GuardianshipFeed,
    clock: Clock,
) -> list[WardView]:
    """The guardian's links. The feed is synced and links it flagged are verified again first, so
    a withdrawn guardianship shows `suspended`; when the registry cannot be reached, the last
    known state is shown (this list reveals nothing about the minor)."""
    try:
        await feed.ensure_fresh()
        await reverify_flagged(
            vault=vault, civil_registry=civil_registry, clock=clock, guardian_person_id=guardian_person_id
        )
    except UpstreamUnavailable:
        log.warning("ward list shows the last known link states: the civil registry is unavailable")
    links = (
        await GuardianshipLink.filter(guardian_id=guardian_person_id)
        .order_by("id")
        .select_related("ward_person")
    )
    today = local_today(clock)
    return [
        _ward_view(
            link,
            vault.decrypt(link.ward_id_number_enc),
            link.ward_person.name if link.ward_person else None,
            today,
        )
        for link in links
    ]


async def end_link(*, guardian_person_id: int, link_id: int, clock: Clock) -> None:
    """The guardian ends their own link (idempotent). Someone else's link is NotFound. The row
    stays, `ended` with reason ENDED_BY_GUARDIAN, as the link's history; linking the ward again
    asks the civil registry again."""
    link = await GuardianshipLink.get_or_none(id=link_id, guardian_id=guardian_person_id).only("id")
    if link is None:
        raise NotFound(ward_id=link_id)
    ended = await GuardianshipLink.filter(id=link.id, status__in=(ACTIVE, SUSPENDED)).update(
        status=ENDED, suspended_at=clock.now(), suspended_reason=ENDED_BY_GUARDIAN
    )
    if ended:
        log.info(
            "guardian ended ward link %s",
            link.id,
            extra={"event": "guardianship_link_ended", "ward_id": link.id, "guardian": guardian_person_id},
        )


# --- verification outcomes -----------------------------------------------------------------------


async def _stop_pair(guardian_id: int, ward_index: str, verdict: Verdict, now: datetime) -> int:
    """A refusal from the registry for (guardian, ward): suspend (ward of age: end) the pair's
    active link, whichever request or worker heard it. Conditional on `active`, so it never
    revives or rewrites a link already stopped."""
    stopped = await GuardianshipLink.filter(
        guardian_id=guardian_id, ward_id_number_index=ward_index, status=ACTIVE
    ).update(
        status=ENDED if verdict.reason == WARD_OF_AGE else SUSPENDED,
        suspended_at=now,
        suspended_reason=verdict.reason or NOT_VERIFIED,
    )
    if stopped:
        log.info(
            "civil registry refused a guardianship: %d link(s) stopped",
            stopped,
            extra={"event": "guardianship_link_suspended", "reason": verdict.reason or NOT_VERIFIED},
        )
    return stopped


async def _record_verified(link_id: int, pending: int) -> None:
    """The registry confirmed the link covering `pending` reported changes (read before asking)."""
    await GuardianshipLink.filter(id=link_id, changes_verified__lt=pending).update(changes_verified=pending)


async def reverify_flagged(
    *,
    vault: PiiVault,
    civil_registry: CivilRegistry,
    clock: Clock,
    guardian_person_id: int | None = None,
    limit: int = 100,
) -> int:
    """Verify again active links the feed flagged (one guardian's, or any), suspending those the
    registry refuses; stops at the first unreachable answer (UpstreamUnavailable). Returns how
    many were stopped."""
    query = GuardianshipLink.filter(status=ACTIVE, changes_reported__gt=F("changes_verified"))
    if guardian_person_id is not None:
        query = query.filter(guardian_id=guardian_person_id)
    stopped = 0
    for link in await query.order_by("id").limit(limit).select_related("guardian"):
        pending = link.changes_reported
        verdict = await _verify(
            civil_registry,
            vault.decrypt(link.guardian.id_number_enc),
            vault.decrypt(link.ward_id_number_enc),
        )
        now = clock.now()
        if not verdict.verified:
            stopped += await _stop_pair(link.guardian.id, link.ward_id_number_index, verdict, now)
            continue
        await GuardianshipLink.filter(id=link.id, status=ACTIVE).update(verified_at=now)
        await _record_verified(link.id, pending)
    return stopped


# --- opening a ward's data -----------------------------------------------------------------------


@dataclass(frozen=True)
class WardAccess:
    link: GuardianshipLink
    guardian: Person
    ward_person_id: int | None  # None: the minor holds nothing in the register (yet)
    ward_index: str


async def _active_link(guardian_person_id: int, link_id: int) -> GuardianshipLink:
    link = await GuardianshipLink.get_or_none(id=link_id, guardian_id=guardian_person_id)
    if link is None or link.status != ACTIVE:
        raise NotFound(ward_id=link_id)
    return link


async def open_ward(
    *,
    guardian_person_id: int,
    link_id: int,
    vault: PiiVault,
    civil_registry: CivilRegistry,
    feed: GuardianshipFeed,
    clock: Clock,
    reverify_days: int,
) -> WardAccess:
    await _active_link(guardian_person_id, link_id)  # strangers learn nothing, not even a 503
    await feed.ensure_fresh()  # fail closed: UpstreamUnavailable
    link = await _active_link(guardian_person_id, link_id)  # as the sync left it
    if local_today(clock) >= link.access_ends_on:
        await GuardianshipLink.filter(id=link.id, status=ACTIVE).update(status=ENDED)
        raise NotFound(ward_id=link_id)
    guardian = await Person.get(id=guardian_person_id)
    now = clock.now()
    pending = link.changes_reported
    if pending > link.changes_verified or now - link.verified_at >= timedelta(days=reverify_days):
        verdict = await _verify(
            civil_registry, vault.decrypt(guardian.id_number_enc), vault.decrypt(link.ward_id_number_enc)
        )
        if not verdict.verified:
            await _stop_pair(guardian.id, link.ward_id_number_index, verdict, now)
            raise NotFound(ward_id=link_id)
        if not await GuardianshipLink.filter(id=link.id, status=ACTIVE).update(verified_at=now):
            raise NotFound(ward_id=link_id)  # stopped meanwhile by another refusal or the guardian
        await _record_verified(link.id, pending)
    ward_person_id = link.ward_person_id  # type: ignore[attr-defined]
    if ward_person_id is None:
        # The minor may have entered the register since the link was made.
        ward = await Person.get_or_none(id_number_index=link.ward_id_number_index).only("id")
        if ward is not None:
            ward_person_id = ward.id
            await GuardianshipLink.filter(id=link.id).update(ward_person_id=ward.id)
    return WardAccess(link, guardian, ward_person_id, link.ward_id_number_index)


# --- the use cases the routes call ----------------------------------------------------------------
