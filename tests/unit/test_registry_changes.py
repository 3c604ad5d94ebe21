"""The register's changes (services/registry/changes) on fakes: who is alerted, which cached lists
are invalidated, which errors with which codes, and that a refused or failed change leaves
nothing behind.

The changes are ORM use cases, so each test runs on its own SQLite file copied from one built by
the real migrations, bound to the test's Tortoise context (not the process-wide one the session
app may hold). SMS go through the real outbox, delivered by the real worker to `FakeSms`; the
cache is the in-process KV store with its generation writes recorded. No network.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext

from config.settings import tortoise_config
from integrations.testing import FakeSms
from services.clock import FrozenClock
from services.db import apply_migrations
from services.errors import InvalidCaseTransition, NotFound, RegisterStateConflict, ValidationFailed
from services.kv import MemoryStore
from services.messages import SMS_SEND
from services.messages.models import InboxMessage
from services.messages.sms import deliver_sms
from services.outbox import HandlerTable, route
from services.outbox import handlers as outbox_handlers
from services.outbox.handlers import TopicWithoutHandler, handlers_registered
from services.outbox.models import OutboxMessage
from services.outbox.worker import OutboxWorker
from services.pii import PiiVault
from services.registry import changes
from services.registry.models import Encumbrance, Mortgage, RegistrationCase, Right, RightHolder
from services.registry.properties import PropertyFilters, cached_properties
from tests.factories import (
    create_case,
    create_encumbrance,
    create_mortgage,
    create_organisation,
    create_person,
    create_right,
    create_unit,
    make_certificate_number,
    phone_of,
)

NOW = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
GEN_PREFIX = "props:gen:"


class RecordingStore(MemoryStore):
    """The in-process KV store, noting whose property lists were invalidated (generation writes)."""

    def __init__(self) -> None:
        super().__init__()
        self.invalidated: list[int] = []

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        if key.startswith(GEN_PREFIX):
            self.invalidated.append(int(key.removeprefix(GEN_PREFIX)))
        await super().set(key, value, ttl_s=ttl_s)


@dataclass
class World:
    kv: RecordingStore
    clock: FrozenClock
    sms: FakeSms
    vault: PiiVault
    handlers: HandlerTable
    deps: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.deps = {"kv": self.kv, "clock": self.clock}

    async def deliver_outbox(self) -> None:
        worker = OutboxWorker(handlers=self.handlers, worker_id="unit-test", clock=self.clock)
        while await worker.run_once():
            pass

    async def cached_list(self, person_id: int) -> bytes:
        self.kv.invalidated.clear()  # reading may create a generation: not an invalidation
        page = await cached_properties(
            person_id=person_id, filters=PropertyFilters(), after_id=None, limit=20, kv=self.kv, ttl_s=300
        )
        self.kv.invalidated.clear()
        return orjson.dumps(page.items)


@pytest.fixture(scope="module")
async def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry-changes") / "template.sqlite3"
    await apply_migrations(tortoise_config(f"sqlite://{path}"))
    return path


@pytest.fixture
async def world(migrated_template: Path, tmp_path: Path, vault: PiiVault) -> AsyncIterator[World]:
    """A fresh copy of the migrated database, open in this test's context only."""
    path = tmp_path / "registry.sqlite3"
    shutil.copyfile(migrated_template, path)
    sms = FakeSms()
    handlers = HandlerTable(route(SMS_SEND, partial(deliver_sms, sms=sms, vault=vault)))
    ctx = TortoiseContext()
    with ctx, handlers_registered(handlers):
        await ctx.init(config=tortoise_config(f"sqlite://{path}"))
        try:
            yield World(RecordingStore(), FrozenClock(NOW), sms, vault, handlers)
        finally:
            await ctx.close_connections()
            # Tortoise caches insert statements by connection name, not by dialect: this SQLite
            # context's "?" placeholders must not reach a PostgreSQL run in the same process.
            EXECUTOR_CACHE.clear()


async def _nothing_written(*, messages: int = 0, outbox: int = 0) -> None:
    assert await InboxMessage.all().count() == messages
    assert await OutboxMessage.all().count() == outbox


# --- who is alerted, what is invalidated -----------------------------------------------------------


