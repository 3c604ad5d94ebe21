"""The access-rule matrix: every route that takes an object id refuses strangers.

The routes are read from the running app's router: every route whose path has a `<...>`
parameter, except the few in `PUBLIC_ROUTES` (pages and their static files, each with the reason
it is public). For each, `ACCESS_TABLE` holds a builder that creates an object, the principal who
owns it and principals of the right role who do not. The walk then asserts, per route:

  (a) an anonymous caller gets 401 (problem+json, AUTHENTICATION_REQUIRED);
  (b) every outsider gets 404 NOT_FOUND, exactly as for an id that does not exist, so ids reveal
      nothing (citizen vs another citizen's right, guardian vs an unlinked minor, ...);
  (c) the owner gets a 2xx for the same path, so the 404s above come from the ownership rule
      and not from a broken builder.

Outsiders are asked before the owner, and a builder may check afterwards that an outsider's
attempt changed nothing (`untouched`). Citizens' tokens are minted by the app's own signer
(`citizen_headers`), exactly as SMS sign-in issues them, so the matrix does not spend the per-IP
SMS quota the sign-in tests need.

Adding a route with an id means adding a row here; the walk fails until there is one. A bank vs
another bank's filing uses two banks onboarded through the admin API (issue 14). Appointments
are office-bound for clerks: their rows use two clerks with different `office_code`.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx

from api.openapi import INT64_MAX
from services.appointments import BookingRequest
from services.appointments.models import Appointment, OfficeClosure, Slot, SlotTemplate, WaitlistEntry
from services.cases import BuyerInput, CancellationApplication, TransferApplication
from services.cases.models import UtilityTransferRecord
from services.guardianship.models import GuardianshipLink
from services.messages import inbox as inbox
from services.messages.models import InboxMessage
from services.registry.models import CaseParty, Person, RealEstateUnit, RegistrationCase
from tests.factories import (
    DEFAULT_CLIENT_SECRET,
    DEFAULT_STAFF_PASSWORD,
    create_api_client,
    create_office,
    create_organisation,
    create_person,
    create_right,
    create_staff,
    make_id_number,
)
from tests.integration import filing_support
from tests.integration.citizen_support import citizen_headers, shanghai_today, years_ago
from tests.support.seats import create_slot, take_seats

SKIPPED_METHODS = {"HEAD", "OPTIONS"}
_seq = itertools.count(1)


@dataclass
class Case:
    """One route, made concrete: the path with real ids, who owns it, who must get 404."""

    path: str
    owner: dict[str, str]
    outsiders: list[tuple[str, dict[str, str], str]]  # (who, headers, path)
    json: dict[str, Any] | None = None
    untouched: Callable[[], Awaitable[None]] | None = None  # asserts an outsider changed nothing
    notes: list[str] = field(default_factory=list)


Builder = Callable[[Any, Any], Awaitable[Case]]


# --- builders ------------------------------------------------------------------------------------


async def _citizen_with_right(app: Any, vault: Any) -> tuple[Person, Any, dict[str, str]]:
    person = await create_person(vault=vault)
    right = await create_right(holders=[(person, "1")])
    return person, right, citizen_headers(app, person)


async def own_property(app: Any, vault: Any) -> Case:
    _, right, owner = await _citizen_with_right(app, vault)
    stranger = await create_person(vault=vault)
    _, _, other_holder = await _citizen_with_right(app, vault)
    path = f"/api/v1/me/properties/{right.id}"
    return Case(
        path=path,
        owner=owner,
        outsiders=[
            ("a citizen who holds nothing", citizen_headers(app, stranger), path),
            ("a citizen who holds another right", other_holder, path),
        ],
    )


@dataclass
class _Ward:
    guardian: Person
    link_id: int
    right_id: int


async def _linked_ward(app: Any, vault: Any, client: httpx.AsyncClient) -> _Ward:
    """A minor with a right, and a guardian linked to them through the real API."""
    today = shanghai_today(app)
    ward_id_number = make_id_number(birth_date=years_ago(today, 9))
    guardian = await create_person(vault=vault, born=years_ago(today, 38), name="钱慧")
    ward = await create_person(vault=vault, id_number=ward_id_number, phone=None, name="钱小宝")
    right = await create_right(holders=[(ward, "1")])
    guardian_id_number = vault.decrypt(guardian.id_number_enc)
    app.services.simulators.civil_registry.load(
        people=[
            {"id_number": ward_id_number, "name": ward.name},
            {"id_number": guardian_id_number, "name": guardian.name},
        ],
        guardianships=[(guardian_id_number, ward_id_number, "母亲")],
    )
    r = await client.post(
        "/api/v1/me/wards", json={"id_number": ward_id_number}, headers=citizen_headers(app, guardian)
    )
    assert r.status_code == 201, r.text
    return _Ward(guardian, int(r.json()["ward_id"]), right.id)


async def ward_properties(app: Any, vault: Any) -> Case:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as client:
        mine = await _linked_ward(app, vault, client)
        other = await _linked_ward(app, vault, client)
    unlinked = await create_person(vault=vault)
    path = f"/api/v1/me/wards/{mine.link_id}/properties"
    return Case(
        path=path,
        owner=citizen_headers(app, mine.guardian),
        outsiders=[
            ("a citizen linked to no minor", citizen_headers(app, unlinked), path),
            ("the guardian of another minor", citizen_headers(app, other.guardian), path),
        ],
    )


async def ward_property(app: Any, vault: Any) -> Case:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as client:
        mine = await _linked_ward(app, vault, client)
        other = await _linked_ward(app, vault, client)
    unlinked = await create_person(vault=vault)
    path = f"/api/v1/me/wards/{mine.link_id}/properties/{mine.right_id}"
    me = citizen_headers(app, mine.guardian)
    return Case(
        path=path,
        owner=me,
        outsiders=[
            ("a citizen linked to no minor", citizen_headers(app, unlinked), path),
            ("the guardian of another minor", citizen_headers(app, other.guardian), path),
            (
                "the guardian, for a right of another minor",
                me,
                f"/api/v1/me/wards/{mine.link_id}/properties/{other.right_id}",
            ),
            (
                "another guardian, for their own ward's right through this link",
                citizen_headers(app, other.guardian),
                f"/api/v1/me/wards/{mine.link_id}/properties/{other.right_id}",
            ),
        ],
    )


async def end_ward_link(app: Any, vault: Any) -> Case:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as client:
        mine = await _linked_ward(app, vault, client)
        other = await _linked_ward(app, vault, client)
    unlinked = await create_person(vault=vault)

    async def untouched() -> None:
        link = await GuardianshipLink.get(id=mine.link_id)
        assert link.status == "active", "an outsider ended somebody else's ward link"

    path = f"/api/v1/me/wards/{mine.link_id}"
    return Case(
        path=path,
        owner=citizen_headers(app, mine.guardian),
        outsiders=[
            ("a citizen linked to no minor", citizen_headers(app, unlinked), path),
            ("the guardian of another minor", citizen_headers(app, other.guardian), path),
        ],
        untouched=untouched,
    )


async def read_message(app: Any, vault: Any) -> Case:
    owner = await create_person(vault=vault)
    stranger = await create_person(vault=vault)
    message = await inbox.post_message(
        person_id=owner.id,
        kind="property_change",
        title=f"矩阵测试 {next(_seq)}",
        body="access matrix",
        data={},
        clock=app.services.clock,
    )

    async def untouched() -> None:
        row = await InboxMessage.get(id=message.id)
        assert row.read_at is None, "an outsider marked somebody else's message read"

    path = f"/api/v1/me/messages/{message.id}/read"
    return Case(
        path=path,
        owner=citizen_headers(app, owner),
        outsiders=[("another citizen", citizen_headers(app, stranger), path)],
        untouched=untouched,
    )


async def _certificate(app: Any, vault: Any) -> tuple[Person, Person, str]:
    """A citizen's certificate, and another citizen who has one of their own."""
    owner, stranger = await create_person(vault=vault), await create_person(vault=vault)
    views = [
        await app.services.certificates.issue(person_id=p.id, cert_type="no-housing", purpose_code="talent")
        for p in (owner, stranger)
    ]
    return owner, stranger, views[0].serial


