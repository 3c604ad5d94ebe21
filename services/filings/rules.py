"""What a bank's filing must satisfy: blocking errors and warnings, each with a stable code, all of
them found in one pass so the bank fixes everything at once (HM Land Registry's Business Gateway
separates them the same way).

Errors (the filing is rejected): FILING_TYPE_NOT_ALLOWED, TERMS_REQUIRED, TERM_INVALID,
MORTGAGE_REQUIRED, UNIT_UNKNOWN, MORTGAGOR_NOT_HOLDER, MORTGAGOR_NAME_MISMATCH, UNIT_SEIZED,
MORTGAGE_NOT_HELD, ATTACHMENT_UNKNOWN, DAILY_QUOTA_EXCEEDED.
Warnings (the filing is accepted and goes to a clerk): OTHER_BANK_MORTGAGE, OBJECTION_PENDING,
HOLDERS_NOT_ALL_MORTGAGORS, REGISTRATION_IN_PROGRESS.

Read-only: the transaction that accepts a filing takes the quota by a conditional update and the
register change functions lock the right, so what is read here is checked again where it counts.
Messages never repeat an ID number; an index in `field` names the mortgagor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from services.filings.models import (
    CANCEL,
    CHANGE,
    CREATE,
    BankDailyUsage,
    FilingAttachment,
    ParticipatingBank,
)
from services.filings.views import Issue
from services.pii import PiiVault
from services.registry.models import (
    Encumbrance,
    Mortgage,
    Person,
    RealEstateUnit,
    RegistrationCase,
    Right,
    RightHolder,
)

_OPEN_STATES = ("applied", "accepted", "reviewing")


@dataclass(frozen=True)
class MortgagorInput:
    id_number: str  # validated (GB 11643) by the caller
    name: str


@dataclass(frozen=True)
class FilingRequest:
    type: str  # create | change | cancel
    contract_number: str
    submitted_by: str
    mortgagors: tuple[MortgagorInput, ...]
    unit_number: str | None = None
    certificate_number: str | None = None  # the right's 不动产权证书号, instead of the unit number
    mortgage_certificate_number: str | None = None  # change, cancel: the mortgage's 不动产登记证明号
    borrower_name: str | None = None
    amount_fen: int | None = None
    term_start: date | None = None
    term_end: date | None = None
    attachment_ids: tuple[int, ...] = ()


@dataclass
class Assessment:
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    unit: RealEstateUnit | None = None
    right: Right | None = None
    mortgage: Mortgage | None = None
    mortgagor_ids: list[int] = field(default_factory=list)
    looked_up: list[int] = field(default_factory=list)  # holders the register was read for

    def error(self, code: str, message: str, field_name: str | None = None) -> None:
        self.errors.append(Issue(code, message, field_name))

    def warn(self, code: str, message: str, field_name: str | None = None) -> None:
        self.warnings.append(Issue(code, message, field_name))


def usage_key(bank_id: int, day: date) -> str:
    return f"{bank_id}:{day.isoformat()}"


async def assess(req: FilingRequest, *, bank: ParticipatingBank, vault: PiiVault, today: date) -> Assessment:
    a = Assessment()
    if req.type not in bank.filing_types.split():
        a.error(
            "FILING_TYPE_NOT_ALLOWED",
            f"本行未开通{req.type}类抵押登记 / type not allowed for this bank",
            "type",
        )
    if req.type in (CREATE, CHANGE):
        if req.amount_fen is None or req.term_start is None or req.term_end is None:
            a.error(
                "TERMS_REQUIRED",
                "须填写被担保债权数额和债务履行期限 / amount and term required",
                "amount_fen",
            )
        elif req.term_end < req.term_start:
            a.error(
                "TERM_INVALID", "债务履行期限终止日早于起始日 / the term ends before it starts", "term_end"
            )
    if req.type in (CHANGE, CANCEL) and not req.mortgage_certificate_number:
        a.error(
            "MORTGAGE_REQUIRED",
            "须填写原抵押的不动产登记证明号 / the mortgage's number is required",
            "mortgage_certificate_number",
        )
    await _find_right(req, a)
    if a.right is not None:
        await _check_mortgagors(req, a, vault)
        await _check_right(req, a, bank)
    await _check_attachments(req, a, bank)
    usage = await BankDailyUsage.get_or_none(key=usage_key(bank.id, today))
    if usage is not None and usage.used >= bank.daily_quota:
        a.error(
            "DAILY_QUOTA_EXCEEDED", f"本行今日受理已达上限 {bank.daily_quota} 件 / daily quota reached", None
        )
    return a


async def _find_right(req: FilingRequest, a: Assessment) -> None:
    right: Right | None = None
    if req.certificate_number:
        right = await Right.get_or_none(certificate_number=req.certificate_number, status="current")
    elif req.unit_number:
        unit = await RealEstateUnit.get_or_none(unit_number=req.unit_number)
        if unit is not None:
            # A unit may carry a land right and a house right: the house's is mortgaged.
            rights = await Right.filter(unit_id=unit.id, status="current").order_by("id")
            houses = [r for r in rights if r.right_type == "house_ownership"]
            candidates = houses or list(rights)
            right = candidates[0] if candidates else None
    if right is None:
        a.error(
            "UNIT_UNKNOWN", "登记簿中无此不动产单元或现势权利 / no such unit or current right", "unit_number"
        )
        return
    a.right = right
    a.unit = await RealEstateUnit.get(id=right.unit_id)  # type: ignore[attr-defined]


async def _check_mortgagors(req: FilingRequest, a: Assessment, vault: PiiVault) -> None:
    assert a.right is not None
    holder_ids = {
        int(pid)  # type: ignore[call-overload]
        for pid in await RightHolder.filter(right_id=a.right.id, person_id__isnull=False).values_list(
            "person_id", flat=True
        )
    }
    if not req.mortgagors:
        a.error("MORTGAGOR_NOT_HOLDER", "须至少填写一名抵押人 / at least one mortgagor", "mortgagors")
    for i, m in enumerate(req.mortgagors):
        person = await Person.get_or_none(id_number_index=vault.blind_index(m.id_number))
        if person is not None and person.id in holder_ids:
            a.looked_up.append(int(person.id))
        if person is None or person.id not in holder_ids:
            a.error(
                "MORTGAGOR_NOT_HOLDER",
                f"第{i + 1}名抵押人不是该不动产的权利人 / not a holder",
                f"mortgagors[{i}]",
            )
        elif person.name != m.name.strip():
            a.error(
                "MORTGAGOR_NAME_MISMATCH",
                f"第{i + 1}名抵押人姓名与登记簿不符 / name differs from the register",
                f"mortgagors[{i}].name",
            )
        else:
            a.mortgagor_ids.append(int(person.id))
    if holder_ids - set(a.mortgagor_ids) and not a.errors:
        a.warn(
            "HOLDERS_NOT_ALL_MORTGAGORS",
            "部分共有人未作为抵押人 / not every holder is a mortgagor",
            "mortgagors",
        )


async def _check_right(req: FilingRequest, a: Assessment, bank: ParticipatingBank) -> None:
    assert a.right is not None
    encumbrances = await Encumbrance.filter(right_id=a.right.id, status="active").values_list(
        "kind", flat=True
    )
    if "seizure" in encumbrances:
        a.error("UNIT_SEIZED", "该不动产已被查封 / the property is seized", "unit_number")
    if "objection" in encumbrances:
        a.warn("OBJECTION_PENDING", "该不动产存在异议登记 / an objection is registered", "unit_number")
    mortgages = await Mortgage.filter(right_id=a.right.id, status="active")
    organisation_id = bank.organisation_id  # type: ignore[attr-defined]
    if req.type == CREATE:
        if any(m.mortgagee_id != organisation_id for m in mortgages):  # type: ignore[attr-defined]
            a.warn(
                "OTHER_BANK_MORTGAGE",
                "该不动产已有其他抵押权人的抵押 / mortgaged to another bank",
                "unit_number",
            )
    elif req.mortgage_certificate_number:
        held = [
            m
            for m in mortgages
            if m.certificate_number == req.mortgage_certificate_number and m.mortgagee_id == organisation_id  # type: ignore[attr-defined]
        ]
        if not held:
            a.error(
                "MORTGAGE_NOT_HELD",
                "本行在该不动产上无此有效抵押 / this bank holds no such mortgage",
                "mortgage_certificate_number",
            )
        else:
            a.mortgage = held[0]
    if await RegistrationCase.filter(unit_id=a.right.unit_id, state__in=_OPEN_STATES).exists():  # type: ignore[attr-defined]
        a.warn(
            "REGISTRATION_IN_PROGRESS",
            "该不动产有正在办理的登记 / a registration is in progress",
            "unit_number",
        )


async def _check_attachments(req: FilingRequest, a: Assessment, bank: ParticipatingBank) -> None:
    if not req.attachment_ids:
        return
    found = set(
        await FilingAttachment.filter(
            id__in=list(req.attachment_ids), bank_id=bank.id, filing_id__isnull=True
        ).values_list("id", flat=True)
    )
    for i, attachment_id in enumerate(req.attachment_ids):
        if attachment_id not in found:
            a.error(
                "ATTACHMENT_UNKNOWN",
                "附件不存在或已被使用 / unknown or already used attachment",
                f"attachment_ids[{i}]",
            )
