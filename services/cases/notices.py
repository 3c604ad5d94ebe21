"""What the parties of a case are told: an in-app message for every change they care about, and an
SMS for the ones that need action or end something (acceptance, refusal, registration, a utility
done or refused). Written in the transaction of the change, so a change and its notice commit
together; the SMS goes through the outbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from services.clock import Clock
from services.messages import SMS_SEND, post_message, sms_to_person
from services.outbox import enqueue
from services.registry.models import CaseParty, Person

CASE_UPDATE = "case_update"  # InboxMessage.kind


async def party_person_ids(conn: BaseDBAsyncClient, case_id: int) -> list[int]:
    ids = (
        await CaseParty.filter(case_id=case_id, person_id__isnull=False)
        .using_db(conn)
        .order_by("person_id")
        .distinct()
        .values_list("person_id", flat=True)
    )
    return [int(i) for i in ids]  # type: ignore[call-overload]


async def tell(
    conn: BaseDBAsyncClient,
    *,
    person_ids: Iterable[int],
    title: str,
    body: str,
    data: Mapping[str, Any],
    clock: Clock,
    key: str,
    sms: tuple[str, Mapping[str, Any]] | None = None,
) -> None:
    """An in-app message to each person; with `sms` (template, params) also an SMS to those with a
    phone. `key` names the event; with the person it makes the SMS's idempotency key."""
    ids = sorted(set(person_ids))
    reachable = set()
    if sms is not None and ids:
        rows = (
            await Person.filter(id__in=ids, phone_index__isnull=False)
            .using_db(conn)
            .values_list("id", flat=True)
        )
        reachable = {int(i) for i in rows}  # type: ignore[call-overload]
    for person_id in ids:
        await post_message(
            person_id=person_id,
            kind=CASE_UPDATE,
            title=title,
            body=body,
            data=dict(data),
            clock=clock,
            connection=conn,
        )
        if sms is not None and person_id in reachable:
            template, params = sms
            await enqueue(
                topic=SMS_SEND,
                payload=sms_to_person(person_id=person_id, template=template, params=params),
                idempotency_key=f"sms.{template}:{key}:{person_id}",
                connection=conn,
                clock=clock,
            )
