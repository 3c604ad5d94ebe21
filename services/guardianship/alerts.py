"""Telling a minor's other guardians that their ward's property data was read, without flooding them.

Invariant: per (other guardian, ward) at most one in-app message per alert period (consecutive
`alert_period_s`-second periods from each Shanghai midnight; default one Shanghai calendar day)
and at most one SMS per Shanghai day. Each is decided by a conditional update of that guardian's
own link row, in the transaction that writes the message or the outbox row:
`last_alert_period <> <this period>` and `last_alert_sms_on < <today>`. Of concurrent reads exactly
one update matches: on PostgreSQL the second waits for the first's row lock and re-checks the
condition against the committed row; on SQLite writers are serialised. A read that loses still
proceeds (and is in the access log); only the alert is coalesced. The period is recorded in the
message's data, and the SMS's outbox idempotency key names the day, so a replay cannot send twice.

Neither the message nor the SMS carries any part of the ward's ID number: the ward is named by
masked name (or not at all when the minor is not in the register), the other guardian knows
which ward by their own link (`data.ward_id`).
"""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from services.clock import SHANGHAI, Clock, local_today
from services.guardianship.models import ACTIVE, GuardianshipLink
from services.identifiers import mask_name
from services.messages import GUARDIAN_QUERY, SMS_SEND, post_message, sms_to_person
from services.outbox import enqueue
from services.registry.models import Person

QUERY_ALERT_TEMPLATE = "guardian_query_alert"


def alert_period(now: datetime, period_s: int) -> str:
    """The alert period `now` falls in: consecutive `period_s`-second periods counted from each
    Shanghai midnight (a period that does not divide a day ends early at midnight)."""
    local = now.astimezone(SHANGHAI)
    since_midnight = local.hour * 3600 + local.minute * 60 + local.second
    return f"{local.date().isoformat()}/{since_midnight // period_s}"


def ward_label(ward_name: str | None) -> str:
    """How a message to a guardian names the ward: masked name, never any part of the ID number."""
    return mask_name(ward_name) if ward_name else "（未登记姓名）"


async def notify_other_guardians(
    *,
    reader: Person,
    ward_index: str,
    ward_person_id: int | None,
    what: str,
    clock: Clock,
    hotline: str,
    alert_period_s: int,
) -> int:
    """Tell every other actively linked guardian of the ward, coalesced per (guardian, ward):
    one in-app message per alert period and one SMS per Shanghai day. Each rule is a conditional
    update of that guardian's link (`last_alert_period <> this period`, `last_alert_sms_on <
    today`) in the message's transaction, so of concurrent reads exactly one wins each, on
    PostgreSQL (the row lock re-checks the condition) and on SQLite (writes are serialised).
    Returns how many guardians were told now."""
    today = local_today(clock)
    others = [
        link
        for link in await GuardianshipLink.filter(ward_id_number_index=ward_index, status=ACTIVE)
        .exclude(guardian_id=reader.id)
        .order_by("id")
        if today < link.access_ends_on
    ]
    if not others:
        return 0
    now = clock.now()
    period = alert_period(now, alert_period_s)
    when = now.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    reader_name = mask_name(reader.name)
    ward_person = (
        await Person.get_or_none(id=ward_person_id).only("id", "name") if ward_person_id is not None else None
    )
    ward = ward_label(ward_person.name if ward_person else None)
    told = 0
    async with in_transaction() as conn:
        for other in others:
            other_guardian_id = other.guardian_id  # type: ignore[attr-defined]
            won_message = (
                await GuardianshipLink.filter(
                    Q(id=other.id) & (Q(last_alert_period__isnull=True) | Q(last_alert_period__not=period))
                )
                .using_db(conn)
                .update(last_alert_period=period)
            )
            if won_message == 1:
                told += 1
                await post_message(
                    person_id=other_guardian_id,
                    kind=GUARDIAN_QUERY,
                    title="监护人查询提醒",
                    body=(
                        f"您监护的未成年人{ward}的不动产信息于{when}被其另一监护人{reader_name}查询。"
                        "同一时段内的后续查询不再另行提醒。"
                    ),
                    data={"ward_id": other.id, "reader": reader_name, "what": what, "period": period},
                    clock=clock,
                    connection=conn,
                )
            won_sms = (
                await GuardianshipLink.filter(
                    Q(id=other.id) & (Q(last_alert_sms_on__isnull=True) | Q(last_alert_sms_on__lt=today))
                )
                .using_db(conn)
                .update(last_alert_sms_on=today)
            )
            if won_sms == 1:
                # A person reference, not a phone: the handler looks the number up when it sends
                # (and skips a person without one), so the outbox holds no phone numbers.
                await enqueue(
                    topic=SMS_SEND,
                    payload=sms_to_person(
                        person_id=other_guardian_id,
                        template=QUERY_ALERT_TEMPLATE,
                        params={"ward": ward, "time": when, "guardian": reader_name, "hotline": hotline},
                    ),
                    idempotency_key=f"guardian-query-alert:{other.id}:{today.isoformat()}",
                    connection=conn,
                    clock=clock,
                )
    return told
