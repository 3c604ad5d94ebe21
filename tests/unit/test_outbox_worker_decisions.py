"""The outbox worker's decisions, without a database: how long to wait, retry or dead letter, and
that a worker which lost its lease records nothing (the store's conditional update said no)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import ANY

import pytest
from prometheus_client import REGISTRY

from integrations.errors import (
    AdapterNotConfigured,
    IntegrationError,
    MalformedResponse,
    RequestRejected,
    SystemTimeout,
    SystemUnavailable,
)
from integrations.testing import FakeSms
from services.clock import FrozenClock
from services.outbox import HandlerTable, declare, route
from services.outbox import worker as worker_module
from services.outbox.store import Claim
from services.outbox.worker import (
    GiveUp,
    OutboxWorker,
    Retry,
    after_failure,
    backoff_delay,
    refusal_before_delivery,
)

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
PHONE = "13800138000"


class Extreme(random.Random):
    """An rng whose `uniform` always returns one end of the range."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def _error(kind: type[IntegrationError]) -> IntegrationError:
    if kind is RequestRejected:
        return RequestRejected("refused", system="sms", operation="send", code="PHONE_INVALID")
    return kind("injected", system="sms", operation="send")


# --- backoff ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [1, 2, 3, 5, 8, 12, 30])
def test_the_delay_lies_between_half_and_all_of_the_capped_exponential(attempts):
    ceiling = min(600.0, 1.0 * 2 ** (attempts - 1))
    rng = random.Random(attempts)
    for _ in range(200):
        assert ceiling / 2 <= backoff_delay(attempts, base_s=1.0, cap_s=600.0, rng=rng) <= ceiling
    assert backoff_delay(attempts, base_s=1.0, cap_s=600.0, rng=Extreme(high=False)) == ceiling / 2
    assert backoff_delay(attempts, base_s=1.0, cap_s=600.0, rng=Extreme(high=True)) == ceiling


def test_the_delay_doubles_with_each_failure_until_the_cap():
    highest = [backoff_delay(n, base_s=2.0, cap_s=60.0, rng=Extreme(high=True)) for n in range(1, 9)]
    assert highest == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    lowest = [backoff_delay(n, base_s=2.0, cap_s=60.0, rng=Extreme(high=False)) for n in range(1, 9)]
    assert lowest == [h / 2 for h in highest]


def test_no_attempt_yet_waits_as_the_first_failure():
    first = backoff_delay(1, base_s=1.0, cap_s=600.0, rng=Extreme(high=True))
    assert backoff_delay(0, base_s=1.0, cap_s=600.0, rng=Extreme(high=True)) == first


# --- what a failure leads to -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", [SystemUnavailable, SystemTimeout])
def test_a_retryable_error_is_retried_until_the_attempts_run_out(kind):
    exc = _error(kind)
    for attempts in range(1, 8):
        assert after_failure(exc, attempts=attempts, max_attempts=8, handler_timeout_s=24.0) == Retry(
            f"{kind.__name__}: {exc}"
        )
    assert after_failure(exc, attempts=8, max_attempts=8, handler_timeout_s=24.0) == GiveUp(
        f"gave up after 8 attempts: {kind.__name__}: {exc}", "exhausted"
    )


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (RequestRejected, "rejected"),
        (AdapterNotConfigured, "not_configured"),
        (MalformedResponse, "malformed"),
    ],
)
def test_a_refusal_that_sending_again_cannot_change_is_dead_at_once(kind, reason):
    exc = _error(kind)
    for attempts in (1, 8):  # not "exhausted" even on the last attempt: the error says why
        assert after_failure(exc, attempts=attempts, max_attempts=8, handler_timeout_s=24.0) == GiveUp(
            f"{kind.__name__}: {exc}", reason
        )


def test_an_overrun_or_a_crash_is_retried_like_an_outage():
    assert after_failure(TimeoutError(), attempts=1, max_attempts=3, handler_timeout_s=24.0) == Retry(
        "handler did not finish within 24.0s"
    )
    crash = KeyError("phone")
    assert after_failure(crash, attempts=2, max_attempts=3, handler_timeout_s=24.0) == Retry(
        "handler crashed: KeyError: 'phone'"
    )
    assert after_failure(crash, attempts=3, max_attempts=3, handler_timeout_s=24.0) == GiveUp(
        "gave up after 3 attempts: handler crashed: KeyError: 'phone'", "exhausted"
    )


def test_a_message_goes_to_no_handler_when_its_attempts_are_spent_or_its_topic_unknown():
    known = {"sms.send": None, "tax.book": None}
    common: dict[str, Any] = {"max_attempts": 8, "known_topics": known, "worker_id": "w1"}
    assert refusal_before_delivery(attempts=8, topic="sms.send", **common) is None
    # A lease that expired on the last allowed attempt: that attempt never finished.
    assert refusal_before_delivery(attempts=9, topic="sms.send", **common) == GiveUp(
        "gave up after 8 attempts; the last one never finished", "expired"
    )
    assert refusal_before_delivery(attempts=1, topic="bank.file", **common) == GiveUp(
        "no handler for topic 'bank.file' in worker w1; known topics: ['sms.send', 'tax.book']",
        "unknown_topic",
    )