async def certificate_pdf(app: Any, vault: Any) -> Case:
    owner, stranger, serial = await _certificate(app, vault)
    path = f"/api/v1/me/certificates/{serial}/pdf"
    return Case(
        path=path,
        owner=citizen_headers(app, owner),
        outsiders=[("another citizen", citizen_headers(app, stranger), path)],
    )


async def certificate_presentation(app: Any, vault: Any) -> Case:
    owner, stranger, serial = await _certificate(app, vault)
    path = f"/api/v1/me/certificates/{serial}/presentations"
    return Case(
        path=path,
        owner=citizen_headers(app, owner),
        outsiders=[("another citizen", citizen_headers(app, stranger), path)],
    )


async def certificate_revocation(app: Any, vault: Any) -> Case:
    """Any administrator may revoke any certificate: no outsider of the role exists (other roles
    get 403, test_certificates.py)."""
    _, _, serial = await _certificate(app, vault)
    admin = await create_staff(role="admin", office_code=None, display_name="管理员")
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as client:
        r = await client.post(
            "/api/v1/auth/staff-tokens", json={"username": admin.username, "password": DEFAULT_STAFF_PASSWORD}
        )
    assert r.status_code == 200, r.text
    return Case(
        path=f"/api/v1/admin/certificates/{serial}/revocation",
        owner={"Authorization": f"Bearer {r.json()['access_token']}"},
        outsiders=[],
        json={"reason": "访问矩阵测试"},
    )


