"""Transfer cases (二手房转移登记 with 水电气/有线电视联办过户): the seller opens, every other party
confirms from their own account, the tax declaration is filed through the outbox, a clerk accepts,
reviews and registers; registering moves the right and starts the utility transfers.

The acceptance checks (`check_transferable`) run when the seller opens the case, so the citizen
learns at once what stands in the way, and again when a clerk accepts it, because the register
may have changed meanwhile (a seizure lands the day after the application). Each has its own
error code (services/errors.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from integrations.civil_registry.base import PERSON_NOT_FOUND, CivilRegistry
from integrations.errors import RequestRejected
from integrations.utilities.base import UtilityKind
from integrations.utilities.router import UtilityRouter
from services.cases import numbers
from services.cases.models import PENDING, UtilityTransferRecord
from services.cases.notices import party_person_ids, tell
from services.cases.opening import open_case
from services.cases.topics import (
    TAX_DECLARE_TRANSFER,
    UTILITY_TRANSFER,
    TransferDeclaration,
    UtilityAccountTransfer,
)
from services.clock import SHANGHAI, Clock
from services.errors import (
    BuyerIdentityMismatch,
    BuyerIsSeller,
    BuyerNotInCivilRegistry,
    MortgageNotResolved,
    NotAParty,
    NotFound,
    ObjectionPending,
    PartiesNotConfirmed,
    RightNotHeld,
    RightSeized,
    TaxDeclarationPending,
    TaxDeclarationRejected,
    TransferInProgress,
    ValidationFailed,
)
from services.outbox import enqueue
from services.pii import PiiVault
from services.registry.changes import RegisterTransaction, cancel_mortgage, register_transfer
from services.registry.models import (
    CaseEvent,
    CaseParty,
    Encumbrance,
    Mortgage,
    Office,
    Person,
    RegistrationCase,
    Right,
    RightHolder,
)

TRANSFER = "transfer"
SELLER = "seller"
BUYER = "buyer"
CANCEL_IN_CASE = "cancel_in_case"  # the mortgage is cancelled in this case, at registration
BANK_CONSENT = "bank_consent"  # the bank consents; the mortgage follows the right (民法典 第406条)
OPEN_STATES = ("applied", "accepted", "reviewing")


@dataclass(frozen=True)
class BuyerInput:
    id_number: str = field(repr=False)
    name: str
    share: Decimal


@dataclass(frozen=True)
class UtilityChoice:
    kind: str
    move: bool = True
    account_no: str | None = None


@dataclass(frozen=True)
class TransferApplication:
    seller_person_id: int
    right_id: int
    buyers: tuple[BuyerInput, ...]
    price_fen: int
    contract_number: str
    utilities: tuple[UtilityChoice, ...] = ()  # a kind not listed moves, its account looked up
    mortgage_handling: str | None = None  # CANCEL_IN_CASE | BANK_CONSENT, when mortgaged
    bank_consent_ref: str | None = None
    objection_consent_ref: str | None = None
    office_code: str | None = None


def open_key(right_id: int) -> str:
    return f"{TRANSFER}:{right_id}"


def holder_ref(person_id: int) -> str:
    """How external systems see a person: our row id, never an ID number."""
    return f"P{person_id:010d}"


def _validate(app: TransferApplication) -> None:
    if not app.buyers:
        raise ValidationFailed("至少需要一名买受人", "Name at least one buyer", field="buyers")
    try:
        shares = [Decimal(b.share) for b in app.buyers]
    except (InvalidOperation, ValueError):
        raise ValidationFailed("份额格式不正确", "A share is not a number", field="buyers") from None
    if any(s <= 0 for s in shares) or sum(shares) != 1:
        raise ValidationFailed(
            "买受人份额须为正数且合计为1", "Buyers' shares must be positive and add up to 1", field="buyers"
        )
    if len({b.id_number for b in app.buyers}) != len(app.buyers):
        raise ValidationFailed("买受人不能重复", "A buyer is named twice", field="buyers")
    kinds = [u.kind for u in app.utilities]
    if len(set(kinds)) != len(kinds):
        raise ValidationFailed("同一类公用事业只能填写一次", "A utility is listed twice", field="utilities")
    if app.mortgage_handling == BANK_CONSENT and not app.bank_consent_ref:
        raise ValidationFailed(
            "选择抵押权人同意转让时须填写同意书编号",
            "With bank consent, give the consent's reference",
            field="bank_consent_ref",
        )


async def verify_buyers(civil_registry: CivilRegistry, buyers: Sequence[BuyerInput]) -> None:
    """The civil registry confirms each buyer: the ID number exists and the name matches."""
    for index, buyer in enumerate(buyers):
        try:
            record = await civil_registry.get_person(buyer.id_number)
        except RequestRejected as refusal:
            if refusal.code == PERSON_NOT_FOUND:
                raise BuyerNotInCivilRegistry(field=f"buyers[{index}]") from None
            raise
        if record.name != buyer.name.strip() or not record.alive:
            raise BuyerIdentityMismatch(field=f"buyers[{index}]")


async def check_transferable(
    conn: BaseDBAsyncClient | None,
    *,
    right_id: int,
    seller_person_id: int,
    mortgage_handling: str | None,
    objection_consent_ref: str | None,
) -> Right:
    """The seller holds the current right; it is not seized; objections and mortgages are absent or
    dealt with. Raises the first that fails, each with its own code. `conn` None: outside a
    transaction, as a first check before calling other systems."""
    right = await Right.filter(id=right_id).select_related("unit").using_db(conn).first()
    holds = right is not None and await RightHolder.exists(
        right_id=right_id, person_id=seller_person_id, using_db=conn
    )
    if right is None or not holds or right.status != "current":
        raise RightNotHeld(right_id=right_id)
    active = (
        await Encumbrance.filter(right_id=right_id, status="active")
        .using_db(conn)
        .values_list("kind", flat=True)
    )
    if "seizure" in active:
        raise RightSeized(right_id=right_id)
    if "objection" in active and not objection_consent_ref:
        raise ObjectionPending(right_id=right_id)
    if await Mortgage.exists(right_id=right_id, status="active", using_db=conn) and mortgage_handling not in (
        CANCEL_IN_CASE,
        BANK_CONSENT,
    ):
        raise MortgageNotResolved(right_id=right_id)
    return right


async def _person_for(conn: BaseDBAsyncClient, buyer: BuyerInput, vault: PiiVault) -> int:
    """The buyer's person row; one is made (ID number encrypted, blind-indexed) for a buyer the
    register does not know yet. Two cases naming the same new buyer at once: the unique index
    keeps one row, the loser reads it."""
    index = vault.blind_index(buyer.id_number)
    person = await Person.get_or_none(id_number_index=index, using_db=conn)
    if person is not None:
        return int(person.id)
    try:
        async with conn._in_transaction() as savepoint:  # a savepoint: the race loser carries on
            person = await Person.create(
                name=buyer.name.strip(),
                id_number_enc=vault.encrypt(buyer.id_number),
                id_number_index=index,
                using_db=savepoint,
            )
    except IntegrityError:
        person = await Person.get(id_number_index=index, using_db=conn)
    return int(person.id)


async def office_for(conn: BaseDBAsyncClient, office_code: str | None, district_code: str) -> str:
    if office_code is not None:
        if not await Office.exists(code=office_code, using_db=conn):
            raise NotFound(office_code=office_code)
        return office_code
    code = (
        await Office.filter(district_code=district_code)
        .using_db(conn)
        .order_by("code")
        .first()
        .values_list("code", flat=True)
    )
    if code is None:
        raise NotFound(office_for_district=district_code)
    return str(code)


async def open_transfer(
    tx: RegisterTransaction,
    app: TransferApplication,
    *,
    vault: PiiVault,
    kv: Any,
    clock: Clock,
    hotline: str,
) -> int:
    """Write the case, its parties, its first event and the tax declaration; returns the case id.
    The caller verified the buyers with the civil registry before opening the transaction."""
    _validate(app)
    conn = tx.conn
    right = await check_transferable(
        conn,
        right_id=app.right_id,
        seller_person_id=app.seller_person_id,
        mortgage_handling=app.mortgage_handling,
        objection_consent_ref=app.objection_consent_ref,
    )
    holders = (
        await RightHolder.filter(right_id=right.id, person_id__isnull=False).using_db(conn).order_by("id")
    )
    seller_ids = [int(h.person_id) for h in holders]  # type: ignore[attr-defined]
    buyer_ids = [await _person_for(conn, b, vault) for b in app.buyers]
    if set(buyer_ids) & set(seller_ids):
        raise BuyerIsSeller(field="buyers")
    now = clock.now()
    office = await office_for(conn, app.office_code, right.unit.district_code)
    number = await numbers.case_number(
        conn, year=now.astimezone(SHANGHAI).year, district_code=right.unit.district_code
    )
    utilities = {u.kind: u for u in app.utilities}
    details: dict[str, Any] = {
        "price_fen": app.price_fen,
        "contract_number": app.contract_number,
        "utilities": {
            kind.value: {
                "move": utilities.get(kind.value, UtilityChoice(kind.value)).move,
                "account_no": utilities.get(kind.value, UtilityChoice(kind.value)).account_no,
            }
            for kind in UtilityKind
        },
        "mortgage_handling": app.mortgage_handling,
        "bank_consent_ref": app.bank_consent_ref,
        "objection_consent_ref": app.objection_consent_ref,
    }
    case = await open_case(
        tx,
        in_progress=TransferInProgress(right_id=right.id),
        unit_id=right.unit.id,
        kind=TRANSFER,
        case_number=number,
        right_id=right.id,
        kv=kv,
        clock=clock,
        hotline=hotline,
        office_id=office,
        details=details,
        open_key=open_key(right.id),
    )
    await CaseParty.bulk_create(
        [
            CaseParty(
                case_id=case.id,
                role=SELLER,
                person_id=pid,
                confirmed_at=now if pid == app.seller_person_id else None,
            )
            for pid in seller_ids
        ]
        + [
            CaseParty(case_id=case.id, role=BUYER, person_id=pid, share=Decimal(b.share))
            for pid, b in zip(buyer_ids, app.buyers, strict=True)
        ],
        using_db=conn,
    )
    await CaseEvent.create(
        case_id=case.id,
        from_state=None,
        to_state="applied",
        actor_kind="person",
        actor_id=str(app.seller_person_id),
        at=now,
        using_db=conn,
    )
    await enqueue(
        topic=TAX_DECLARE_TRANSFER,
        payload=TransferDeclaration(
            case_ref=number,
            unit_number=right.unit.unit_number,
            seller_refs=tuple(holder_ref(p) for p in seller_ids),
            buyer_refs=tuple(holder_ref(p) for p in buyer_ids),
            price_fen=app.price_fen,
        ),
        idempotency_key=f"tax.declare:{number}",
        connection=conn,
        clock=clock,
    )
    others = [p for p in seller_ids + buyer_ids if p != app.seller_person_id]
    await tell(
        conn,
        person_ids=others,
        title="转移登记：请确认",
        body=f"{right.unit.address}的转移登记（案件{number}）已申请，请在一网通办“我的办件”中确认。",
        data={"case_id": case.id, "case_number": number, "state": "applied", "action": "confirm"},
        clock=clock,
        key=f"case:{number}:applied",
        sms=("case_update", {"kind": "转移登记", "case_number": number, "event": "待您确认"}),
    )
    await tell(
        conn,
        person_ids=[app.seller_person_id],
        title="转移登记：已申请",
        body=f"{right.unit.address}的转移登记（案件{number}）已申请，待其他当事人确认和税务申报。",
        data={"case_id": case.id, "case_number": number, "state": "applied"},
        clock=clock,
        key=f"case:{number}:applied-self",
    )
    return int(case.id)


async def confirm(conn: BaseDBAsyncClient, *, case_id: int, person_id: int, clock: Clock) -> None:
    """A party confirms the case from their own account (a buyer, or a co-holder selling too)."""
    case = await RegistrationCase.get_or_none(id=case_id, using_db=conn)
    if case is None or case.state not in OPEN_STATES:
        raise NotAParty(case_id=case_id)
    changed = (
        await CaseParty.filter(case_id=case_id, person_id=person_id, confirmed_at__isnull=True)
        .using_db(conn)
        .update(confirmed_at=clock.now())
    )
    if changed == 0:
        raise NotAParty(case_id=case_id)
    await tell(
        conn,
        person_ids=await party_person_ids(conn, case_id),
        title="转移登记：当事人已确认",
        body=f"案件{case.case_number}：一名当事人已在其账户中确认。",
        data={"case_id": case_id, "case_number": case.case_number, "event": "confirmed"},
        clock=clock,
        key=f"case:{case.case_number}:confirmed:{person_id}",
    )


async def unconfirmed(conn: BaseDBAsyncClient, case_id: int) -> int:
    return await CaseParty.filter(case_id=case_id, confirmed_at__isnull=True).using_db(conn).count()


async def register(
    tx: RegisterTransaction,
    case: RegistrationCase,
    *,
    router: UtilityRouter,
    kv: Any,
    clock: Clock,
    hotline: str,
    vault: PiiVault,
) -> str:
    """登簿 for a transfer: cancel the mortgages the case cancels, move the right to the buyers under
    a new certificate number, and write one utility transfer (row and outbox message) per utility
    moved. All in the case's transaction. Returns the certificate number."""
    conn = tx.conn
    details = dict(case.details or {})
    right_id = int(case.right_id)  # type: ignore[attr-defined]
    if details.get("mortgage_handling") == CANCEL_IN_CASE:
        for mortgage_id in (
            await Mortgage.filter(right_id=right_id, status="active")
            .using_db(conn)
            .values_list("id", flat=True)
        ):
            await cancel_mortgage(mortgage_id=int(mortgage_id), kv=kv, clock=clock, hotline=hotline, tx=tx)  # type: ignore[call-overload]
    buyers = await CaseParty.filter(case_id=case.id, role=BUYER).using_db(conn).order_by("id")
    sellers = await CaseParty.filter(case_id=case.id, role=SELLER).using_db(conn).order_by("id")
    right = await Right.get(id=right_id, using_db=conn).select_related("unit")
    now = clock.now()
    certificate = await numbers.certificate_number(
        conn, year=now.astimezone(SHANGHAI).year, district_code=right.district_code, kind="right"
    )
    await register_transfer(
        right_id=right_id,
        new_holders=[(int(b.person_id), b.share or 0) for b in buyers],  # type: ignore[attr-defined]
        certificate_number=certificate,
        kv=kv,
        clock=clock,
        hotline=hotline,
        tx=tx,
        vault=vault,  # a buyer's index from before a profile switch still revokes (revocation.py)
    )
    await _start_utilities(conn, case, right, sellers, buyers, router=router, clock=clock, now=now)
    return certificate


