"""Outbox topics and payloads without a database: the JSON form of every payload, the refusals
(unknown, missing or mistyped fields; naive datetimes; a name declared twice), rows written in
today's dict form still decoding, and the registry of topics enqueue accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from api.outbox_handlers import build_handlers
from services.appointments.topics import CENTRE_PUSH, CentrePush
from services.cases.topics import (
    TAX_DECLARE_TRANSFER,
    UTILITY_TRANSFER,
    TransferDeclaration,
    UtilityAccountTransfer,
)
from services.certificates.topics import ELICENSE_STORE
from services.filings.topics import BANK_NOTIFY_FILING, FilingNotice
from services.identity.topics import OTP_DELIVER, OtpDelivery
from services.messages.topics import SMS_SEND, SmsPayload
from services.outbox import HandlerTable, PayloadError, Topic, TopicWithoutHandler, declare, route
from services.outbox.handlers import handlers_registered, require_handler
from services.outbox.topics import declared_topics, decode, encode

SHANGHAI = timezone(timedelta(hours=8))
T = datetime(2026, 3, 2, 9, 30, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Item:
    sku: str
    qty: int


@dataclass(frozen=True)
class Everything:
    text: str
    count: int
    ratio: float
    flag: bool
    when: datetime
    day: date
    refs: tuple[str, ...]
    items: list[Item]
    labels: dict[str, str]
    maybe: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


EVERYTHING = declare("unit_test.everything", Everything)


def test_every_field_type_round_trips_as_plain_json() -> None:
    payload = Everything(
        text="不动产",
        count=3,
        ratio=0.5,
        flag=True,
        when=T,
        day=date(2026, 4, 1),
        refs=("P1", "P2"),
        items=[Item("a", 1)],
        labels={"k": "v"},
    )
    stored = encode(payload)
    assert stored == {
        "text": "不动产",
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "when": "2026-03-02T09:30:00+08:00",
        "day": "2026-04-01",
        "refs": ["P1", "P2"],
        "items": [{"sku": "a", "qty": 1}],
        "labels": {"k": "v"},
        "maybe": None,
        "extra": {},
    }
    assert decode(EVERYTHING, stored) == payload
    assert decode(EVERYTHING, {**stored, "ratio": 1}).ratio == 1.0  # JSON has one number type


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"surprise": 1}, "unit_test.everything: unknown field(s) surprise"),
        ({"count": True}, "unit_test.everything.count: expected int"),
        ({"count": "3"}, "unit_test.everything.count: expected int"),
        ({"when": "2026-03-02T09:30:00"}, "unit_test.everything.when: a datetime without a timezone"),
        ({"when": "yesterday"}, "unit_test.everything.when: not an ISO 8601 datetime"),
        ({"day": "2026-04-01T00:00:00+08:00"}, "unit_test.everything.day: not an ISO 8601 date"),
        ({"refs": "P1"}, "unit_test.everything.refs: expected"),
        ({"items": [{"sku": "a"}]}, "missing field(s) qty"),
    ],
)
def test_json_that_is_not_the_payload_fails_naming_the_field(change: dict[str, Any], error: str) -> None:
    stored = encode(Everything("t", 1, 1.0, False, T, date(2026, 4, 1), (), [], {}))
    with pytest.raises(PayloadError) as raised:
        decode(EVERYTHING, {**stored, **change})
    assert error in str(raised.value)


def test_missing_fields_without_a_default_fail_and_defaulted_ones_may_be_absent() -> None:
    with pytest.raises(PayloadError, match="not a JSON object but list"):
        decode(OTP_DELIVER, [1])
    with pytest.raises(PayloadError, match=r"missing field\(s\) code_enc, requested_at"):
        decode(OTP_DELIVER, {"phone_enc": "x"})
    assert decode(BANK_NOTIFY_FILING, {"bank_code": "B", "filing_ref": "F", "status": "ok"}) == FilingNotice(
        "B", "F", "ok", None, ""
    )


def test_encode_checks_the_values_of_the_dataclass() -> None:
    with pytest.raises(PayloadError, match="timezone-aware datetime"):
        encode(OtpDelivery("p", "c", datetime(2026, 3, 2, 9, 30)))
    with pytest.raises(PayloadError, match="seller_refs"):
        encode(TransferDeclaration("C1", "U1", "P1", ("P2",), 100))  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="a dataclass instance"):
        encode({"n": 1})


def test_rows_in_todays_dict_form_still_decode() -> None:
    """Pending rows written before topics had dataclasses: the same keys, the same values."""
    assert decode(OTP_DELIVER, {"phone_enc": "p", "code_enc": "c", "requested_at": T.isoformat()}) == (
        OtpDelivery("p", "c", T)
    )
    params = {"unit_number": "U1", "event": "查封登记"}
    assert decode(SMS_SEND, {"person_id": 7, "template": "property_alert", "params": params}) == SmsPayload(
        template="property_alert", params=params, person_id=7
    )
    assert decode(SMS_SEND, {"phone_enc": "e", "template": "login_code", "params": {}}).phone_enc == "e"
    # Delivered or dead rows that migration 0005 masked are not sendable: re-driven, they fail clearly.
    with pytest.raises(PayloadError, match="phone_masked"):
        decode(SMS_SEND, {"phone_masked": "139****0007", "template": "t", "params": {}})
    with pytest.raises(PayloadError, match="exactly one"):
        decode(SMS_SEND, {"template": "t", "params": {}})
    push = {
        "ref": "A1",
        "office_code": "310101",
        "service": "transfer",
        "slot_start": T.isoformat(),
        "slot_end": (T + timedelta(minutes=30)).isoformat(),
        "applicant_ref": "P1",
    }
    assert decode(CENTRE_PUSH, push) == CentrePush(
        "A1", "310101", "transfer", T, T + timedelta(minutes=30), "P1", with_tax=False
    )
    declaration = {
        "case_ref": "C",
        "unit_number": "U",
        "seller_refs": ["S"],
        "buyer_refs": ["B"],
        "price_fen": 1,
    }
    assert decode(TAX_DECLARE_TRANSFER, declaration).seller_refs == ("S",)
    transfer = decode(
        UTILITY_TRANSFER,
        {
            "provider": "water.shanghai-chengtou",
            "account_no": "1",
            "from_holder_ref": "P1",
            "to_holder_ref": "P2",
            "unit_number": "U",
            "address": "A",
            "effective_date": "2026-04-01",
        },
    )
    assert isinstance(transfer, UtilityAccountTransfer) and transfer.effective_date == date(2026, 4, 1)


def test_declaring_is_refused_for_a_taken_name_or_a_payload_without_a_json_form() -> None:
    assert declare("unit_test.everything", Everything) is EVERYTHING  # a module imported again
    with pytest.raises(ValueError, match="already declared"):
        declare("sms.send", Everything)

    @dataclass
    class Mutable:
        n: int

    @dataclass(frozen=True)
    class Odd:
        n: int | str

    @dataclass(frozen=True)
    class Blob:
        data: bytes

    with pytest.raises(TypeError, match="frozen"):
        declare("unit_test.mutable", Mutable)
    with pytest.raises(TypeError, match=r"only `X \| None`"):
        declare("unit_test.odd", Odd)
    with pytest.raises(TypeError, match="no JSON form"):
        declare("unit_test.blob", Blob)
    with pytest.raises(TypeError, match="must be a dataclass"):
        declare("unit_test.dict", dict)
    with pytest.raises(ValueError, match=r"1\.\.64"):
        declare("x" * 65, Item)
    assert "unit_test.mutable" not in declared_topics()


async def _handle(payload: Item, key: str) -> dict[str, Any] | None:
    return None


def test_a_handler_table_holds_declared_topics_once() -> None:
    item = declare("unit_test.item", Item)
    with pytest.raises(ValueError, match="not declared"):
        HandlerTable(route(Topic("unit_test.lookalike", Item), _handle))
    with pytest.raises(ValueError, match="two handlers"):
        HandlerTable(route(item, _handle), route(item, _handle))
    table = HandlerTable(route(item, _handle))
    assert item in table and table.names == {"unit_test.item"} and len(table) == 1


def test_enqueue_accepts_only_registered_topics_and_tests_restore_the_registry() -> None:
    item = declare("unit_test.registered", Item)
    with pytest.raises(TopicWithoutHandler, match=r"unit_test\.registered"):
        require_handler(item)
    with handlers_registered(HandlerTable(route(item, _handle))):
        require_handler(item)
        with pytest.raises(TopicWithoutHandler):  # the same name with another payload type
            require_handler(Topic("unit_test.registered", Everything))
    with pytest.raises(TopicWithoutHandler):
        require_handler(item)


def test_the_application_table_handles_every_declared_topic() -> None:
    """Every topic a domain declares has a handler in the composition root's table."""
    table = build_handlers(
        SimpleNamespace(),  # type: ignore[arg-type]  # handlers reach the integrations only when called
        vault=SimpleNamespace(),  # type: ignore[arg-type]
        auth=SimpleNamespace(deliver_sms_code=_handle),  # type: ignore[arg-type]
        certificates=SimpleNamespace(),  # type: ignore[arg-type]
        appointments=SimpleNamespace(),  # type: ignore[arg-type]
        cases=SimpleNamespace(),  # type: ignore[arg-type]
    )
    application = {
        name for name, t in declared_topics().items() if t.payload.__module__.startswith("services.")
    }
    assert application == table.names
    with handlers_registered(table):
        require_handler(SMS_SEND)
        require_handler(ELICENSE_STORE)


def test_times_keep_their_offset() -> None:
    utc = decode(OTP_DELIVER, encode(OtpDelivery("p", "c", T.astimezone(UTC))))
    assert utc.requested_at == T and utc.requested_at.utcoffset() == timedelta(0)