async def test_a_mortgage_alerts_every_person_holding_the_right_and_invalidates_their_lists(world):
    reachable = await create_person()
    no_phone = await create_person(phone=None)
    company = await create_organisation()
    bystander = await create_person()
    right = await create_right(holders=[(reachable, "0.5"), (no_phone, "0.25"), (company, "0.25")])
    await create_right(holders=[(bystander, "1")])
    bank = await create_organisation(kind="bank")
    before = await world.cached_list(reachable.id)
    bystander_list = await world.cached_list(bystander.id)

    mortgage = await changes.register_mortgage(
        right_id=right.id,
        mortgagee_id=bank.id,
        amount_fen=150_000_000,
        term_start=date(2026, 3, 1),
        term_end=date(2056, 3, 1),
        certificate_number=make_certificate_number(kind="registration"),
        hotline="12345",
        **world.deps,
    )

    messages = await InboxMessage.all().order_by("person_id")
    assert [m.person_id for m in messages] == sorted([reachable.id, no_phone.id])  # persons, not companies
    for m in messages:
        assert m.kind == "property_change" and m.title == "不动产变动提醒：抵押权登记"
        assert m.data == {
            "right_id": right.id,
            "mortgage_id": mortgage.id,
            "event": "抵押权登记",
            "unit_number": (await right.unit).unit_number,
        }
        assert "2026-03-02 09:30" in m.body and "12345" in m.body
    outbox = await OutboxMessage.all()
    assert [(o.topic, o.payload["person_id"]) for o in outbox] == [("sms.send", reachable.id)]
    assert outbox[0].payload["phone_enc"] is None  # the outbox names the person, holds no number
    assert phone_of(reachable) not in str(outbox[0].payload)
    assert sorted(world.kv.invalidated) == sorted([reachable.id, no_phone.id])

    await world.deliver_outbox()
    [sent] = world.sms.messages
    assert sent.phone == phone_of(reachable) and sent.template == changes.ALERT_TEMPLATE
    assert sent.params["event"] == "抵押权登记" and sent.params["time"] == "2026-03-02 09:30"
    # The holder's next read shows the mortgage; the bystander's cached list was left alone.
    assert b'"mortgage_id":%d' % mortgage.id in await world.cached_list(reachable.id)
    assert before != await world.cached_list(reachable.id)
    assert await world.cached_list(bystander.id) == bystander_list


async def test_a_transfer_alerts_old_and_new_holders_and_burdens_follow_the_unit(world):
    seller, buyer_a, buyer_b = await create_person(), await create_person(), await create_person()
    old = await create_right(holders=[(seller, "1")])
    mortgage = await create_mortgage(right=old)
    objection = await create_encumbrance(right=old, kind="objection")
    lifted = await create_encumbrance(right=old, kind="seizure", status="lifted")

    new = await changes.register_transfer(
        right_id=old.id,
        new_holders=[(buyer_a.id, "0.5"), (buyer_b.id, "0.5")],
        certificate_number=make_certificate_number(),
        **world.deps,
    )

    await old.refresh_from_db()
    assert old.status == "historical" and old.ended_at == NOW
    assert new.status == "current" and new.co_ownership == "shares" and new.unit_id == old.unit_id  # type: ignore[attr-defined]
    holders = (
        await RightHolder.filter(right_id=new.id).order_by("person_id").values_list("person_id", flat=True)
    )
    assert list(holders) == sorted([buyer_a.id, buyer_b.id])
    assert (await Mortgage.get(id=mortgage.id)).right_id == new.id  # type: ignore[attr-defined]
    assert (await Encumbrance.get(id=objection.id)).right_id == new.id  # type: ignore[attr-defined]
    assert (await Encumbrance.get(id=lifted.id)).right_id == old.id  # type: ignore[attr-defined]
    alerted = {m.person_id: m.data for m in await InboxMessage.all()}
    assert set(alerted) == {seller.id, buyer_a.id, buyer_b.id}
    assert all(d["right_id"] == new.id and d["previous_right_id"] == old.id for d in alerted.values())
    assert await OutboxMessage.all().count() == 3
    assert sorted(world.kv.invalidated) == sorted([seller.id, buyer_a.id, buyer_b.id])