async def _start_utilities(
    conn: BaseDBAsyncClient,
    case: RegistrationCase,
    right: Right,
    sellers: Sequence[CaseParty],
    buyers: Sequence[CaseParty],
    *,
    router: UtilityRouter,
    clock: Clock,
    now: datetime,
) -> None:
    choices = dict(case.details or {}).get("utilities", {})
    unit = right.unit
    effective = now.astimezone(SHANGHAI).date()
    # A provider's account has one holder: the buyer with the largest share (the first named on a tie).
    account_holder = max(buyers, key=lambda b: (b.share or 0, -b.id))
    for kind in UtilityKind:
        choice = choices.get(kind.value, {})
        if not choice.get("move", True):
            continue
        provider = router.provider_for(kind, right.district_code)
        key = f"utility:{case.case_number}:{kind.value}"
        account_no = choice.get("account_no") or ""
        await UtilityTransferRecord.create(
            case_id=case.id,
            kind=kind.value,
            provider=provider.name,
            account_no=account_no,
            state=PENDING,
            idempotency_key=key,
            created_at=now,
            updated_at=now,
            using_db=conn,
        )
        await enqueue(
            topic=UTILITY_TRANSFER,
            payload=UtilityAccountTransfer(
                provider=provider.name,
                account_no=account_no,
                from_holder_ref=holder_ref(int(sellers[0].person_id)),  # type: ignore[attr-defined]
                to_holder_ref=holder_ref(int(account_holder.person_id)),  # type: ignore[attr-defined]
                unit_number=unit.unit_number,
                address=unit.address,
                effective_date=effective,
            ),
            idempotency_key=key,
            connection=conn,
            clock=clock,
        )