# --- appointments: a citizen's own, and a clerk's office --------------------------------------------


async def _slot(app: Any, *, starts_in: timedelta, capacity: int = 5) -> Slot:
    office = await create_office()
    now = app.services.clock.now()
    starts = (now + starts_in).replace(second=0, microsecond=0)
    return await create_slot(
        office=office,
        service="transfer",
        starts_at=starts,
        ends_at=starts + timedelta(minutes=30),
        capacity=capacity,
        released_at=now - timedelta(hours=1),
    )


async def _booked(
    app: Any, vault: Any, *, starts_in: timedelta = timedelta(days=3)
) -> tuple[Any, Person, Slot]:
    """An appointment booked through the service, its holder and its slot."""
    owner = await create_person(vault=vault)
    slot = await _slot(app, starts_in=starts_in)
    view = await app.services.appointments.book(
        BookingRequest(person_id=owner.id, slot_id=slot.id, service=slot.service)
    )
    return view, owner, slot


def _appointment_untouched(appointment_id: int) -> Callable[[], Awaitable[None]]:
    async def untouched() -> None:
        row = await Appointment.get(id=appointment_id)
        assert row.status == "booked", "an outsider changed somebody else's appointment"

    return untouched


async def _citizen_appointment_case(app: Any, vault: Any, suffix: str, **extra: Any) -> Case:
    view, owner, _ = await _booked(app, vault)
    other, _, _ = await _booked(app, vault)  # a stranger with an appointment of their own
    stranger = await Appointment.get(id=other.id).select_related("person")
    path = f"/api/v1/me/appointments/{view.id}{suffix}"
    return Case(
        path=path,
        owner=citizen_headers(app, owner),
        outsiders=[
            ("a citizen with no appointment", citizen_headers(app, await create_person(vault=vault)), path),
            ("a citizen with another appointment", citizen_headers(app, stranger.person), path),
        ],
        untouched=_appointment_untouched(view.id),
        **extra,
    )


async def cancel_appointment(app: Any, vault: Any) -> Case:
    return await _citizen_appointment_case(app, vault, "")


async def appointment_calendar(app: Any, vault: Any) -> Case:
    return await _citizen_appointment_case(app, vault, "/calendar.ics")


async def reschedule_appointment(app: Any, vault: Any) -> Case:
    target = await _slot(app, starts_in=timedelta(days=4))
    return await _citizen_appointment_case(app, vault, "/reschedule", json={"slot_id": target.id})


async def accept_waitlist_offer(app: Any, vault: Any) -> Case:
    """A seat held for the owner (as a cancellation leaves it); outsiders may not take it."""
    owner, stranger = await create_person(vault=vault), await create_person(vault=vault)
    slot = await _slot(app, starts_in=timedelta(days=3), capacity=1)
    await take_seats(slot.id, 1)
    now = app.services.clock.now()
    entry = await WaitlistEntry.create(
        slot=slot,
        person=owner,
        service=slot.service,
        status="offered",
        offered_until=now + timedelta(minutes=10),
        stripe=0,  # the slot's one stripe, whose seat take_seats took
        created_at=now,
    )
    await WaitlistEntry.create(
        slot=slot, person=stranger, service=slot.service, status="waiting", created_at=now
    )

    async def untouched() -> None:
        assert (await WaitlistEntry.get(id=entry.id)).status == "offered", "an outsider took the offer"

    path = f"/api/v1/me/appointments/waitlist/{entry.id}/accept"
    return Case(
        path=path,
        owner=citizen_headers(app, owner),
        outsiders=[("another citizen waiting for the same slot", citizen_headers(app, stranger), path)],
        untouched=untouched,
    )


