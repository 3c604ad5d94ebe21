"""The utility account transfers of a registered transfer, as a saga of independent steps.

Registering a transfer writes one `UtilityTransferRecord` and one `utilities.transfer_account`
outbox message per utility, in the registering transaction (services/cases/workflow.py). From
there each utility goes its own way; one refusing does not hold up the others:

* `deliver_transfer` (the outbox handler): counts the attempt on the row first, then sends the
  request with the row's idempotency key. A provider that deduplicates by that key makes a resend
  harmless. For one that does not (`dedupes = false` in config/providers.toml), a second attempt
  first asks the provider what it holds for our key (`find_transfer`) and only sends when it holds
  nothing: the answer to the first attempt may have been lost after the provider applied it, or our
  worker died between sending and recording. The account number is looked up at the provider when
  the citizen gave none.
* A permanent refusal (arrears, an unknown account) ends that utility as `refused` with the
  provider's reason; the message is delivered (nothing to retry) and the parties are told.
  Transient failures raise, and the outbox retries with capped, jittered backoff; when it gives up
  the message is dead and the row shows `needs_attention` until an administrator re-drives it.
* A transfer the provider accepted but has not finished is `sent`; `check_transfer` (outbox topic
  `utilities.check_transfer`) asks again with backoff until it is completed (`confirmed`, with the
  final meter reading) or rejected (`refused`).

States only move forward (`_FORWARD`): a late or repeated answer never takes a confirmed or
refused transfer back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from integrations.errors import IntegrationError, RequestRejected
from integrations.utilities.base import TransferStatus, UtilityProvider, UtilityTransfer
from integrations.utilities.router import UtilityRouter
from services.cases.models import (
    CONFIRMED,
    NEEDS_ATTENTION,
    PENDING,
    REFUSED,
    SENT,
    UtilityTransferRecord,
)
from services.cases.notices import party_person_ids, tell
from services.cases.topics import UTILITY_CHECK, UtilityAccountTransfer, UtilityTransferCheck
from services.clock import Clock
from services.errors import NotFound
from services.outbox import enqueue
from services.outbox.models import OutboxMessage
from services.registry.models import RegistrationCase

UTILITY_NAMES = {"water": "供水", "electricity": "供电", "gas": "燃气", "cable_tv": "有线电视"}
_FORWARD = {
    PENDING: {SENT, CONFIRMED, REFUSED},
    SENT: {CONFIRMED, REFUSED},
    CONFIRMED: set(),
    REFUSED: set(),
}
NO_ACCOUNT = "NO_ACCOUNT"


class TransferNotFinished(IntegrationError):
    """The provider is still working on it: ask again later (the outbox's backoff)."""

    retryable = True


def check_key(transfer_key: str) -> str:
    return f"{transfer_key}:check"


@dataclass(frozen=True)
class UtilityOutcome:
    state: str
    reason: str | None = None


async def _record(key: str) -> UtilityTransferRecord:
    record = await UtilityTransferRecord.get_or_none(idempotency_key=key)
    if record is None:
        raise NotFound(utility_transfer=key)
    return record


def _reading(transfer: UtilityTransfer) -> dict[str, Any] | None:
    reading = transfer.final_reading
    if reading is None:
        return None
    return {"value": reading.value, "unit": reading.unit, "read_at": reading.read_at.isoformat()}


async def deliver_transfer(
    payload: UtilityAccountTransfer, key: str, *, router: UtilityRouter, clock: Clock, poll_s: float
) -> dict[str, Any]:
    """The `utilities.transfer_account` handler. `key` is the row's idempotency key."""
    record = await _record(key)
    if record.state in (CONFIRMED, REFUSED):
        return {"state": record.state}  # done before; a redelivery changes nothing
    provider = router.provider(payload.provider)
    # Count the attempt before sending: if we die after the provider applied it, the next
    # attempt knows it may have been applied.
    await UtilityTransferRecord.filter(id=record.id).update(
        attempts=F("attempts") + 1, updated_at=clock.now()
    )
    transfer: UtilityTransfer | None = None
    if record.attempts > 0 and not provider.dedupes:
        transfer = await provider.find_transfer(key)
    if transfer is None:
        account_no = payload.account_no or record.account_no
        if not account_no:
            found = await provider.lookup_account(payload.unit_number)
            if found is None:
                return await _settle(
                    record, REFUSED, clock=clock, reason="供应商处查无该房屋的户号 (no account for this unit)"
                )
            account_no = found
            await UtilityTransferRecord.filter(id=record.id).update(account_no=account_no)
            record.account_no = account_no
        try:
            transfer = await provider.transfer_account(
                key,
                account_no,
                payload.from_holder_ref,
                payload.to_holder_ref,
                payload.unit_number,
                payload.address,
                payload.effective_date,
            )
        except RequestRejected as refusal:
            if refusal.retryable:
                raise
            return await _settle(record, REFUSED, clock=clock, reason=_refusal_text(refusal))
    return await _after_answer(record, transfer, provider, clock=clock, poll_s=poll_s)


async def check_transfer(
    payload: UtilityTransferCheck, key: str, *, router: UtilityRouter, clock: Clock, poll_s: float
) -> dict[str, Any]:
    """The `utilities.check_transfer` handler: how does the transfer the provider accepted stand?"""
    record = await _record(payload.transfer_key)
    if record.state in (CONFIRMED, REFUSED):
        return {"state": record.state}
    if record.provider_ref is None:  # pragma: no cover - a check is only enqueued with a reference
        raise NotFound(provider_ref=None)
    provider = router.provider(record.provider)
    transfer = await provider.get_transfer(record.provider_ref)
    if transfer.status in (TransferStatus.SUBMITTED, TransferStatus.IN_PROGRESS):
        raise TransferNotFinished(
            f"{record.provider} still {transfer.status.value}",
            system=provider.system,
            operation="get_transfer",
        )
    return await _after_answer(record, transfer, provider, clock=clock, poll_s=poll_s, follow_up=False)


async def _after_answer(
    record: UtilityTransferRecord,
    transfer: UtilityTransfer,
    provider: UtilityProvider,
    *,
    clock: Clock,
    poll_s: float,
    follow_up: bool = True,
) -> dict[str, Any]:
    if transfer.status is TransferStatus.COMPLETED:
        return await _settle(
            record, CONFIRMED, clock=clock, provider_ref=transfer.ref, reading=_reading(transfer)
        )
    if transfer.status is TransferStatus.REJECTED:
        return await _settle(
            record, REFUSED, clock=clock, provider_ref=transfer.ref, reason=transfer.reason or "供应商退回"
        )
    return await _settle(
        record, SENT, clock=clock, provider_ref=transfer.ref, follow_up=follow_up, poll_s=poll_s
    )


def _refusal_text(refusal: RequestRejected) -> str:
    return f"{refusal.code}: {refusal}"[:200] if getattr(refusal, "code", None) else str(refusal)[:200]


async def _settle(
    record: UtilityTransferRecord,
    state: str,
    *,
    clock: Clock,
    reason: str | None = None,
    provider_ref: str | None = None,
    reading: dict[str, Any] | None = None,
    follow_up: bool = False,
    poll_s: float = 0.0,
) -> dict[str, Any]:
    """Move the row forward, tell the parties, and (for `sent`) schedule the status check; one
    transaction. A move the row has already made (or passed) changes nothing."""
    allowed_from = [s for s, targets in _FORWARD.items() if state in targets]
    now = clock.now()
    async with in_transaction() as conn:
        updates: dict[str, Any] = {"state": state, "updated_at": now}
        if reason is not None:
            updates["reason"] = reason[:200]
        if provider_ref is not None:
            updates["provider_ref"] = provider_ref
        if reading is not None:
            updates["final_reading"] = reading
        changed = (
            await UtilityTransferRecord.filter(id=record.id, state__in=allowed_from)
            .using_db(conn)
            .update(**updates)
        )
        if changed == 1:
            await _notify(conn, record, state, reason=reason, clock=clock)
            if follow_up:
                await enqueue(
                    topic=UTILITY_CHECK,
                    payload=UtilityTransferCheck(transfer_key=record.idempotency_key),
                    idempotency_key=check_key(record.idempotency_key),
                    connection=conn,
                    clock=clock,
                    not_before=_later(now, poll_s),
                )
    return {"state": state, "provider_ref": provider_ref, "reason": reason}


def _later(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)


async def _notify(
    conn: BaseDBAsyncClient, record: UtilityTransferRecord, state: str, *, reason: str | None, clock: Clock
) -> None:
    case = await RegistrationCase.get(id=record.case_id, using_db=conn)  # type: ignore[attr-defined]
    name = UTILITY_NAMES.get(record.kind, record.kind)
    texts = {
        SENT: f"{name}过户已提交供应商办理",
        CONFIRMED: f"{name}过户已办结",
        REFUSED: f"{name}过户未能办理：{reason or ''}",
    }
    sms: tuple[str, dict[str, Any]] | None = None
    if state == CONFIRMED:
        sms = (
            "utility_transfer_done",
            {"utility": name, "case_number": case.case_number, "account": record.account_no},
        )
    elif state == REFUSED:
        sms = (
            "utility_transfer_refused",
            {
                "utility": name,
                "case_number": case.case_number,
                "reason": (reason or "")[:40],
                "provider": record.provider,
            },
        )
    await tell(
        conn,
        person_ids=await party_person_ids(conn, case.id),
        title=f"联办过户：{texts[state]}",
        body=f"案件{case.case_number}：{texts[state]}。",
        data={"case_id": case.id, "case_number": case.case_number, "utility": record.kind, "state": state},
        clock=clock,
        key=f"utility:{record.idempotency_key}:{state}",
        sms=sms,
    )


async def dead_keys(keys: list[str]) -> set[str]:
    """Which of these outbox keys (a transfer's and its check's) the outbox has given up on."""
    if not keys:
        return set()
    rows = await OutboxMessage.filter(idempotency_key__in=keys, status="dead").values_list(
        "idempotency_key", flat=True
    )
    return {str(k) for k in rows}


def shown_state(record: UtilityTransferRecord, dead: set[str]) -> str:
    """What the citizen sees: the row's state, or `needs_attention` while its message is dead."""
    if record.state in (PENDING, SENT) and (
        record.idempotency_key in dead or check_key(record.idempotency_key) in dead
    ):
        return NEEDS_ATTENTION
    return record.state


async def dead_message_ids(record: UtilityTransferRecord) -> list[int]:
    rows = await OutboxMessage.filter(
        idempotency_key__in=[record.idempotency_key, check_key(record.idempotency_key)], status="dead"
    ).values_list("id", flat=True)
    return [int(i) for i in rows]  # type: ignore[call-overload]