class TransferKind:
    """The transfer's rules for the case workflow (services/cases/kinds.py)."""

    name = TRANSFER

    def __init__(
        self, *, router: UtilityRouter, kv: Any, clock: Clock, hotline: str, vault: PiiVault
    ) -> None:
        self.router = router
        self.vault = vault
        self.kv = kv
        self.clock = clock
        self.hotline = hotline

    async def check_move(self, tx: RegisterTransaction, case: RegistrationCase, to_state: str) -> None:
        if to_state == "accepted":
            details = dict(case.details or {})
            seller = (
                await CaseParty.filter(case_id=case.id, role=SELLER).using_db(tx.conn).order_by("id").first()
            )
            await check_transferable(
                tx.conn,
                right_id=int(case.right_id),  # type: ignore[attr-defined]
                seller_person_id=int(seller.person_id) if seller else 0,  # type: ignore[attr-defined]
                mortgage_handling=details.get("mortgage_handling"),
                objection_consent_ref=details.get("objection_consent_ref"),
            )
            if case.tax_status is None:
                raise TaxDeclarationPending(case_id=case.id)
            if case.tax_status == "rejected":
                raise TaxDeclarationRejected(case_id=case.id)
        elif to_state == "reviewing" and await unconfirmed(tx.conn, case.id):
            raise PartiesNotConfirmed(case_id=case.id)

    async def register(self, tx: RegisterTransaction, case: RegistrationCase) -> str | None:
        return await register(
            tx, case, router=self.router, kv=self.kv, clock=self.clock, hotline=self.hotline, vault=self.vault
        )
