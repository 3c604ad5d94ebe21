"""Cancellation registration (注销登记): a holder, citizen or organisation, applies to end a right
whose object no longer exists (demolished, lost) or that they give up, with supporting references
(a demolition notice, a court ruling, a declaration). Every holder of the right is a party and is
told of every move; registering ends the right (`end_right`: it becomes historical and shows so
in 我的不动产).

Checks, each with its own code, when the holder applies and again when a clerk accepts (the
register may change meanwhile): the applicant holds the current right (RIGHT_NOT_HELD, 404 for a
right that does not exist too), it is not seized (RIGHT_SEIZED), an active mortgage has the
mortgagee's consent (MORTGAGEE_CONSENT_REQUIRED; the mortgage is then cancelled with the right),
no other case on the right is open (CASE_IN_PROGRESS; `open_key` keeps one open cancellation per
right whatever the interleaving), and the tax bureau's clearance (TAX_CLEARANCE_PENDING,
TAX_CLEARANCE_REFUSED) before acceptance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from services.cases import numbers
from services.cases.clearance import request_clearance, require_cleared
from services.cases.notices import tell
from services.cases.opening import open_case
from services.cases.transfers import holder_ref, office_for
from services.clock import SHANGHAI, Clock
from services.errors import (
    CaseInProgress,
    MortgageeConsentRequired,
    RightNotHeld,
    RightSeized,
    ValidationFailed,
)
from services.registry.changes import RegisterTransaction, end_right
from services.registry.models import (
    CaseEvent,
    CaseParty,
    Encumbrance,
    Mortgage,
    Organisation,
    RegistrationCase,
    Right,
    RightHolder,
)

CANCELLATION = "cancellation"
HOLDER = "holder"
REASONS = {"demolished": "灭失（拆除）", "lost": "灭失", "given_up": "放弃"}


@dataclass(frozen=True)
class CancellationApplication:
    """Exactly one of `person_id` (a citizen holder) and `organisation_id` (an organisation
    holder, through its staff or its own system, `actor_id`)."""

    right_id: int
    reason: str  # a key of REASONS
    supporting_refs: tuple[str, ...]
    person_id: int | None = None
    organisation_id: int | None = None
    actor_id: str = ""
    mortgagee_consent_ref: str | None = None
    office_code: str | None = None


def open_key(right_id: int) -> str:
    return f"{CANCELLATION}:{right_id}"


def _validate(app: CancellationApplication) -> None:
    if (app.person_id is None) == (app.organisation_id is None):
        raise ValueError("a cancellation is applied for by one person or one organisation")
    if app.reason not in REASONS:
        raise ValidationFailed("注销原因不合法", "Unknown reason", field="reason")
    if not app.supporting_refs or any(not r.strip() for r in app.supporting_refs):
        raise ValidationFailed(
            "请提供证明材料编号", "Give the references of the supporting documents", field="supporting_refs"
        )


async def check_cancellable(
    conn: BaseDBAsyncClient | None,
    *,
    right_id: int,
    person_id: int | None,
    organisation_id: int | None,
    mortgagee_consent_ref: str | None,
    case_id: int | None = None,
) -> Right:
    """Raises the first check that fails, each with its own code. `case_id`: the case being
    accepted, which does not count as another open case."""
    right = await Right.filter(id=right_id).select_related("unit").using_db(conn).first()
    holder = (
        RightHolder.filter(right_id=right_id, person_id=person_id)
        if person_id is not None
        else RightHolder.filter(right_id=right_id, organisation_id=organisation_id)
    )
    if right is None or right.status != "current" or not await holder.using_db(conn).exists():
        raise RightNotHeld(right_id=right_id)
    if await Encumbrance.exists(right_id=right_id, kind="seizure", status="active", using_db=conn):
        raise RightSeized(
            "该不动产已被查封，不能办理注销登记",
            "The property is seized and cannot be cancelled",
            right_id=right_id,
        )
    if not mortgagee_consent_ref and await Mortgage.exists(right_id=right_id, status="active", using_db=conn):
        raise MortgageeConsentRequired(right_id=right_id, field="mortgagee_consent_ref")
    open_cases = RegistrationCase.filter(right_id=right_id, open_key__isnull=False).using_db(conn)
    if case_id is not None:
        open_cases = open_cases.exclude(id=case_id)
    if await open_cases.exists():
        raise CaseInProgress(right_id=right_id)
    return right


async def open_cancellation(
    tx: RegisterTransaction, app: CancellationApplication, *, kv: Any, clock: Clock, hotline: str
) -> int:
    """Write the case, every holder as a party, its first event and the tax clearance request, and
    tell the other holders; returns the case id."""
    _validate(app)
    conn = tx.conn
    right = await check_cancellable(
        conn,
        right_id=app.right_id,
        person_id=app.person_id,
        organisation_id=app.organisation_id,
        mortgagee_consent_ref=app.mortgagee_consent_ref,
    )
    holders = await RightHolder.filter(right_id=right.id).using_db(conn).order_by("id")
    now = clock.now()
    district = right.unit.district_code
    office = await office_for(conn, app.office_code, district)
    number = await numbers.case_number(conn, year=now.astimezone(SHANGHAI).year, district_code=district)
    details: dict[str, Any] = {
        "reason": app.reason,
        "supporting_refs": [r.strip() for r in app.supporting_refs],
        "mortgagee_consent_ref": app.mortgagee_consent_ref,
        "applicant": {"person_id": app.person_id, "organisation_id": app.organisation_id},
    }
    case = await open_case(
        tx,
        in_progress=CaseInProgress(right_id=right.id),
        unit_id=right.unit.id,
        kind=CANCELLATION,
        case_number=number,
        right_id=right.id,
        kv=kv,
        clock=clock,
        hotline=hotline,
        office_id=office,
        details=details,
        open_key=open_key(right.id),
    )

    def applied(h: RightHolder) -> bool:
        if app.person_id is not None:
            return h.person_id == app.person_id  # type: ignore[attr-defined]
        return h.organisation_id == app.organisation_id  # type: ignore[attr-defined]

    await CaseParty.bulk_create(
        [
            CaseParty(
                case_id=case.id,
                role=HOLDER,
                person_id=h.person_id,  # type: ignore[attr-defined]
                organisation_id=h.organisation_id,  # type: ignore[attr-defined]
                share=h.share,
                confirmed_at=now if applied(h) else None,
            )
            for h in holders
        ],
        using_db=conn,
    )
    await CaseEvent.create(
        case_id=case.id,
        from_state=None,
        to_state="applied",
        actor_kind="person" if app.person_id is not None else "organisation",
        actor_id=str(app.person_id) if app.person_id is not None else app.actor_id,
        at=now,
        using_db=conn,
    )
    if app.person_id is not None:
        taxpayer = holder_ref(app.person_id)
    else:
        taxpayer = (await Organisation.get(id=app.organisation_id, using_db=conn)).credit_code
    await request_clearance(
        conn, case_number=number, taxpayer_ref=taxpayer, unit_numbers=[right.unit.unit_number], clock=clock
    )
    person_ids = [int(h.person_id) for h in holders if h.person_id is not None]  # type: ignore[attr-defined]
    await tell(
        conn,
        person_ids=[p for p in person_ids if p != app.person_id],
        title="注销登记：已申请",
        body=f"{right.unit.address}的注销登记（案件{number}）已由一名权利人申请。如有异议，请致电{hotline}。",
        data={"case_id": case.id, "case_number": number, "state": "applied"},
        clock=clock,
        key=f"case:{number}:applied",
        sms=("case_update", {"kind": "注销登记", "case_number": number, "event": "已申请"}),
    )
    if app.person_id is not None:
        await tell(
            conn,
            person_ids=[app.person_id],
            title="注销登记：已申请",
            body=f"{right.unit.address}的注销登记（案件{number}）已申请，待税务确认和登记机构受理。",
            data={"case_id": case.id, "case_number": number, "state": "applied"},
            clock=clock,
            key=f"case:{number}:applied-self",
        )
    return int(case.id)


class CancellationKind:
    """The cancellation's rules for the case workflow (services/cases/kinds.py)."""

    name = CANCELLATION

    def __init__(self, *, kv: Any, clock: Clock, hotline: str) -> None:
        self.kv = kv
        self.clock = clock
        self.hotline = hotline

    async def check_move(self, tx: RegisterTransaction, case: RegistrationCase, to_state: str) -> None:
        if to_state != "accepted":
            return
        details = dict(case.details or {})
        applicant = details.get("applicant") or {}
        await check_cancellable(
            tx.conn,
            right_id=int(case.right_id),  # type: ignore[attr-defined]
            person_id=applicant.get("person_id"),
            organisation_id=applicant.get("organisation_id"),
            mortgagee_consent_ref=details.get("mortgagee_consent_ref"),
            case_id=case.id,
        )
        require_cleared(case)

    async def register(self, tx: RegisterTransaction, case: RegistrationCase) -> str | None:
        """登簿: the right ends (with its mortgages, which the mortgagee consented to cancel); the
        holders are alerted by `end_right` and told of the move by the workflow. No certificate."""
        await end_right(
            right_id=int(case.right_id),  # type: ignore[attr-defined]
            cancel_mortgages=bool(dict(case.details or {}).get("mortgagee_consent_ref")),
            kv=self.kv,
            clock=self.clock,
            hotline=self.hotline,
            tx=tx,
        )
        return None
