"""The tax side of first and cancellation registration: a tax clearance (完税确认) asked of the
tax bureau through the outbox when the case is opened, and checked when a clerk accepts it.

Invariant: a case is accepted only once the bureau answered `cleared`. The request is written in
the transaction that opens the case (its idempotency key is the case number, so a redelivery asks
once); the answer is recorded by `CaseService.clearance_answered` on `tax_ref` / `tax_status`. A
refusal changes nothing else: the clerk cannot accept (TAX_CLEARANCE_REFUSED), so no unit, right
or certificate number is written for a case the bureau refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from tortoise.backends.base.client import BaseDBAsyncClient

from services.cases.topics import TAX_CLEARANCE, ClearanceRequest
from services.clock import Clock
from services.errors import TaxClearancePending, TaxClearanceRefused
from services.outbox import enqueue
from services.registry.models import RegistrationCase

CLEARED = "cleared"
REFUSED = "refused"


async def request_clearance(
    conn: BaseDBAsyncClient,
    *,
    case_number: str,
    taxpayer_ref: str,
    unit_numbers: Sequence[str],
    clock: Clock,
) -> None:
    await enqueue(
        topic=TAX_CLEARANCE,
        payload=ClearanceRequest(
            case_ref=case_number, taxpayer_ref=taxpayer_ref, unit_numbers=tuple(unit_numbers)
        ),
        idempotency_key=f"tax.clearance:{case_number}",
        connection=conn,
        clock=clock,
    )


def require_cleared(case: RegistrationCase) -> None:
    """Raise unless the bureau answered that the taxes are settled."""
    if case.tax_status is None:
        raise TaxClearancePending(case_id=case.id)
    if case.tax_status != CLEARED:
        raise TaxClearanceRefused(case_id=case.id, tax_ref=case.tax_ref)
