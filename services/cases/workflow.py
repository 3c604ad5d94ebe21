"""The case service: citizens open and follow transfer and cancellation cases, organisations (a
developer's staff or system) first registrations and cancellations, clerks move cases through the
states of 不动产登记暂行条例, the outbox reports the tax and utility sides.

Invariant: a move is one transaction holding the conditional state update (`WHERE state = <the
state read>`, so two clerks cannot both move a case), its `CaseEvent` (who, when, why), the
register change it makes (registering a transfer moves the right) and the notices to the parties;
caches are invalidated after that commit (`register_transaction`). Network calls (the civil
registry, the tax system, the utilities) never run inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from integrations.civil_registry.base import CivilRegistry
from integrations.utilities.router import UtilityRouter
from services.cases import cancellations, first, transfers
from services.cases.cancellations import CancellationApplication
from services.cases.clearance import CLEARED
from services.cases.first import FirstRegistrationApplication
from services.cases.kinds import CaseKind
from services.cases.models import UtilityTransferRecord
from services.cases.notices import party_person_ids, tell
from services.cases.transfers import TransferApplication
from services.cases.utilities import dead_message_ids
from services.cases.views import (
    CASE_STATE_NAMES,
    CaseSummary,
    CaseView,
    OrganisationRight,
    case_view,
    organisation_right,
    summary,
)
from services.clock import Clock
from services.errors import (
    InvalidCaseTransition,
    NotFound,
    ReasonRequired,
)
from services.kv import KeyValueStore
from services.outbox import redrive
from services.pii import PiiVault
from services.registry.changes import (
    CASE_KIND_NAMES,
    CASE_TRANSITIONS,
    advance_case,
    register_transaction,
)
from services.registry.models import CaseEvent, CaseParty, RegistrationCase, Right

REFUSALS = frozenset({"not_accepted", "refused"})
FINAL = frozenset({"not_accepted", "refused", "registered", "issued"})
# Moves the parties are also told of by SMS (the others only in the app).
_SMS_MOVES = frozenset({"accepted", "not_accepted", "refused", "registered"})


@dataclass(frozen=True)
class Actor:
    kind: str  # person | staff | bank | organisation | system
    id: str
    office_code: str | None = None


@dataclass(frozen=True)
class CasePolicy:
    hotline: str = "12345"
    utility_poll_s: float = 60.0  # first status check of a transfer a provider accepted


class CaseService:
    def __init__(
        self,
        *,
        kv: KeyValueStore,
        clock: Clock,
        vault: PiiVault,
        civil_registry: CivilRegistry,
        utilities: UtilityRouter,
        policy: CasePolicy | None = None,
    ) -> None:
        self.kv = kv
        self.clock = clock
        self.vault = vault
        self.civil_registry = civil_registry
        self.utilities = utilities
        self.policy = policy or CasePolicy()
        self.kinds: dict[str, CaseKind] = {}
        hotline = self.policy.hotline
        self.add_kind(
            transfers.TransferKind(router=utilities, kv=kv, clock=clock, hotline=hotline, vault=vault)
        )
        self.add_kind(first.FirstRegistrationKind(kv=kv, clock=clock, hotline=hotline))
        self.add_kind(cancellations.CancellationKind(kv=kv, clock=clock, hotline=hotline))

    def add_kind(self, kind: CaseKind) -> None:
        """Plug in a kind of registration (its move rules and what registering writes)."""
        if kind.name in self.kinds:
            raise ValueError(f"case kind {kind.name} is added twice")
        self.kinds[kind.name] = kind

    # --- citizens -------------------------------------------------------------------------------

    async def open_transfer(self, app: TransferApplication) -> CaseView:
        # The register first, the civil registry after: a caller who holds no such right learns
        # nothing about whether a buyer's ID number and name belong together. Checked again in
        # the transaction below, where it counts.
        await transfers.check_transferable(
            None,
            right_id=app.right_id,
            seller_person_id=app.seller_person_id,
            mortgage_handling=app.mortgage_handling,
            objection_consent_ref=app.objection_consent_ref,
        )
        await transfers.verify_buyers(self.civil_registry, app.buyers)
        async with register_transaction(kv=self.kv) as tx:
            case_id = await transfers.open_transfer(
                tx, app, vault=self.vault, kv=self.kv, clock=self.clock, hotline=self.policy.hotline
            )
        return await case_view(case_id, viewer_person_id=app.seller_person_id, full_names=False)

    async def confirm(self, *, case_id: int, person_id: int) -> CaseView:
        await self._party_case(case_id, person_id)
        async with register_transaction(kv=self.kv) as tx:
            await transfers.confirm(tx.conn, case_id=case_id, person_id=person_id, clock=self.clock)
        return await case_view(case_id, viewer_person_id=person_id, full_names=False)

    async def for_party(self, *, case_id: int, person_id: int, kind: str | None = None) -> CaseView:
        await self._party_case(case_id, person_id, kind)
        return await case_view(case_id, viewer_person_id=person_id, full_names=False)

    async def open_cancellation(self, app: CancellationApplication) -> CaseView:
        """A holder (person or organisation) applies to cancel a right; see cancellations.py."""
        async with register_transaction(kv=self.kv) as tx:
            case_id = await cancellations.open_cancellation(
                tx, app, kv=self.kv, clock=self.clock, hotline=self.policy.hotline
            )
        return await case_view(case_id, viewer_person_id=app.person_id, full_names=False)

    async def list_for_party(self, *, person_id: int, kind: str | None = None) -> list[CaseSummary]:
        ids = await CaseParty.filter(person_id=person_id).values_list("case_id", flat=True)
        query = (
            RegistrationCase.filter(id__in=list(ids)).select_related("unit").order_by("-applied_at", "-id")
        )
        if kind is not None:
            query = query.filter(kind=kind)
        return [summary(c) for c in await query]

    async def _party_case(self, case_id: int, person_id: int, kind: str | None = None) -> None:
        """404 for anyone who is not a party (or for a case of another kind than the route's): a
        case id reveals nothing."""
        parties = CaseParty.filter(case_id=case_id, person_id=person_id)
        if kind is not None:
            parties = parties.filter(case__kind=kind)
        if not await parties.exists():
            raise NotFound(case_id=case_id)

    # --- organisations (a developer's staff or its own system) -------------------------------------

    async def open_first_registration(self, app: FirstRegistrationApplication) -> CaseView:
        """A developer applies for the first registration of a building's units; see first.py."""
        first.validate(app)  # a malformed application touches nothing
        async with register_transaction(kv=self.kv) as tx:
            case_id = await first.open_first(
                tx, app, kv=self.kv, clock=self.clock, hotline=self.policy.hotline
            )
        return await case_view(case_id, viewer_person_id=None, full_names=False)

    async def list_for_organisation(
        self, *, organisation_id: int, kind: str | None = None
    ) -> list[CaseSummary]:
        ids = await CaseParty.filter(organisation_id=organisation_id).values_list("case_id", flat=True)
        query = (
            RegistrationCase.filter(id__in=list(ids)).select_related("unit").order_by("-applied_at", "-id")
        )
        if kind is not None:
            query = query.filter(kind=kind)
        return [summary(c) for c in await query]

    async def for_organisation(self, *, case_id: int, organisation_id: int) -> CaseView:
        """404 unless the organisation is a party."""
        if not await CaseParty.exists(case_id=case_id, organisation_id=organisation_id):
            raise NotFound(case_id=case_id)
        return await case_view(case_id, viewer_person_id=None, full_names=False)

    async def organisation_rights(
        self, *, organisation_id: int, include_historical: bool = False
    ) -> list[OrganisationRight]:
        """The rights the organisation holds (a developer's new units once registered)."""
        query = Right.filter(holders__organisation_id=organisation_id).select_related("unit").order_by("id")
        if not include_historical:
            query = query.filter(status="current")
        return [organisation_right(r) for r in await query.distinct()]

    # --- clerks ---------------------------------------------------------------------------------

    async def list_for_office(
        self, *, office_code: str, state: str | None, kind: str | None, limit: int, before_id: int | None
    ) -> list[CaseSummary]:
        query = RegistrationCase.filter(office_id=office_code).select_related("unit").order_by("-id")
        if state is not None:
            query = query.filter(state=state)
        if kind is not None:
            query = query.filter(kind=kind)
        if before_id is not None:
            query = query.filter(id__lt=before_id)
        return [summary(c) for c in await query.limit(limit)]

    async def for_clerk(self, *, case_id: int, office_code: str) -> CaseView:
        await self._office_case(case_id, office_code)
        return await case_view(case_id, viewer_person_id=None, full_names=True)

    async def _office_case(self, case_id: int, office_code: str | None) -> RegistrationCase:
        case = await RegistrationCase.get_or_none(id=case_id)
        if case is None or office_code is None or case.office_id != office_code:  # type: ignore[attr-defined]
            raise NotFound(case_id=case_id)
        return case

    async def move(self, *, case_id: int, to_state: str, actor: Actor, reason: str | None = None) -> CaseView:
        """A clerk's move of a case at their office (404 for a case of another office)."""
        case = await self._office_case(case_id, actor.office_code)
        reason = reason.strip() if reason else None
        if to_state in REFUSALS and not reason:
            raise ReasonRequired(field="reason")
        if to_state not in CASE_TRANSITIONS.get(case.state, frozenset()):
            raise InvalidCaseTransition(case_id=case_id, state=case.state, requested=to_state)
        now = self.clock.now()
        async with register_transaction(kv=self.kv) as tx:
            conn = tx.conn
            kind = self.kinds.get(case.kind)
            if kind is not None:
                await kind.check_move(tx, case, to_state)
            await advance_case(
                case_id=case_id,
                state=to_state,
                reason=reason,
                kv=self.kv,
                clock=self.clock,
                hotline=self.policy.hotline,
                tx=tx,
            )  # the conditional update: a concurrent move makes this raise and roll back
            updates: dict[str, Any] = {}
            if to_state in FINAL:
                updates["open_key"] = None
            if to_state == "registered" and kind is not None:
                updates["certificate_number"] = await kind.register(tx, case)
            if updates:
                await RegistrationCase.filter(id=case_id).using_db(conn).update(**updates)
            await CaseEvent.create(
                case_id=case_id,
                from_state=case.state,
                to_state=to_state,
                actor_kind=actor.kind,
                actor_id=actor.id,
                reason=reason,
                at=now,
                using_db=conn,
            )
            kind_name = CASE_KIND_NAMES.get(case.kind, case.kind)
            state_name = CASE_STATE_NAMES.get(to_state, to_state)
            await tell(
                conn,
                person_ids=await party_person_ids(conn, case_id),
                title=f"{kind_name}：{state_name}",
                body=f"案件{case.case_number}{state_name}" + (f"，理由：{reason}" if reason else "") + "。",
                data={"case_id": case_id, "case_number": case.case_number, "state": to_state},
                clock=self.clock,
                key=f"case:{case.case_number}:{to_state}",
                sms=(
                    ("case_update", {"kind": kind_name, "case_number": case.case_number, "event": state_name})
                    if to_state in _SMS_MOVES
                    else None
                ),
            )
        return await case_view(case_id, viewer_person_id=None, full_names=True)

    # --- administrators ---------------------------------------------------------------------------

    async def redrive_utility(self, *, case_id: int, kind: str) -> int:
        """Send a utility transfer the outbox gave up on again; returns the messages re-driven."""
        record = await UtilityTransferRecord.get_or_none(case_id=case_id, kind=kind)
        if record is None:
            raise NotFound(case_id=case_id, utility=kind)
        ids = await dead_message_ids(record)
        if not ids:
            return 0
        return await redrive(ids=ids, clock=self.clock)

    # --- the tax side (outbox) --------------------------------------------------------------------

    async def clearance_answered(
        self, *, case_number: str, ref: str, status: str, reason: str | None
    ) -> None:
        """The tax bureau answered a clearance request (first registration, cancellation): record it
        on the case and tell the person parties. Nothing else changes: a refused case simply cannot
        be accepted (services/cases/clearance.py)."""
        async with register_transaction(kv=self.kv) as tx:
            case = await RegistrationCase.get_or_none(case_number=case_number, using_db=tx.conn)
            if case is None or (case.tax_ref, case.tax_status) == (ref, status):
                return  # unknown, or a redelivery of the same answer
            details = {**dict(case.details or {}), "tax_reason": reason}
            changed = (
                await RegistrationCase.filter(id=case.id, tax_status=case.tax_status)
                .using_db(tx.conn)
                .update(tax_ref=ref, tax_status=status, details=details)
            )
            if not changed:
                return
            kind_name = CASE_KIND_NAMES.get(case.kind, case.kind)
            cleared = status == CLEARED
            await tell(
                tx.conn,
                person_ids=await party_person_ids(tx.conn, case.id),
                title=f"{kind_name}：税务已确认完税" if cleared else f"{kind_name}：税务未确认完税",
                body=f"案件{case_number}的完税确认（{ref}）："
                + ("已完税。" if cleared else f"未通过，原因：{reason or '未说明'}。"),
                data={"case_id": case.id, "case_number": case_number, "tax_status": status},
                clock=self.clock,
                key=f"case:{case_number}:tax:{status}",
                sms=None
                if cleared
                else (
                    "case_update",
                    {"kind": kind_name, "case_number": case_number, "event": "税务未确认完税"},
                ),
            )

    async def declaration_filed(self, *, case_number: str, ref: str, status: str) -> None:
        """The tax system answered the declaration: record it and tell the parties."""
        async with register_transaction(kv=self.kv) as tx:
            case = await RegistrationCase.get_or_none(case_number=case_number, using_db=tx.conn)
            if case is None:
                return
            if (case.tax_ref, case.tax_status) == (ref, status):
                return  # a redelivery of the same answer
            changed = (
                await RegistrationCase.filter(id=case.id, tax_status=case.tax_status)
                .using_db(tx.conn)
                .update(tax_ref=ref, tax_status=status)
            )
            if changed:
                await tell(
                    tx.conn,
                    person_ids=await party_person_ids(tx.conn, case.id),
                    title="转移登记：税务申报已受理" if status != "rejected" else "转移登记：税务申报未通过",
                    body=f"案件{case_number}的税务申报（{ref}）状态：{status}。",
                    data={"case_id": case.id, "case_number": case_number, "tax_status": status},
                    clock=self.clock,
                    key=f"case:{case_number}:tax:{status}",
                )