async def _clerk_case(app: Any, vault: Any, action: str) -> Case:
    """Two clerks of different offices: the appointment's office and another."""
    view, _, slot = await _booked(app, vault)
    if action == "no-show":  # only once the slot has started
        await Slot.filter(id=slot.id).update(starts_at=app.services.clock.now() - timedelta(minutes=5))
    other_office = await create_office()
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as client:
        own = await _staff_token(client, view.office_code)
        other = await _staff_token(client, other_office.code)
    path = f"/api/v1/clerk/appointments/{view.id}/{action}"
    return Case(
        path=path,
        owner=own,
        outsiders=[("a clerk of another office", other, path)],
        untouched=_appointment_untouched(view.id),
    )


async def _staff_token(client: httpx.AsyncClient, office_code: str) -> dict[str, str]:
    staff = await create_staff(role="clerk", office_code=office_code, display_name="窗口人员")
    r = await client.post(
        "/api/v1/auth/staff-tokens", json={"username": staff.username, "password": DEFAULT_STAFF_PASSWORD}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def clerk_check_in(app: Any, vault: Any) -> Case:
    return await _clerk_case(app, vault, "check-in")


async def clerk_no_show(app: Any, vault: Any) -> Case:
    return await _clerk_case(app, vault, "no-show")


async def _admin_headers(app: Any) -> dict[str, str]:
    admin = await create_staff(role="admin", office_code=None, display_name="管理员")
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as client:
        r = await client.post(
            "/api/v1/auth/staff-tokens", json={"username": admin.username, "password": DEFAULT_STAFF_PASSWORD}
        )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


# --- registration cases: the parties of a transfer, the case's office, administrators ----------------


@dataclass
class _Transfer:
    case_id: int
    seller: Person
    buyer: Person
    office_code: str


async def _transfer_case(app: Any, vault: Any) -> _Transfer:
    """A transfer case opened through the service, its seller, buyer and office."""
    office = await create_office()
    seller, buyer = await create_person(vault=vault), await create_person(vault=vault)
    right = await create_right(holders=[(seller, "1")])
    buyer_id_number = vault.decrypt(buyer.id_number_enc)
    app.services.simulators.civil_registry.load(people=[{"id_number": buyer_id_number, "name": buyer.name}])
    view = await app.services.cases.open_transfer(
        TransferApplication(
            seller_person_id=seller.id,
            right_id=right.id,
            buyers=(BuyerInput(id_number=buyer_id_number, name=buyer.name, share=Decimal(1)),),
            price_fen=100_000_000,
            contract_number=f"HT-矩阵-{next(_seq)}",
            office_code=office.code,
        )
    )
    return _Transfer(view.case_id, seller, buyer, office.code)


async def _party_case(app: Any, vault: Any, suffix: str, owner_role: str) -> Case:
    mine = await _transfer_case(app, vault)
    other = await _transfer_case(app, vault)  # a party to a case of their own
    path = f"/api/v1/me/transfers/{mine.case_id}{suffix}"
    owner = mine.buyer if owner_role == "buyer" else mine.seller

    async def untouched() -> None:
        unconfirmed = await CaseParty.filter(case_id=mine.case_id, confirmed_at__isnull=True).count()
        assert unconfirmed == 1, "an outsider confirmed somebody else's case"

    return Case(
        path=path,
        owner=citizen_headers(app, owner),
        outsiders=[
            ("a citizen who is no party", citizen_headers(app, await create_person(vault=vault)), path),
            ("the seller of another case", citizen_headers(app, other.seller), path),
            ("the buyer of another case", citizen_headers(app, other.buyer), path),
        ],
        untouched=untouched,
    )


async def transfer_case(app: Any, vault: Any) -> Case:
    return await _party_case(app, vault, "", "seller")


async def confirm_transfer(app: Any, vault: Any) -> Case:
    return await _party_case(app, vault, "/confirm", "buyer")


async def _office_case(app: Any, vault: Any, suffix: str, **extra: Any) -> Case:
    mine = await _transfer_case(app, vault)
    other_office = await create_office()
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as client:
        own = await _staff_token(client, mine.office_code)
        other = await _staff_token(client, other_office.code)

    async def untouched() -> None:
        case = await RegistrationCase.get(id=mine.case_id)
        assert case.state == "applied", "a clerk of another office moved the case"

    path = f"/api/v1/clerk/cases/{mine.case_id}{suffix}"
    return Case(
        path=path,
        owner=own,
        outsiders=[("a clerk of another office", other, path)],
        untouched=untouched,
        **extra,
    )


async def clerk_case(app: Any, vault: Any) -> Case:
    return await _office_case(app, vault, "")


async def clerk_move_case(app: Any, vault: Any) -> Case:
    return await _office_case(app, vault, "/moves", json={"to": "not_accepted", "reason": "访问矩阵测试"})


async def redrive_utility(app: Any, vault: Any) -> Case:
    """Any administrator may re-drive any case's utility: no outsider of the role exists (other
    roles get 403, test_transfers.py); a case with no such transfer is 404 like an unknown id."""
    mine = await _transfer_case(app, vault)
    now = app.services.clock.now()
    await UtilityTransferRecord.create(
        case_id=mine.case_id,
        kind="water",
        provider="water.pudong",
        account_no="",
        idempotency_key=f"utility:matrix-{mine.case_id}:water",
        created_at=now,
        updated_at=now,
    )
    admin = await _admin_headers(app)
    return Case(
        path=f"/api/v1/admin/cases/{mine.case_id}/utilities/water/redrive",
        owner=admin,
        outsiders=[],
    )


# --- first and cancellation registration (issue 13): organisations and citizen holders -----------


async def _organisation_headers(client: httpx.AsyncClient, app: Any) -> tuple[Any, dict[str, str]]:
    """A developer and the token of one of its staff (role `organisation`)."""
    developer = await create_organisation(kind="developer")
    staff = await create_staff(role="organisation", office_code=None, organisation_id=developer.id)
    r = await client.post(
        "/api/v1/auth/staff-tokens", json={"username": staff.username, "password": DEFAULT_STAFF_PASSWORD}
    )
    assert r.status_code == 200, r.text
    return developer, {"Authorization": f"Bearer {r.json()['access_token']}"}


async def organisation_case(app: Any, vault: Any) -> Case:
    """An organisation sees only the cases it is a party to: another developer's staff and
    system (client credentials) get 404."""
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as client:
        mine, own = await _organisation_headers(client, app)
        _, other_staff = await _organisation_headers(client, app)
        other = await create_organisation(kind="developer")
        api_client = await create_api_client(
            organisation=other, scopes=("registration:read",), role="organisation", bank_code=None
        )
        r = await client.post(
            "/api/v1/auth/client-tokens",
            data={
                "grant_type": "client_credentials",
                "client_id": api_client.client_id,
                "client_secret": DEFAULT_CLIENT_SECRET,
            },
        )
        assert r.status_code == 200, r.text
        other_system = {"Authorization": f"Bearer {r.json()['access_token']}"}
    office = await create_office()
    land = await create_right(holders=[(mine, 1)], right_type="land_use")
    view = await app.services.cases.open_cancellation(
        CancellationApplication(
            right_id=land.id,
            reason="given_up",
            supporting_refs=(f"矩阵-{next(_seq)}",),
            organisation_id=mine.id,
            actor_id="matrix",
            office_code=office.code,
        )
    )
    path = f"/api/v1/org/cases/{view.case_id}"
    return Case(
        path=path,
        owner=own,
        outsiders=[
            ("another developer's staff", other_staff, path),
            ("another developer's own system", other_system, path),
        ],
    )


async def cancellation_case(app: Any, vault: Any) -> Case:
    holder, co_holder, stranger = [await create_person(vault=vault) for _ in range(3)]
    office = await create_office()
    right = await create_right(holders=[(holder, "0.5"), (co_holder, "0.5")])
    other_holder, other_right, _ = await _citizen_with_right(app, vault)
    view = await app.services.cases.open_cancellation(
        CancellationApplication(
            right_id=right.id,
            reason="demolished",
            supporting_refs=(f"矩阵-{next(_seq)}",),
            person_id=holder.id,
            office_code=office.code,
        )
    )
    await app.services.cases.open_cancellation(
        CancellationApplication(
            right_id=other_right.id, reason="lost", supporting_refs=("矩阵",), person_id=other_holder.id
        )
    )
    transfer = await _transfer_case(app, vault)  # a party to a case of another kind
    path = f"/api/v1/me/cancellations/{view.case_id}"
    return Case(
        path=path,
        owner=citizen_headers(app, co_holder),
        outsiders=[
            ("a citizen who is no party", citizen_headers(app, stranger), path),
            ("the holder of another cancellation", citizen_headers(app, other_holder), path),
            (
                "a party, for their transfer case through the cancellation route",
                citizen_headers(app, transfer.seller),
                f"/api/v1/me/cancellations/{transfer.case_id}",
            ),
        ],
    )


# --- bank filings (issue 14): a bank vs another bank's filing; administrators and banks -------------


async def bank_filing(app: Any, vault: Any) -> Case:
    """A bank sees only its own filings: another bank (both onboarded through the admin API and
    signed in with the credentials it issued) gets 404."""
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as client:
        mine = await filing_support.onboard_bank(client, app)
        other = await filing_support.onboard_bank(client, app)
        person, right = await filing_support.holder_with_right()
        unit = await RealEstateUnit.get(id=right.unit_id)  # type: ignore[attr-defined]
        r = await client.post(
            "/api/v1/bank/mortgage-filings",
            json=filing_support.create_body(person, right, unit.unit_number),
            headers={**mine.headers, "Idempotency-Key": filing_support.key()},
        )
        assert r.status_code == 201, r.text
    path = f"/api/v1/bank/mortgage-filings/{r.json()['id']}"
    return Case(path=path, owner=mine.headers, outsiders=[("another bank", other.headers, path)])


def admin_bank(suffix: str, body: dict[str, Any] | None = None) -> Builder:
    """Any administrator may manage any participating bank: no outsider of the role exists (other
    roles get 403, anonymous callers 401)."""

    async def build(app: Any, vault: Any) -> Case:
        async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as client:
            admin = await filing_support.admin_headers(client)
            bank = await filing_support.onboard_bank(client, app, admin)
        return Case(path=f"/api/v1/admin/banks/{bank.code}{suffix}", owner=admin, outsiders=[], json=body)

    return build


OFFICE_TEMPLATE = {
    "service": "transfer",
    "weekdays": [0, 1, 2, 3, 4],
    "day_start": "09:00",
    "day_end": "17:00",
    "duration_min": 30,
    "capacity": 4,
}


def admin_office(suffix: str, body: Callable[[Any], dict[str, Any]] | None = None) -> Builder:
    """An office route for administrators (api/routes/offices.py). Any administrator may manage
    any office: no outsider of the role exists (other roles get 403, test_offices.py). `suffix`
    may name `{day}` (a closure made here, 30 days ahead) or `{template}` (a template made here)."""

    async def build(app: Any, vault: Any) -> Case:
        office = await create_office()
        day = shanghai_today(app) + timedelta(days=30)
        await OfficeClosure.create(office_id=office.code, day=day, reason="访问矩阵测试")
        template = await SlotTemplate.create(office_id=office.code, **OFFICE_TEMPLATE)
        path = f"/api/v1/admin/offices/{office.code}" + suffix.format(
            day=day.isoformat(), template=template.id
        )
        return Case(
            path=path, owner=await _admin_headers(app), outsiders=[], json=body(app) if body else None
        )

    return build


# (method, Sanic path template) -> builder. The templates are the router's, types included.
ACCESS_TABLE: dict[tuple[str, str], Builder] = {
    ("GET", "/api/v1/me/properties/<right_id:int>"): own_property,
    ("GET", "/api/v1/me/wards/<ward_id:int>/properties"): ward_properties,
    ("GET", "/api/v1/me/wards/<ward_id:int>/properties/<right_id:int>"): ward_property,
    ("DELETE", "/api/v1/me/wards/<ward_id:int>"): end_ward_link,
    ("POST", "/api/v1/me/messages/<message_id:int>/read"): read_message,
    ("GET", "/api/v1/me/certificates/<serial:str>/pdf"): certificate_pdf,
    ("POST", "/api/v1/me/certificates/<serial:str>/presentations"): certificate_presentation,
    ("POST", "/api/v1/admin/certificates/<serial:str>/revocation"): certificate_revocation,
    ("DELETE", "/api/v1/me/appointments/<appointment_id:int>"): cancel_appointment,
    ("GET", "/api/v1/me/appointments/<appointment_id:int>/calendar.ics"): appointment_calendar,
    ("POST", "/api/v1/me/appointments/<appointment_id:int>/reschedule"): reschedule_appointment,
    ("POST", "/api/v1/me/appointments/waitlist/<entry_id:int>/accept"): accept_waitlist_offer,
    ("POST", "/api/v1/clerk/appointments/<appointment_id:int>/check-in"): clerk_check_in,
    ("POST", "/api/v1/clerk/appointments/<appointment_id:int>/no-show"): clerk_no_show,
    ("GET", "/api/v1/admin/offices/<code:str>"): admin_office(""),
    ("PUT", "/api/v1/admin/offices/<code:str>/timetable"): admin_office(
        "/timetable", lambda app: {"opening_hours": {"mon": [["09:00", "12:00"]]}, "services": ["transfer"]}
    ),
    ("POST", "/api/v1/admin/offices/<code:str>/closures"): admin_office(
        "/closures", lambda app: {"day": str(shanghai_today(app) + timedelta(days=31)), "reason": "培训"}
    ),
    ("DELETE", "/api/v1/admin/offices/<code:str>/closures/<day:ymd>"): admin_office("/closures/{day}"),
    ("POST", "/api/v1/admin/offices/<code:str>/slot-templates"): admin_office(
        "/slot-templates", lambda app: OFFICE_TEMPLATE
    ),
    ("PATCH", "/api/v1/admin/offices/<code:str>/slot-templates/<template_id:int>"): admin_office(
        "/slot-templates/{template}", lambda app: {"active": False}
    ),
    ("POST", "/api/v1/admin/offices/<code:str>/slot-releases"): admin_office("/slot-releases"),
    ("GET", "/api/v1/me/transfers/<case_id:int>"): transfer_case,
    ("POST", "/api/v1/me/transfers/<case_id:int>/confirm"): confirm_transfer,
    ("GET", "/api/v1/clerk/cases/<case_id:int>"): clerk_case,
    ("POST", "/api/v1/clerk/cases/<case_id:int>/moves"): clerk_move_case,
    ("POST", "/api/v1/admin/cases/<case_id:int>/utilities/<kind:str>/redrive"): redrive_utility,
    ("GET", "/api/v1/org/cases/<case_id:int>"): organisation_case,
    ("GET", "/api/v1/me/cancellations/<case_id:int>"): cancellation_case,
    ("GET", "/api/v1/bank/mortgage-filings/<filing_id:int>"): bank_filing,
    ("GET", "/api/v1/admin/banks/<code:str>"): admin_bank(""),
    ("PATCH", "/api/v1/admin/banks/<code:str>"): admin_bank("", {"callback_mac": "hmac-sm3"}),
    ("POST", "/api/v1/admin/banks/<code:str>/credentials"): admin_bank("/credentials"),
    ("POST", "/api/v1/admin/banks/<code:str>/suspension"): admin_bank("/suspension"),
    ("DELETE", "/api/v1/admin/banks/<code:str>/suspension"): admin_bank("/suspension"),
}


# Routes anyone may call without signing in, each with why; reviewed like ACCESS_TABLE. Those with a
# path parameter are left out of the walk; all are listed so that making a route public is a visible
# decision, and test_public_routes_exist_and_answer_anyone checks each one.
PUBLIC_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/offices/<code:str>/slots"): (
        "an office's free slots and seats remaining: public information (issue 11), the same for "
        "everyone; no person, booking or case in it"
    ),
    ("GET", "/clerk/verify"): (
        "the clerk's certificate-check page: a sign-in form and a script, no data; the check it "
        "makes (POST /api/v1/verifications) needs a clerk's token"
    ),
    ("GET", "/v"): (
        "the page a certificate's QR code opens on anyone's phone: no data in it; the token is in "
        "the URL fragment and goes to POST /api/v1/public/verifications"
    ),
    ("GET", "/assets/pages/<__file_uri__:path>"): (
        "the scripts, styles and vendored QR decoder of those pages (api/pages/static): package "
        "files, the same for everyone, no data"
    ),
    ("GET", "/assets/swagger-ui/<__file_uri__:path>"): (
        "Swagger UI's files for /docs, from the swagger_ui_bundle package: the same for everyone"
    ),
    ("GET", "/api/v1/offices"): (
        "the registration offices, their hours and services and each one's next free slot: public "
        "information (issue 11); no person, booking or case in it"
    ),
}


