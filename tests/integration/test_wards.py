"""Guardians and minors over real HTTP, with the civil-registry and SMS simulators."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, timedelta

import httpx

from services.guardianship.models import GuardianshipLink
from services.identifiers import eighteenth_birthday, mask_id_number
from services.messages.models import InboxMessage
from services.outbox.models import OutboxMessage
from services.registry.models import Person, Right
from tests.factories import create_person, create_right, make_id_number, phone_of
from tests.integration.citizen_support import (
    citizen_headers,
    shanghai_today,
    sms_to,
    wait_for_sms,
    years_ago,
)

WARDS = "/api/v1/me/wards"


@dataclass
class Family:
    ward_id_number: str
    ward: Person | None
    guardians: list[Person]
    right: Right | None
    links: dict[int, int] = field(default_factory=dict)  # guardian person id -> ward link id

    @property
    def minor(self) -> Person:
        assert self.ward is not None, "this family's ward is not in the register"
        return self.ward

    @property
    def minor_right(self) -> Right:
        assert self.right is not None, "this family's ward holds nothing"
        return self.right


def registry(app):
    return app.services.simulators.civil_registry


async def make_family(
    app,
    vault,
    *,
    ward_born: date | None = None,
    guardians: int = 1,
    in_register: bool = True,
    link: bool = True,
) -> Family:
    today = shanghai_today(app)
    ward_id = make_id_number(birth_date=ward_born or years_ago(today, 10))
    parents = [
        await create_person(vault=vault, born=years_ago(today, 40), name=n)
        for n in ("王芳", "刘强")[:guardians]
    ]
    ward = (
        await create_person(vault=vault, id_number=ward_id, phone=None, name="王小宝")
        if in_register
        else None
    )
    right = await create_right(holders=[(ward, "1")]) if ward else None
    registry(app).load(
        people=[{"id_number": ward_id, "name": "王小宝"}]
        + [{"id_number": vault.decrypt(p.id_number_enc), "name": p.name} for p in parents],
        guardianships=[
            (vault.decrypt(p.id_number_enc), ward_id, "母亲" if i == 0 else "父亲")
            for i, p in enumerate(parents)
        ],
    )
    family = Family(ward_id, ward, parents, right)
    if link:
        for parent in parents:
            family.links[parent.id] = await link_ward(app, parent, ward_id)
    return family


async def link_ward(app, guardian: Person, ward_id_number: str) -> int:
    async with httpx.AsyncClient(base_url=app.base_url) as c:
        r = await c.post(WARDS, json={"id_number": ward_id_number}, headers=citizen_headers(app, guardian))
    assert r.status_code == 201, r.text
    return int(r.json()["ward_id"])


def drop_guardianship(app, guardian_id_number: str, ward_id_number: str) -> None:
    """A court revoking a guardianship: the registry records it in its change feed."""
    assert registry(app).withdraw(guardian_id_number, ward_id_number)


# --- linking -------------------------------------------------------------------------------------


async def test_guardian_links_a_minor_and_reads_their_properties_masked(client, app, vault):
    family = await make_family(app, vault, link=False)
    guardian = family.guardians[0]
    headers = citizen_headers(app, guardian)
    r = await client.post(WARDS, json={"id_number": family.ward_id_number.lower()}, headers=headers)
    assert r.status_code == 201, r.text
    ward = r.json()
    assert ward["id_number"] == mask_id_number(family.ward_id_number)
    assert ward["name"] == "王**" and ward["relation"] == "母亲" and ward["status"] == "active"
    assert ward["access_ends_on"] == eighteenth_birthday(family.ward_id_number).isoformat()

    listed = (await client.get(WARDS, headers=headers)).json()["items"]
    assert [w["ward_id"] for w in listed] == [ward["ward_id"]]
    r = await client.get(f"{WARDS}/{ward['ward_id']}/properties", headers=headers)
    assert r.status_code == 200, r.text
    assert [(i["right_id"], i["share"]) for i in r.json()["items"]] == [(family.minor_right.id, "1")]
    d = await client.get(f"{WARDS}/{ward['ward_id']}/properties/{family.minor_right.id}", headers=headers)
    assert d.status_code == 200 and d.json()["right_id"] == family.minor_right.id
    for response in (r, d):
        assert family.ward_id_number not in response.text
    link = await GuardianshipLink.get(id=ward["ward_id"])
    assert family.ward_id_number not in link.ward_id_number_enc  # stored encrypted
    assert vault.decrypt(link.ward_id_number_enc) == family.ward_id_number


async def test_link_is_refused_when_the_civil_registry_says_no(client, app, vault):
    family = await make_family(app, vault, link=False)
    stranger = await create_person(vault=vault)
    registry(app).load(people=[{"id_number": vault.decrypt(stranger.id_number_enc), "name": stranger.name}])
    unknown_child = make_id_number(birth_date=years_ago(shanghai_today(app), 8))
    headers = citizen_headers(app, stranger)
    for ward_id in (family.ward_id_number, unknown_child):
        r = await client.post(WARDS, json={"id_number": ward_id}, headers=headers)
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "GUARDIANSHIP_NOT_VERIFIED"
    assert (await client.get(WARDS, headers=headers)).json()["items"] == []
    assert await GuardianshipLink.filter(guardian_id=stranger.id).count() == 0


async def test_link_is_refused_for_a_ward_of_18_or_older(client, app, vault):
    today = shanghai_today(app)
    family = await make_family(app, vault, ward_born=years_ago(today, 18), link=False)  # 18 today
    guardian = family.guardians[0]
    pair = (vault.decrypt(guardian.id_number_enc), family.ward_id_number)
    r = await client.post(
        WARDS, json={"id_number": family.ward_id_number}, headers=citizen_headers(app, guardian)
    )
    assert r.status_code == 422 and r.json()["code"] == "WARD_NOT_MINOR"
    assert registry(app).verifications(*pair) == 0, "decided from the ID number alone"

    # The ID number says 17, the civil registry's record says of age: its answer decides.
    minor_by_id = years_ago(today, 17)
    family = await make_family(app, vault, ward_born=minor_by_id, link=False)
    registry(app).load(
        people=[{"id_number": family.ward_id_number, "name": "王小宝", "birth_date": "2000-01-01"}]
    )
    r = await client.post(
        WARDS, json={"id_number": family.ward_id_number}, headers=citizen_headers(app, family.guardians[0])
    )
    assert r.status_code == 422 and r.json()["code"] == "WARD_NOT_MINOR"
    assert await GuardianshipLink.filter(guardian_id=family.guardians[0].id).count() == 0


async def test_link_is_refused_while_the_civil_registry_is_down_and_nothing_is_stored(client, app, vault):
    family = await make_family(app, vault, link=False)
    guardian = family.guardians[0]
    headers = citizen_headers(app, guardian)
    registry(app).set_fault("error", status=503)
    try:
        r = await client.post(WARDS, json={"id_number": family.ward_id_number}, headers=headers)
        assert r.status_code == 503 and r.json()["code"] == "UPSTREAM_UNAVAILABLE"
    finally:
        registry(app).clear_faults()
    assert await GuardianshipLink.filter(guardian_id=guardian.id).count() == 0
    r = await client.post(WARDS, json={"id_number": family.ward_id_number}, headers=headers)
    assert r.status_code == 201


async def test_link_validates_the_id_number(client, app, vault):
    guardian = await create_person(vault=vault)
    headers = citizen_headers(app, guardian)
    r = await client.post(WARDS, json={"id_number": "110105199003071234"}, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "INVALID_ID_NUMBER"
    r = await client.post(WARDS, json={"id_number": vault.decrypt(guardian.id_number_enc)}, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "WARD_IS_SELF"


async def test_a_minor_without_property_has_an_empty_list(client, app, vault):
    family = await make_family(app, vault, in_register=False)
    guardian = family.guardians[0]
    link_id = family.links[guardian.id]
    headers = citizen_headers(app, guardian)
    r = await client.get(f"{WARDS}/{link_id}/properties", headers=headers)
    assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}
    assert (await client.get(WARDS, headers=headers)).json()["items"][0]["name"] is None


# --- who gets 404 --------------------------------------------------------------------------------


async def test_unlinked_guardian_and_guardian_of_another_child_get_404(client, app, vault):
    mine = await make_family(app, vault)
    other = await make_family(app, vault)
    unlinked = await create_person(vault=vault)
    my_link = mine.links[mine.guardians[0].id]
    other_guardian = other.guardians[0]
    cases = [
        (unlinked, f"{WARDS}/{my_link}/properties"),
        (unlinked, f"{WARDS}/{my_link}/properties/{mine.minor_right.id}"),
        (other_guardian, f"{WARDS}/{my_link}/properties"),
        (other_guardian, f"{WARDS}/{my_link}/properties/{mine.minor_right.id}"),
        # my own link, but a right my ward does not hold
        (mine.guardians[0], f"{WARDS}/{my_link}/properties/{other.minor_right.id}"),
        (mine.guardians[0], f"{WARDS}/999999999/properties"),
    ]
    for person, path in cases:
        r = await client.get(path, headers=citizen_headers(app, person))
        assert r.status_code == 404, (path, r.text)
        assert r.json()["code"] == "NOT_FOUND"


async def test_failed_reverification_suspends_the_link(client, app, clock, vault):
    family = await make_family(app, vault)
    guardian = family.guardians[0]
    link_id = family.links[guardian.id]
    path = f"{WARDS}/{link_id}/properties"
    assert (await client.get(path, headers=citizen_headers(app, guardian))).status_code == 200

    clock.advance(days=app.services.settings.guardianship_reverify_days + 1)
    drop_guardianship(app, vault.decrypt(guardian.id_number_enc), family.ward_id_number)
    pair = (vault.decrypt(guardian.id_number_enc), family.ward_id_number)
    asked = registry(app).verifications(*pair)
    headers = citizen_headers(app, guardian)
    r = await client.get(path, headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    assert registry(app).verifications(*pair) == asked + 1
    assert (await GuardianshipLink.get(id=link_id)).status == "suspended"
    assert (await client.get(WARDS, headers=headers)).json()["items"][0]["status"] == "suspended"

    # Suspended stays suspended, even once the registry agrees again, until the guardian re-links.
    registry(app).load(guardianships=[(vault.decrypt(guardian.id_number_enc), family.ward_id_number, "母亲")])
    assert (await client.get(path, headers=headers)).status_code == 404
    r = await client.post(WARDS, json={"id_number": family.ward_id_number}, headers=headers)
    assert r.status_code == 201 and r.json()["ward_id"] == link_id and r.json()["status"] == "active"
    assert (await client.get(path, headers=headers)).status_code == 200


async def test_reverification_keeps_access_when_confirmed_and_fails_closed_when_unreachable(
    client, app, clock, vault
):
    family = await make_family(app, vault)
    guardian = family.guardians[0]
    path = f"{WARDS}/{family.links[guardian.id]}/properties"
    clock.advance(days=app.services.settings.guardianship_reverify_days + 1)
    headers = citizen_headers(app, guardian)
    registry(app).set_fault("error", status=503)
    try:
        r = await client.get(path, headers=headers)
        assert r.status_code == 503 and r.json()["code"] == "UPSTREAM_UNAVAILABLE"
    finally:
        registry(app).clear_faults()
    pair = (vault.decrypt(guardian.id_number_enc), family.ward_id_number)
    asked = registry(app).verifications(*pair)
    assert (await client.get(path, headers=headers)).status_code == 200
    assert (await client.get(path, headers=headers)).status_code == 200
    assert registry(app).verifications(*pair) == asked + 1, "verified again once, then trusted"


async def test_access_ends_on_the_18th_birthday(client, app, clock, vault):
    today = shanghai_today(app)
    family = await make_family(app, vault, ward_born=years_ago(today, 18, plus_days=3))
    guardian = family.guardians[0]
    path = f"{WARDS}/{family.links[guardian.id]}/properties"
    assert eighteenth_birthday(family.ward_id_number) == today + timedelta(days=3)
    clock.advance(days=2)
    assert (await client.get(path, headers=citizen_headers(app, guardian))).status_code == 200
    clock.advance(days=1)
    headers = citizen_headers(app, guardian)
    r = await client.get(path, headers=headers)
    assert r.status_code == 404
    assert (await client.get(f"{path}/{family.minor_right.id}", headers=headers)).status_code == 404
    assert (await client.get(WARDS, headers=headers)).json()["items"][0]["status"] == "ended"


# --- the other guardian is told ------------------------------------------------------------------


async def _alert_rows(link_id: int) -> int:
    return await OutboxMessage.filter(idempotency_key__startswith=f"guardian-query-alert:{link_id}:").count()


async def test_the_other_guardian_is_notified_once_a_period_in_app_and_once_a_day_by_sms(
    client, app, clock, vault
):
    family = await make_family(app, vault, guardians=2)
    reader, other = family.guardians
    unrelated = await make_family(app, vault)
    reader_link, other_link = family.links[reader.id], family.links[other.id]
    path = f"{WARDS}/{reader_link}/properties"
    other_phone = phone_of(other, vault=vault)

    headers = citizen_headers(app, reader)
    assert (await client.get(path, headers=headers)).status_code == 200
    assert (await client.get(f"{path}/{family.minor_right.id}", headers=headers)).status_code == 200
    assert (await client.get(path, headers=headers)).status_code == 200

    inbox = await InboxMessage.filter(person_id=other.id, kind="guardian_query").order_by("id")
    assert len(inbox) == 1, "one in-app message per guardian, ward and period"
    assert "王**" in inbox[0].body and inbox[0].data["ward_id"] == other_link
    for fragment in (family.ward_id_number, family.ward_id_number[:4], family.ward_id_number[-4:]):
        assert fragment not in inbox[0].body, "no part of the ward's ID number in a message"
    assert await InboxMessage.filter(person_id=reader.id, kind="guardian_query").count() == 0
    assert await InboxMessage.filter(person_id=unrelated.guardians[0].id).count() == 0
    assert await _alert_rows(other_link) == 1, "one SMS a day per guardian and ward"
    payload = (
        await OutboxMessage.filter(idempotency_key__startswith=f"guardian-query-alert:{other_link}:").first()
    ).payload
    assert payload["person_id"] == other.id and "phone" not in payload, "a person reference, no phone"
    sent = await wait_for_sms(app, other_phone, "guardian_query_alert", 1)
    await asyncio.sleep(0.3)  # give a wrongly queued second SMS the time to arrive
    sent = await sms_to(app, other_phone, "guardian_query_alert")
    assert len(sent) == 1
    assert sent[0]["params"]["ward"] == "王**"
    assert family.ward_id_number[-4:] not in sent[0]["text"]
    assert await sms_to(app, phone_of(reader, vault=vault), "guardian_query_alert") == []

    # The next (Shanghai) day, the next read sends one more of each.
    clock.advance(days=1)
    assert (await client.get(path, headers=citizen_headers(app, reader))).status_code == 200
    assert await InboxMessage.filter(person_id=other.id, kind="guardian_query").count() == 2
    assert await _alert_rows(other_link) == 2
    assert len(await wait_for_sms(app, other_phone, "guardian_query_alert", 2)) == 2

    # And it works both ways.
    r = await client.get(f"{WARDS}/{other_link}/properties", headers=citizen_headers(app, other))
    assert r.status_code == 200
    assert await InboxMessage.filter(person_id=reader.id, kind="guardian_query").count() == 1


async def test_a_ward_read_writes_its_alert_and_access_log_entry_together(client, app, vault, monkeypatch):
    """One unit of work: if the access-log entry cannot be written, the read is not served and
    the other guardian is told of no read that did not happen."""
    from services.audit import log as audit_log

    family = await make_family(app, vault, guardians=2)
    reader, other = family.guardians
    path = f"{WARDS}/{family.links[reader.id]}/properties"

    async def broken(*_args, **_kwargs):
        raise RuntimeError("the access log is unavailable")

    monkeypatch.setattr(audit_log, "_append_in", broken)
    r = await client.get(path, headers=citizen_headers(app, reader))
    assert r.status_code == 500
    assert await InboxMessage.filter(person_id=other.id, kind="guardian_query").count() == 0
    assert await _alert_rows(family.links[other.id]) == 0

    monkeypatch.undo()
    assert (await client.get(path, headers=citizen_headers(app, reader))).status_code == 200
    assert await InboxMessage.filter(person_id=other.id, kind="guardian_query").count() == 1
