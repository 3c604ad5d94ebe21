"""A filing's status moves, and the bank hears of each through the outbox.

Invariant: a filing's status changes only by a conditional update on the status read (`WHERE
status = <expected>`), in the transaction of the case move or of the submission that causes it,
together with the outbox message of its callback (`banks.notify_filing`, key
`bank-filing:<ref>:<status>`); so the bank hears of every status once its change has committed,
at least once (the outbox retries with backoff), deduplicates by that key, and hears of one
filing's statuses in the order they happened (each message names the previous one as `after`).
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from services.clock import Clock
from services.errors import RegisterStateConflict
from services.filings.models import MortgageFiling
from services.filings.topics import BANK_NOTIFY_FILING, FilingNotice
from services.outbox import enqueue
from services.outbox.models import OutboxMessage


def filing_ref(filing_id: int) -> str:
    return f"MF-{filing_id}"


async def notify_bank(
    conn: BaseDBAsyncClient, *, bank_code: str, filing_id: int, status: str, clock: Clock, **extra: Any
) -> None:
    ref = filing_ref(filing_id)
    # In order per filing: each callback waits for the filing's previous one to be delivered.
    previous = (
        await OutboxMessage.filter(idempotency_key__startswith=f"bank-filing:{ref}:")
        .using_db(conn)
        .order_by("-id")
        .first()
        .values_list("id", flat=True)
    )
    detail = "; ".join(f"{k}={v}" for k, v in extra.items() if v is not None and k != "certificate_number")
    await enqueue(
        topic=BANK_NOTIFY_FILING,
        payload=FilingNotice(
            bank_code=bank_code,
            filing_ref=ref,
            status=status,
            certificate_number=extra.get("certificate_number"),
            detail=detail,
        ),
        idempotency_key=f"bank-filing:{ref}:{status}",
        connection=conn,
        clock=clock,
        after=int(previous) if previous is not None else None,  # type: ignore[call-overload]
    )


async def advance_filing(
    conn: BaseDBAsyncClient,
    *,
    case_id: int,
    expected: tuple[str, ...],
    status: str,
    clock: Clock,
    certificate_number: str | None = None,
    reason: str | None = None,
    mortgage_id: int | None = None,
) -> MortgageFiling | None:
    """Move the filing of a case (None: the case is not a bank's filing) and tell the bank."""
    filing = await MortgageFiling.get_or_none(case_id=case_id, using_db=conn).select_related("bank")
    if filing is None:
        return None
    updates: dict[str, Any] = {"status": status, "updated_at": clock.now()}
    if certificate_number is not None:
        updates["certificate_number"] = certificate_number
    if reason is not None:
        updates["reason"] = reason
    if mortgage_id is not None:
        updates["mortgage_id"] = mortgage_id
    changed = await MortgageFiling.filter(id=filing.id, status__in=expected).using_db(conn).update(**updates)
    if changed != 1:
        raise RegisterStateConflict(filing_id=filing.id, status=filing.status)
    await notify_bank(
        conn,
        bank_code=filing.bank.code,
        filing_id=filing.id,
        status=status,
        clock=clock,
        certificate_number=certificate_number,
        reason=reason,
    )
    return filing
