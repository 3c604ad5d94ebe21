"""Guardianships that change under a link: the civil registry's change feed, refusals that suspend,
a guardian ending a link, and alerts that do not flood an inbox (issue 8, items 4 and 9).

Over real HTTP, with the civil-registry simulator recording its change feed as a real registry
would (`withdraw`, `load`, `PUT /_sim/data`).
"""

from __future__ import annotations

import asyncio
import time
from datetime import date

import aiohttp
import httpx
import pytest

from api.worker import run_guardianship_feed_poller
from integrations.base import RetryPolicy
from integrations.civil_registry.base import GuardianshipChangeKind
from integrations.civil_registry.http import HttpCivilRegistry
from integrations.civil_registry.simulator import CivilRegistrySimulator
from integrations.errors import RequestRejected
from services.guardianship.models import GuardianshipLink
from services.messages.models import InboxMessage
from services.outbox.models import OutboxMessage
from tests.factories import create_person, make_id_number, phone_of
from tests.integration.citizen_support import citizen_headers, sms_to, wait_for_sms
from tests.integration.test_wards import WARDS, link_ward, make_family, registry


def _id(vault, person) -> str:
    return vault.decrypt(person.id_number_enc)


async def _status(client, app, guardian, link_id: int) -> str:
    r = await client.get(WARDS, headers=citizen_headers(app, guardian))
    assert r.status_code == 200, r.text
    return next(w["status"] for w in r.json()["items"] if w["ward_id"] == link_id)


# --- item 4: a withdrawn guardianship stops working at once --------------------------------------