async def test_a_case_alerts_the_current_holders_of_the_unit_only(world):
    former, holder = await create_person(), await create_person()
    unit = await create_unit()
    await create_right(holders=[(former, "1")], unit=unit, status="historical")
    await create_right(holders=[(holder, "1")], unit=unit)

    case = await changes.start_case(unit_id=unit.id, kind="transfer", case_number="T-1", **world.deps)
    assert case.state == "applied"
    for state in ("accepted", "reviewing", "registered", "issued"):
        case = await changes.advance_case(case_id=case.id, state=state, **world.deps)
    assert (await RegistrationCase.get(id=case.id)).state == "issued"

    events = [m.data["event"] for m in await InboxMessage.filter(person_id=holder.id).order_by("id")]
    assert events == ["转移登记申请", "转移登记已受理", "转移登记审核中", "转移登记已登簿", "转移登记已发证"]
    assert not await InboxMessage.filter(person_id=former.id).exists()
    assert set(world.kv.invalidated) == {holder.id}


async def test_ending_a_mortgage_or_an_encumbrance_happens_once(world):
    holder = await create_person()
    right = await create_right(holders=[(holder, "1")])
    mortgage = await create_mortgage(right=right)
    seizure = await create_encumbrance(right=right, kind="seizure")

    cancelled = await changes.cancel_mortgage(mortgage_id=mortgage.id, **world.deps)
    lifted = await changes.lift_encumbrance(encumbrance_id=seizure.id, **world.deps)
    assert (cancelled.status, cancelled.cancelled_at) == ("cancelled", NOW)
    assert (lifted.status, lifted.lifted_at) == ("lifted", NOW)
    events = [m.data["event"] for m in await InboxMessage.all().order_by("id")]
    assert events == ["抵押权注销登记", "解除查封登记"]

    with pytest.raises(RegisterStateConflict) as again:
        await changes.cancel_mortgage(mortgage_id=mortgage.id, **world.deps)
    assert again.value.code == "REGISTER_STATE_CONFLICT"
    assert again.value.fields == {"mortgage_id": mortgage.id, "status": "cancelled"}
    with pytest.raises(RegisterStateConflict):
        await changes.lift_encumbrance(encumbrance_id=seizure.id, **world.deps)
    with pytest.raises(NotFound) as missing:
        await changes.lift_encumbrance(encumbrance_id=seizure.id + 1000, **world.deps)
    assert missing.value.code == "NOT_FOUND" and missing.value.fields == {"encumbrance_id": seizure.id + 1000}
    await _nothing_written(messages=2, outbox=2)  # the refusals added nothing


# --- refusals leave nothing behind -----------------------------------------------------------------


async def test_a_seized_right_is_not_transferred_and_nothing_is_left_behind(world):
    seller, buyer = await create_person(), await create_person()
    right = await create_right(holders=[(seller, "1")])
    seizure = await create_encumbrance(right=right, kind="seizure")
    rights_before = await Right.all().count()

    with pytest.raises(RegisterStateConflict) as refused:
        await changes.register_transfer(
            right_id=right.id,
            new_holders=[(buyer.id, "1")],
            certificate_number=make_certificate_number(),
            **world.deps,
        )

    assert refused.value.code == "REGISTER_STATE_CONFLICT"
    assert refused.value.fields["reason"] == "seized"
    assert refused.value.fields["encumbrance_ids"] == [seizure.id]
    await right.refresh_from_db()
    assert right.status == "current" and right.ended_at is None  # the status update was rolled back
    assert await Right.all().count() == rights_before
    await _nothing_written()
    assert world.kv.invalidated == []


@pytest.mark.parametrize(
    "new_holders",
    [
        [],
        [(1, "0.5")],  # does not add up to 1
        [(1, "0.5"), (1, "0.5")],  # the same holder twice
        [(1, "1.5"), (2, "-0.5")],  # a negative share
        [(1, "half")],
    ],
)
async def test_a_transfer_to_impossible_holders_is_refused_before_anything_is_written(world, new_holders):
    right = await create_right()
    with pytest.raises(ValidationFailed) as refused:
        await changes.register_transfer(
            right_id=right.id, new_holders=new_holders, certificate_number="X", **world.deps
        )
    assert refused.value.code == "VALIDATION_FAILED"
    assert (await Right.get(id=right.id)).status == "current"
    await _nothing_written()
    assert world.kv.invalidated == []