# --- the worker acting on them, over a fake store ---------------------------------------------------


class FakeStore:
    """The outbox store's outcome writes; `holds_lease=False` answers as when another worker took over."""

    def __init__(self, *, holds_lease: bool = True) -> None:
        self.holds_lease = holds_lease
        self.writes: list[tuple[str, dict[str, Any]]] = []

    async def mark_delivered(self, claim: Claim, **fields: Any) -> bool:
        return self._write("delivered", fields)

    async def schedule_retry(self, claim: Claim, **fields: Any) -> bool:
        return self._write("retry", fields)

    async def mark_dead(self, claim: Claim, **fields: Any) -> bool:
        return self._write("dead", fields)

    def _write(self, outcome: str, fields: dict[str, Any]) -> bool:
        self.writes.append((outcome, fields))
        return self.holds_lease


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    fake = FakeStore()
    for name in ("mark_delivered", "schedule_retry", "mark_dead"):
        monkeypatch.setattr(worker_module.outbox, name, getattr(fake, name))
    return fake


@dataclass(frozen=True)
class UnitSms:
    phone: str
    params: dict[str, str]


def _sms_worker(sms: FakeSms, topic: str, *, max_attempts: int = 3) -> OutboxWorker:
    async def send(payload: UnitSms, key: str) -> dict[str, Any]:
        receipt = await sms.send(payload.phone, "property_alert", payload.params, key)
        return {"message_id": receipt.message_id}

    return OutboxWorker(
        handlers=HandlerTable(route(declare(topic, UnitSms), send)),
        worker_id="w1",
        max_attempts=max_attempts,
        backoff_base_s=10.0,
        backoff_cap_s=600.0,
        clock=FrozenClock(NOW),
        rng=random.Random(7),
    )


def _claim(topic: str, *, attempts: int = 1, phone: str = PHONE) -> Claim:
    params = {"unit_number": "U1", "time": "2025-03-01 16:00", "event": "查封登记", "hotline": "12345"}
    return Claim(
        id=1,
        topic=topic,
        payload={"phone": phone, "params": params},
        idempotency_key=f"{topic}:1",
        attempts=attempts,
        lease_owner="w1",
    )


def _counted(name: str, topic: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_total", {"topic": topic}) or 0.0


async def test_an_outage_schedules_a_retry_after_the_backoff(store):
    sms = FakeSms()
    sms.fail_next(error=SystemUnavailable)
    await _sms_worker(sms, "unit.outage")._deliver(_claim("unit.outage"))
    [(outcome, fields)] = store.writes
    assert outcome == "retry"
    assert fields["error"].startswith("SystemUnavailable: ")
    assert NOW + timedelta(seconds=5) <= fields["next_attempt_at"] <= NOW + timedelta(seconds=10)
    assert sms.applied() == 0
    assert _counted("outbox_retried", "unit.outage") == 1


async def test_a_refused_number_is_dead_at_once(store):
    sms = FakeSms()
    await _sms_worker(sms, "unit.refused")._deliver(_claim("unit.refused", phone="12345"))
    [(outcome, fields)] = store.writes
    assert outcome == "dead"
    assert fields["error"].startswith("RequestRejected: ")
    assert _counted("outbox_dead", "unit.refused") == 1


async def test_an_outage_on_the_last_attempt_is_dead(store):
    sms = FakeSms()
    sms.fail_next(error=SystemTimeout)
    await _sms_worker(sms, "unit.last", max_attempts=3)._deliver(_claim("unit.last", attempts=3))
    [(outcome, fields)] = store.writes
    assert outcome == "dead"
    assert fields["error"].startswith("gave up after 3 attempts: SystemTimeout: ")


async def test_a_delivery_stores_the_handlers_result(store):
    sms = FakeSms()
    await _sms_worker(sms, "unit.ok")._deliver(_claim("unit.ok"))
    assert store.writes == [
        ("delivered", {"result": {"message_id": sms.messages[0].message_id}, "clock": ANY})
    ]
    assert _counted("outbox_delivered", "unit.ok") == 1


@pytest.mark.parametrize(
    ("topic", "fault", "phone", "outcome"),
    [
        ("unit.lost.delivered", None, PHONE, "delivered"),
        ("unit.lost.retry", SystemUnavailable, PHONE, "retry"),
        ("unit.lost.dead", None, "12345", "dead"),
    ],
)
async def test_a_worker_that_lost_its_lease_records_and_counts_nothing_more(
    store, topic, fault, phone, outcome
):
    store.holds_lease = False
    sms = FakeSms()
    if fault is not None:
        sms.fail_next(error=fault)
    await _sms_worker(sms, topic)._deliver(_claim(topic, phone=phone))
    # One conditional write, refused; no second try under another outcome, nothing counted.
    assert [o for o, _ in store.writes] == [outcome]
    for counter in ("outbox_delivered", "outbox_retried", "outbox_dead"):
        assert _counted(counter, topic) == 0