async def _office_slots_sample() -> str:
    return f"/api/v1/offices/{(await create_office()).code}/slots?service=transfer"


# A concrete path for a public route whose parameter is not a file under /assets.
PUBLIC_SAMPLES: dict[tuple[str, str], Callable[[], Awaitable[str]]] = {
    ("GET", "/api/v1/offices/<code:str>/slots"): _office_slots_sample,
}


# --- the walk ------------------------------------------------------------------------------------


def all_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route of the running app."""
    found = set()
    for route in app.app.router.routes:
        for method in route.methods - SKIPPED_METHODS:
            found.add((method, "/" + route.path.strip("/")))
    return sorted(found)


def id_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route with a path parameter, except the public ones."""
    return [r for r in all_routes(app) if "<" in r[1] and r not in PUBLIC_ROUTES]


async def _problem_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


async def check_route(
    client: httpx.AsyncClient, app: Any, vault: Any, method: str, template: str
) -> list[str]:
    """The problems of one route; empty when it keeps the rules."""
    problems: list[str] = []
    label = f"{method} {template}"
    case = await ACCESS_TABLE[(method, template)](app, vault)

    r = await client.request(method, case.path, json=case.json)
    if r.status_code != 401 or await _problem_code(r) != "AUTHENTICATION_REQUIRED":
        problems.append(f"{label}: anonymous got {r.status_code} {r.text[:200]}, expected 401")

    for who, headers, path in case.outsiders:
        r = await client.request(method, path, json=case.json, headers=headers)
        if r.status_code != 404 or await _problem_code(r) != "NOT_FOUND":
            problems.append(f"{label}: {who} got {r.status_code} for {path} {r.text[:200]}, expected 404")
    if case.untouched is not None:
        try:
            await case.untouched()
        except AssertionError as exc:
            problems.append(f"{label}: {exc}")

    r = await client.request(method, case.path, json=case.json, headers=case.owner)
    if not 200 <= r.status_code < 300:
        problems.append(f"{label}: the owner got {r.status_code} {r.text[:200]}: the builder proves nothing")
    return problems