async def test_refused_mortgages_and_encumbrances(world):
    right = await create_right()
    historical = await create_right(status="historical")
    bank = await create_organisation(kind="bank")
    mortgage = {
        "mortgagee_id": bank.id,
        "amount_fen": 100,
        "term_start": date(2026, 1, 1),
        "term_end": date(2036, 1, 1),
        "certificate_number": "M-1",
    }

    def mortgage_on(right_id: int, **changed: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: changes.register_mortgage(right_id=right_id, **{**mortgage, **changed}, **world.deps)

    def encumbrance_on(right_id: int, kind: str) -> Callable[[], Awaitable[Any]]:
        return lambda: changes.register_encumbrance(
            right_id=right_id,
            kind=kind,
            authority="a",
            document_number="d",
            starts_on=date(2026, 1, 1),
            **world.deps,
        )

    cases: list[tuple[Callable[[], Awaitable[Any]], type[Exception], str]] = [
        (mortgage_on(right.id, amount_fen=0), ValidationFailed, "VALIDATION_FAILED"),
        (mortgage_on(right.id, term_end=date(2025, 1, 1)), ValidationFailed, "VALIDATION_FAILED"),
        (mortgage_on(historical.id), RegisterStateConflict, "REGISTER_STATE_CONFLICT"),
        (mortgage_on(right.id + 10_000), NotFound, "NOT_FOUND"),
        (mortgage_on(right.id, mortgagee_id=bank.id + 10_000), NotFound, "NOT_FOUND"),
        (encumbrance_on(right.id, "lien"), ValidationFailed, "VALIDATION_FAILED"),
        (encumbrance_on(historical.id, "seizure"), RegisterStateConflict, "REGISTER_STATE_CONFLICT"),
    ]
    for call, error, code in cases:
        with pytest.raises(error) as refused:
            await call()
        assert refused.value.code == code  # type: ignore[attr-defined]
    assert not await Mortgage.exists() and not await Encumbrance.exists()
    await _nothing_written()
    assert world.kv.invalidated == []


@pytest.mark.parametrize(
    ("start", "requested"),
    [
        ("applied", "reviewing"),
        ("accepted", "registered"),
        ("reviewing", "issued"),
        ("issued", "applied"),
        ("refused", "accepted"),
    ],
)
async def test_a_case_moves_only_along_the_state_machine(world, start, requested):
    case = await create_case(state=start)
    with pytest.raises(InvalidCaseTransition) as refused:
        await changes.advance_case(case_id=case.id, state=requested, **world.deps)
    assert refused.value.code == "INVALID_CASE_TRANSITION"
    assert refused.value.fields == {"case_id": case.id, "state": start, "requested": requested}
    assert (await RegistrationCase.get(id=case.id)).state == start
    await _nothing_written()


async def test_unknown_units_and_cases_are_not_found(world):
    with pytest.raises(NotFound) as unit:
        await changes.start_case(unit_id=10_000, kind="transfer", case_number="T-9", **world.deps)
    with pytest.raises(NotFound) as case:
        await changes.advance_case(case_id=10_000, state="accepted", **world.deps)
    assert unit.value.fields == {"unit_id": 10_000} and case.value.fields == {"case_id": 10_000}
    assert not await RegistrationCase.exists()
    await _nothing_written()


@pytest.fixture
def no_sms_handler(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the composition root had not wired `sms.send`: enqueueing the alert fails."""
    monkeypatch.setattr(outbox_handlers, "_REGISTERED", {})


async def test_a_change_whose_alert_fails_is_rolled_back_with_everything_it_wrote(world, no_sms_handler):
    holder = await create_person()
    right = await create_right(holders=[(holder, "1")])
    bank = await create_organisation(kind="bank")
    with pytest.raises(TopicWithoutHandler):
        await changes.register_mortgage(
            right_id=right.id,
            mortgagee_id=bank.id,
            amount_fen=100,
            term_start=date(2026, 1, 1),
            term_end=date(2036, 1, 1),
            certificate_number="M-2",
            **world.deps,
        )
    assert not await Mortgage.exists()
    await _nothing_written()  # the in-app message written before the failed enqueue is gone too
    assert world.kv.invalidated == []
