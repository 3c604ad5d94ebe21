"""Bank mortgage filings as registration cases (issue 14): kinds `mortgage` (抵押权首次登记),
`mortgage_change` (变更) and `mortgage_cancel` (注销). A filing without warnings is accepted and
registered in the transaction that receives it; one with warnings is accepted and waits for a
clerk, who moves it with the clerk routes like any case (`MortgageFilingKind` is its `CaseKind`).

Invariant: the case, its parties and events, the register change and the filing's status (with
the bank's callback, services/filings/progress.py) commit together. The filing's rules (what is an
error, what a warning) are in services/filings/rules.py; this module only writes what they allowed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from services.cases.numbers import case_number, certificate_number
from services.clock import SHANGHAI, Clock
from services.errors import InvalidCaseTransition, NotFound
from services.filings import advance_filing
from services.filings.models import ACCEPTED, CLERK_REVIEW, REGISTERED, REJECTED, MortgageFiling
from services.kv import KeyValueStore
from services.registry.changes import (
    RegisterTransaction,
    cancel_mortgage,
    change_mortgage,
    register_mortgage,
    register_transaction,
    start_case,
)
from services.registry.models import CaseEvent, CaseParty, Office, RegistrationCase

KIND_OF_TYPE = {"create": "mortgage", "change": "mortgage_change", "cancel": "mortgage_cancel"}


@dataclass(frozen=True)
class FilingCase:
    """What the case of an accepted filing is made of (no ID numbers: persons by id)."""

    filing_id: int
    type: str
    bank_code: str
    bank_organisation_id: int
    unit_id: int
    right_id: int
    district_code: str
    mortgagor_ids: tuple[int, ...]
    details: dict[str, Any] = field(default_factory=dict)


async def _office(conn: BaseDBAsyncClient, district_code: str) -> str | None:
    code = (
        await Office.filter(district_code=district_code)
        .using_db(conn)
        .order_by("code")
        .first()
        .values_list("code", flat=True)
    )
    return str(code) if code is not None else None


async def _quiet_move(
    conn: BaseDBAsyncClient, case: RegistrationCase, to_state: str, *, actor: str, clock: Clock
) -> None:
    """A move made by the system in the filing's own transaction: conditional on the state, with
    its event; the holders were alerted when the case opened and are alerted by the register
    change, so these intermediate moves send nothing."""
    changed = (
        await RegistrationCase.filter(id=case.id, state=case.state)
        .using_db(conn)
        .update(state=to_state, updated_at=clock.now())
    )
    if changed != 1:
        raise InvalidCaseTransition(case_id=case.id, state=case.state, requested=to_state)
    await CaseEvent.create(
        case_id=case.id,
        from_state=case.state,
        to_state=to_state,
        actor_kind="system",
        actor_id=actor,
        at=clock.now(),
        using_db=conn,
    )
    case.state = to_state


async def accept_filing(
    prepare: Callable[[BaseDBAsyncClient], Awaitable[FilingCase]],
    *,
    kv: KeyValueStore,
    clock: Clock,
    hotline: str,
    review: bool,
) -> RegistrationCase:
    """One transaction: `prepare` (the filing's own rows: its quota count, the filing) and then
    申请 and 受理 at once: the case (its number, parties, events), accepted at `clock.now()`, the
    filing's priority time. Without `review` it is registered too (`register_filing`)."""
    async with register_transaction(kv=kv) as tx:
        filing = await prepare(tx.conn)
        return await _open_filing_case(tx, filing, kv=kv, clock=clock, hotline=hotline, review=review)


async def _open_filing_case(
    tx: RegisterTransaction,
    filing: FilingCase,
    *,
    kv: KeyValueStore,
    clock: Clock,
    hotline: str,
    review: bool,
) -> RegistrationCase:
    conn = tx.conn
    now = clock.now()
    number = await case_number(conn, year=now.astimezone(SHANGHAI).year, district_code=filing.district_code)
    case = await start_case(
        unit_id=filing.unit_id,
        kind=KIND_OF_TYPE[filing.type],
        case_number=number,
        right_id=filing.right_id,
        kv=kv,
        clock=clock,
        hotline=hotline,
        tx=tx,
        office_id=await _office(conn, filing.district_code),
        details={**filing.details, "filing_id": filing.filing_id, "bank_code": filing.bank_code},
    )
    await CaseParty.create(
        case_id=case.id, role="mortgagee", organisation_id=filing.bank_organisation_id, using_db=conn
    )
    for person_id in filing.mortgagor_ids:
        await CaseParty.create(
            case_id=case.id, role="mortgagor", person_id=person_id, confirmed_at=now, using_db=conn
        )
    await CaseEvent.create(
        case_id=case.id,
        from_state=None,
        to_state="applied",
        actor_kind="bank",
        actor_id=filing.bank_code,
        at=now,
        using_db=conn,
    )
    await _quiet_move(conn, case, "accepted", actor=f"bank-filing:{filing.filing_id}", clock=clock)
    await MortgageFiling.filter(id=filing.filing_id).using_db(conn).update(case_id=case.id)
    if review:
        await advance_filing(conn, case_id=case.id, expected=(ACCEPTED,), status=CLERK_REVIEW, clock=clock)
        return case
    await _quiet_move(conn, case, "reviewing", actor=f"bank-filing:{filing.filing_id}", clock=clock)
    cert = await register_filing(tx, case, kv=kv, clock=clock, hotline=hotline)
    await _quiet_move(conn, case, "registered", actor=f"bank-filing:{filing.filing_id}", clock=clock)
    await RegistrationCase.filter(id=case.id).using_db(conn).update(certificate_number=cert, open_key=None)
    case.certificate_number = cert
    return case


async def register_filing(
    tx: RegisterTransaction, case: RegistrationCase, *, kv: KeyValueStore, clock: Clock, hotline: str
) -> str | None:
    """登簿: register, change or end the mortgage the filing asks for; the filing is `registered`
    with the 不动产登记证明 number (none for a cancellation)."""
    conn = tx.conn
    filing = await MortgageFiling.get_or_none(case_id=case.id, using_db=conn).select_related("bank", "right")
    if filing is None or filing.right is None:
        raise NotFound(case_id=case.id)
    now = clock.now()
    year = now.astimezone(SHANGHAI).year
    district = filing.right.district_code
    common: dict[str, Any] = {"kv": kv, "clock": clock, "hotline": hotline, "tx": tx}
    cert: str | None = None
    if filing.type == "cancel":
        mortgage = await cancel_mortgage(mortgage_id=filing.mortgage_id, **common)  # type: ignore[attr-defined]
    else:
        cert = await certificate_number(conn, year=year, district_code=district, kind="registration")
        terms = _terms(filing)
        if filing.type == "create":
            mortgage = await register_mortgage(
                right_id=filing.right_id,  # type: ignore[attr-defined]
                mortgagee_id=filing.bank.organisation_id,  # type: ignore[attr-defined]
                certificate_number=cert,
                contract_number=filing.contract_number,
                borrower_name=filing.borrower_name,
                priority_at=filing.priority_at,
                **terms,
                **common,
            )
        else:
            mortgage = await change_mortgage(
                mortgage_id=filing.mortgage_id,  # type: ignore[attr-defined]
                certificate_number=cert,
                contract_number=filing.contract_number,
                **terms,
                **common,
            )
    await advance_filing(
        conn,
        case_id=case.id,
        expected=(ACCEPTED, CLERK_REVIEW),
        status=REGISTERED,
        certificate_number=cert,
        mortgage_id=mortgage.id,
        clock=clock,
    )
    return cert


def _terms(filing: MortgageFiling) -> dict[str, Any]:
    amount: int | None = filing.amount_fen
    start: date | None = filing.term_start
    end: date | None = filing.term_end
    if amount is None or start is None or end is None:  # rules.py requires them for these types
        raise NotFound(filing_id=filing.id, missing="amount_fen, term")
    return {"amount_fen": amount, "term_start": start, "term_end": end}


class MortgageFilingKind:
    """The clerk's side of a filing with warnings: registering registers the mortgage; refusing
    (不予受理 or 不予登记) rejects the filing with the clerk's reason. Both tell the bank."""

    def __init__(self, name: str, *, kv: KeyValueStore, clock: Clock, hotline: str) -> None:
        self.name = name
        self._kv = kv
        self._clock = clock
        self._hotline = hotline

    async def check_move(self, tx: RegisterTransaction, case: RegistrationCase, to_state: str) -> None:
        # The hook runs before the move is written and does not see the clerk's reason: the bank
        # reads it from the filing (its case's reason); the callback names the refusal.
        if to_state in ("not_accepted", "refused"):
            await advance_filing(
                tx.conn,
                case_id=case.id,
                expected=(ACCEPTED, CLERK_REVIEW),
                status=REJECTED,
                reason=f"case_{to_state}",
                clock=self._clock,
            )

    async def register(self, tx: RegisterTransaction, case: RegistrationCase) -> str | None:
        return await register_filing(tx, case, kv=self._kv, clock=self._clock, hotline=self._hotline)


def filing_kinds(*, kv: KeyValueStore, clock: Clock, hotline: str) -> list[MortgageFilingKind]:
    return [MortgageFilingKind(name, kv=kv, clock=clock, hotline=hotline) for name in KIND_OF_TYPE.values()]