async def test_a_withdrawn_guardianship_is_refused_on_the_next_read(client, app, vault):
    family = await make_family(app, vault)
    mother = family.guardians[0]
    link_id = family.links[mother.id]
    path = f"{WARDS}/{link_id}/properties"
    headers = citizen_headers(app, mother)
    assert (await client.get(path, headers=headers)).status_code == 200

    # A court withdraws the guardianship, through the registry's own (simulated) admin API.
    async with httpx.AsyncClient(base_url=registry(app).base_url) as sim:
        r = await sim.post(
            "/_sim/guardianships/withdraw",
            json={"guardian_id_number": _id(vault, mother), "ward_id_number": family.ward_id_number},
        )
    assert r.status_code == 200, r.text

    # Well within the 30 days: the feed, not the calendar, makes the next read ask again.
    r = await client.get(path, headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    assert (await client.get(f"{path}/{family.minor_right.id}", headers=headers)).status_code == 404
    assert await _status(client, app, mother, link_id) == "suspended"
    link = await GuardianshipLink.get(id=link_id)
    assert (link.status, link.suspended_reason) == ("suspended", "GUARDIANSHIP_NOT_FOUND")


async def test_ward_list_shows_a_withdrawal_without_a_read(client, app, vault):
    family = await make_family(app, vault)
    mother = family.guardians[0]
    link_id = family.links[mother.id]
    assert await _status(client, app, mother, link_id) == "active"
    registry(app).withdraw(_id(vault, mother), family.ward_id_number)
    assert await _status(client, app, mother, link_id) == "suspended"


async def test_a_refused_link_attempt_suspends_the_existing_link(client, app, vault):
    family = await make_family(app, vault)
    mother = family.guardians[0]
    link_id = family.links[mother.id]
    headers = citizen_headers(app, mother)
    path = f"{WARDS}/{link_id}/properties"
    assert (await client.get(path, headers=headers)).status_code == 200
    # The registry stops confirming the pair before its feed says so (the feed may lag): the
    # refusal a link attempt hears is enough.
    registry(app)._guardianships.pop((_id(vault, mother), family.ward_id_number))
    r = await client.post(WARDS, json={"id_number": family.ward_id_number}, headers=headers)
    assert r.status_code == 403 and r.json()["code"] == "GUARDIANSHIP_NOT_VERIFIED"
    assert (await GuardianshipLink.get(id=link_id)).status == "suspended"
    assert (await client.get(path, headers=headers)).status_code == 404
    assert await _status(client, app, mother, link_id) == "suspended"


async def test_concurrent_link_attempt_and_reads_after_a_withdrawal_serve_nothing(client, app, vault):
    family = await make_family(app, vault)
    mother = family.guardians[0]
    link_id = family.links[mother.id]
    headers = citizen_headers(app, mother)
    path = f"{WARDS}/{link_id}/properties"
    assert (await client.get(path, headers=headers)).status_code == 200
    registry(app).withdraw(_id(vault, mother), family.ward_id_number)
    results = await asyncio.gather(
        client.post(WARDS, json={"id_number": family.ward_id_number}, headers=headers),
        *(client.get(path, headers=headers) for _ in range(10)),
    )
    assert results[0].status_code == 403
    assert [r.status_code for r in results[1:]] == [404] * 10
    assert (await GuardianshipLink.get(id=link_id)).status == "suspended"


async def test_a_guardian_ends_their_link_and_relinking_verifies_again(client, app, vault):
    family = await make_family(app, vault)
    mother = family.guardians[0]
    link_id = family.links[mother.id]
    headers = citizen_headers(app, mother)
    path = f"{WARDS}/{link_id}/properties"
    assert (await client.get(path, headers=headers)).status_code == 200

    stranger = await create_person(vault=vault)
    r = await client.delete(f"{WARDS}/{link_id}", headers=citizen_headers(app, stranger))
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    assert (await GuardianshipLink.get(id=link_id)).status == "active", "a stranger changed nothing"

    r = await client.delete(f"{WARDS}/{link_id}", headers=headers)
    assert r.status_code == 204 and r.content == b""
    assert (await client.delete(f"{WARDS}/{link_id}", headers=headers)).status_code == 204, "idempotent"
    link = await GuardianshipLink.get(id=link_id)
    assert (link.status, link.suspended_reason) == ("ended", "ENDED_BY_GUARDIAN")
    assert (await client.get(path, headers=headers)).status_code == 404
    assert await _status(client, app, mother, link_id) == "ended"

    pair = (_id(vault, mother), family.ward_id_number)
    asked = registry(app).verifications(*pair)
    assert await link_ward(app, mother, family.ward_id_number) == link_id
    assert registry(app).verifications(*pair) == asked + 1, "re-linking asks the registry"
    assert (await client.get(path, headers=headers)).status_code == 200


async def test_an_unreachable_feed_refuses_ward_reads_and_the_list_shows_the_last_state(client, app, vault):
    family = await make_family(app, vault)
    mother = family.guardians[0]
    link_id = family.links[mother.id]
    headers = citizen_headers(app, mother)
    path = f"{WARDS}/{link_id}/properties"
    assert (await client.get(path, headers=headers)).status_code == 200
    stranger = await create_person(vault=vault)
    registry(app).set_fault("error", status=503, operations=["guardianship_changes"])
    try:
        r = await client.get(path, headers=headers)
        assert r.status_code == 503 and r.json()["code"] == "UPSTREAM_UNAVAILABLE"
        r = await client.get(f"{path}/{family.minor_right.id}", headers=headers)
        assert r.status_code == 503
        # A stranger learns nothing from the outage: still the same 404.
        assert (await client.get(path, headers=citizen_headers(app, stranger))).status_code == 404
        assert await _status(client, app, mother, link_id) == "active"
    finally:
        registry(app).clear_faults()
    assert (await client.get(path, headers=headers)).status_code == 200


async def test_the_poller_flags_and_suspends_links_without_reads(client, app, vault):
    services = app.services
    assert any(t.get_name() == "guardianship-feed-poller" for t in services.background)
    family = await make_family(app, vault, guardians=2)
    mother, father = family.guardians
    await services.guardianship_feed.ensure_fresh()
    before = {link.id: link for link in await GuardianshipLink.filter(id__in=list(family.links.values()))}

    registry(app).withdraw(_id(vault, mother), family.ward_id_number)
    await services.guardianship_feed.ensure_fresh()  # what each poll starts with
    mother_link = await GuardianshipLink.get(id=family.links[mother.id])
    father_link = await GuardianshipLink.get(id=family.links[father.id])
    assert mother_link.changes_reported == before[mother_link.id].changes_reported + 1, "flagged"
    assert father_link.changes_reported == before[father_link.id].changes_reported, "not flagged"

    stop = asyncio.Event()
    poller = asyncio.create_task(run_guardianship_feed_poller(services, interval_s=0.05, stop=stop))
    try:
        deadline = time.monotonic() + 5
        while (await GuardianshipLink.get(id=mother_link.id)).status != "suspended":
            assert time.monotonic() < deadline, "the poller did not suspend the withdrawn link"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(poller, timeout=5)
    father_link = await GuardianshipLink.get(id=father_link.id)
    assert father_link.status == "active"
    assert father_link.changes_verified >= father_link.changes_reported, "verified again, still active"


# --- item 9: an inbox cannot be flooded ----------------------------------------------------------


async def test_a_hundred_concurrent_reads_give_the_other_guardian_one_message_and_one_sms(app, vault):
    family = await make_family(app, vault, guardians=2)
    reader, other = family.guardians
    other_link = family.links[other.id]
    path = f"{WARDS}/{family.links[reader.id]}/properties"
    headers = citizen_headers(app, reader)
    feed_calls = registry(app).requests("guardianship_changes")
    limits = httpx.Limits(max_connections=110, max_keepalive_connections=110)
    async with httpx.AsyncClient(base_url=app.base_url, timeout=30, limits=limits) as c:
        results = await asyncio.gather(*(c.get(path, headers=headers) for _ in range(100)))
    assert [r.status_code for r in results] == [200] * 100, [r.text for r in results if r.status_code != 200]
    assert await InboxMessage.filter(person_id=other.id, kind="guardian_query").count() == 1
    keys = f"guardian-query-alert:{other_link}:"
    assert await OutboxMessage.filter(idempotency_key__startswith=keys).count() == 1
    phone = phone_of(other, vault=vault)
    assert len(await wait_for_sms(app, phone, "guardian_query_alert", 1)) == 1
    await asyncio.sleep(0.3)
    assert len(await sms_to(app, phone, "guardian_query_alert")) == 1
    assert registry(app).requests("guardianship_changes") - feed_calls < 100, "reads share feed calls"


# --- the simulator's feed, through the real adapter ----------------------------------------------


async def test_the_registry_feed_records_every_guardianship_difference():
    sim = CivilRegistrySimulator()
    await sim.start()
    session = aiohttp.ClientSession()
    adapter = HttpCivilRegistry(
        base_url=sim.base_url, session=session, timeout_s=2.0, retry=RetryPolicy.none()
    )
    try:
        await _check_feed(sim, adapter)
    finally:
        await session.close()
        await sim.stop()


async def _check_feed(sim: CivilRegistrySimulator, adapter: HttpCivilRegistry) -> None:
    mother, father, ward, other = (make_id_number(birth_date=born) for born in _BIRTHS)
    sim.load(
        people=[
            {"id_number": i, "name": n} for i, n in ((mother, "王芳"), (father, "刘强"), (ward, "王小宝"))
        ],
        guardianships=[(mother, ward, "母亲"), (father, ward, "父亲")],
    )
    sim.load(guardianships=[(father, ward, "监护人")])  # the relation changed
    sim.load(people=[{"id_number": mother, "name": "王芳", "alive": False}])  # a death
    sim.load(people=[{"id_number": other, "name": "路人"}])  # no guardianship: no entry
    assert sim.withdraw(father, ward) and not sim.withdraw(father, ward)

    page = await adapter.guardianship_changes(None, 100)
    assert [(c.guardian_id_number, c.ward_id_number, c.kind) for c in page.changes] == [
        (father, ward, GuardianshipChangeKind.ADDED),
        (mother, ward, GuardianshipChangeKind.ADDED),
        (father, ward, GuardianshipChangeKind.CHANGED),
        (mother, ward, GuardianshipChangeKind.PERSON_CHANGED),
        (father, ward, GuardianshipChangeKind.WITHDRAWN),
    ]
    assert page.cursor == "5"
    assert (await adapter.guardianship_changes(page.cursor, 100)).changes == []
    paged = await adapter.guardianship_changes(None, 2)
    assert len(paged.changes) == 2 and paged.cursor == "2"
    with pytest.raises(RequestRejected) as refused:
        await adapter.guardianship_changes("999", 10)
    assert refused.value.code == "INVALID_CURSOR"

    # PUT /_sim/data replaces everything: every pair that differs is in the feed.
    async with httpx.AsyncClient(base_url=sim.base_url) as c:
        r = await c.put(
            "/_sim/data",
            json={
                "people": [{"id_number": i, "name": "某"} for i in (father, ward, other)],
                "guardianships": [
                    {"guardian_id_number": father, "ward_id_number": ward, "relation": "父亲"},
                    {"guardian_id_number": other, "ward_id_number": ward, "relation": "祖母"},
                ],
            },
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"people": 3, "guardianships": 2}
        assert (await c.get("/_sim/state")).json()["guardianship_changes"] == 8
        r = await c.post(
            "/_sim/guardianships/withdraw", json={"guardian_id_number": other, "ward_id_number": ward}
        )
        assert r.status_code == 200
        assert (await c.get("/_sim/state")).json()["guardianship_changes"] == 9
    replaced = await adapter.guardianship_changes(page.cursor, 1000)
    assert [(c.guardian_id_number, c.kind) for c in replaced.changes[:3]] == sorted(
        [  # one replacement: its entries in (guardian, ward) order
            (father, GuardianshipChangeKind.ADDED),
            (mother, GuardianshipChangeKind.WITHDRAWN),
            (other, GuardianshipChangeKind.ADDED),
        ]
    )
    assert (replaced.changes[3].guardian_id_number, replaced.changes[3].kind) == (
        other,
        GuardianshipChangeKind.WITHDRAWN,
    )


_BIRTHS = (date(1985, 3, 1), date(1984, 7, 9), date(2016, 5, 20), date(1960, 1, 2))