async def test_every_id_route_refuses_anonymous_callers_and_outsiders(client, app, vault):
    routes = id_routes(app)
    assert routes, "no route with an id parameter found: is the router read correctly?"
    problems = [
        f"{method} {template}: no row in ACCESS_TABLE (tests/integration/test_access_matrix.py); "
        "add a builder with an owner and outsiders"
        for method, template in routes
        if (method, template) not in ACCESS_TABLE
    ]
    for method, template in routes:
        if (method, template) in ACCESS_TABLE:
            problems += await check_route(client, app, vault, method, template)
    assert not problems, "access rules broken:\n  " + "\n  ".join(problems)


async def test_access_table_has_no_stale_rows(app):
    stale = sorted(set(ACCESS_TABLE) - set(id_routes(app)))
    assert not stale, f"ACCESS_TABLE rows for routes that no longer exist (renamed?): {stale}"


async def test_public_routes_exist_and_answer_anyone(client, app):
    """Each listed public route exists and answers an anonymous caller (a stale row would hide a
    renamed route); the asset routes with a file that is there."""
    missing = sorted(set(PUBLIC_ROUTES) - set(all_routes(app)))
    assert not missing, f"PUBLIC_ROUTES rows for routes that do not exist (renamed?): {missing}"
    samples = {"<__file_uri__:path>": {"/assets/pages": "verdict.js", "/assets/swagger-ui": "swagger-ui.css"}}
    for method, template in PUBLIC_ROUTES:
        path = template
        if (method, template) in PUBLIC_SAMPLES:
            path = await PUBLIC_SAMPLES[(method, template)]()
        elif "<" in template:
            prefix, _, param = template.rpartition("/")
            path = f"{prefix}/{samples[param][prefix]}"
        r = await client.request(method, path)
        assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text[:200]}"


async def test_id_routes_document_their_ids_and_refusals(client, app):
    """The spec the fuzzer reads (.ci/quality-gates) states the same rules: bounded ids, 401, 404."""
    spec = (await client.get("/docs/openapi.json")).json()
    problems = []
    for method, template in id_routes(app):
        oas_path = "/" + "/".join(
            "{" + part[1:-1].split(":")[0] + "}" if part.startswith("<") else part
            for part in template.strip("/").split("/")
        )
        operation = spec["paths"].get(oas_path, {}).get(method.lower())
        if operation is None:
            problems.append(f"{method} {oas_path}: not in /docs/openapi.json")
            continue
        for status in ("401", "404"):
            if status not in operation["responses"]:
                problems.append(f"{method} {oas_path}: {status} not documented")
        if not operation.get("security"):
            problems.append(f"{method} {oas_path}: no security requirement")
        for param in operation.get("parameters", []):
            schema = param["schema"]
            bounded = (schema.get("minimum"), schema.get("maximum")) == (1, INT64_MAX)
            if param["in"] == "path" and schema.get("type") == "integer" and not bounded:
                problems.append(f"{method} {oas_path}: {param['name']} is not bounded to 1..2**63-1")
    assert not problems, "\n".join(problems)
