"""Bank mortgage filings: submit, upload an attachment, read one, list; the use cases behind
api/routes/filings.py. The composition root builds one `FilingService` (api/container.py).

Invariant (one filing per submission): the API runs `submit` under the caller's Idempotency-Key
(services/idempotency): concurrent retries of one submission run it once and get its answer; a
batch item runs under its own key the same way.

Invariant (a filing's fate is recorded with its answer): a rejected filing is written, with every
error and warning and its callback, before the 422 is answered; an accepted one is written with
its case, the quota count and its callbacks in one transaction (services/cases/mortgage_filings.py).
A bank sees only its own filings: another bank's id is answered as an unknown one (404).

Every filing and every read of one by a bank is an entry of the access log (services/audit), one
per mortgagor the register knows, written before the answer: the mortgagor sees the bank's reads
in their own access log (`/api/v1/me/access-log`).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import date

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from services.audit import Reader, record_access
from services.cases import FilingCase, accept_filing
from services.clock import Clock, local_today
from services.errors import AttachmentMismatch, FilingRejected, NotFound, ValidationFailed
from services.filings.banks import BankRegistry
from services.filings.models import (
    ACCEPTED,
    REJECTED,
    BankDailyUsage,
    FilingAttachment,
    MortgageFiling,
    ParticipatingBank,
)
from services.filings.progress import filing_ref, notify_bank
from services.filings.rules import Assessment, FilingRequest, assess, usage_key
from services.filings.storage import AttachmentStorage
from services.filings.views import AttachmentView, FilingView, Issue
from services.kv import KeyValueStore
from services.pii import PiiVault
from services.ratelimit import RateLimiter, per_seconds
from services.registry.models import CaseParty

FILED = "mortgage_filing.submit"
READ = "mortgage_filing.read"
_PURPOSE = "mortgage_filing"

_QUOTA_EXCEEDED = Issue("DAILY_QUOTA_EXCEEDED", "本行今日受理已达上限 / daily quota reached")


@dataclass(frozen=True)
class FilingPolicy:
    hotline: str = "12345"
    requests_per_minute: int = 600
    attachment_max_bytes: int = 2 * 1024 * 1024


class _QuotaGone(Exception):
    """The quota was taken by a concurrent filing between the check and the acceptance."""


class FilingService:
    def __init__(
        self,
        *,
        banks: BankRegistry,
        storage: AttachmentStorage,
        vault: PiiVault,
        kv: KeyValueStore,
        limiter: RateLimiter,
        clock: Clock,
        policy: FilingPolicy | None = None,
    ) -> None:
        self.banks = banks
        self.storage = storage
        self.vault = vault
        self.kv = kv
        self.limiter = limiter
        self.clock = clock
        self.policy = policy or FilingPolicy()

    async def _bank(self, code: str | None) -> ParticipatingBank:
        bank = await self.banks.bank_for(code)
        await self.limiter.hit(per_seconds(self.policy.requests_per_minute, 60), "bank-requests", bank.code)
        return bank

    # --- submissions ------------------------------------------------------------------------

    async def submit(
        self,
        *,
        bank_code: str | None,
        req: FilingRequest,
        reader: Reader | None = None,
        request_id: str | None = None,
    ) -> FilingView:
        """Accepted (registered at once, or waiting for a clerk when there are warnings), or
        FilingRejected with every error and warning."""
        bank = await self._bank(bank_code)
        today = local_today(self.clock)
        a = await assess(req, bank=bank, vault=self.vault, today=today)
        if a.errors:
            return await self._reject(bank, req, a, today, reader=reader, request_id=request_id)
        right, unit = a.right, a.unit
        assert right is not None and unit is not None

        async def prepare(conn: BaseDBAsyncClient) -> FilingCase:
            key = usage_key(bank.id, today)
            await BankDailyUsage.bulk_create(
                [BankDailyUsage(key=key, used=0)], ignore_conflicts=True, using_db=conn
            )
            taken = (
                await BankDailyUsage.filter(key=key, used__lt=bank.daily_quota)
                .using_db(conn)
                .update(used=F("used") + 1)
            )
            if taken != 1:
                raise _QuotaGone()
            filing = await self._write(conn, bank, req, a, today, status=ACCEPTED)
            await notify_bank(
                conn, bank_code=bank.code, filing_id=filing.id, status=ACCEPTED, clock=self.clock
            )
            return FilingCase(
                filing_id=filing.id,
                type=req.type,
                bank_code=bank.code,
                bank_organisation_id=bank.organisation_id,  # type: ignore[attr-defined]
                unit_id=unit.id,
                right_id=right.id,
                district_code=right.district_code,
                mortgagor_ids=tuple(a.mortgagor_ids),
                details={"filing_type": req.type, "contract_number": req.contract_number},
            )

        try:
            case = await accept_filing(
                prepare, kv=self.kv, clock=self.clock, hotline=self.policy.hotline, review=bool(a.warnings)
            )
        except _QuotaGone:
            a.errors.append(_QUOTA_EXCEEDED)
            return await self._reject(bank, req, a, today, reader=reader, request_id=request_id)
        filing = await MortgageFiling.get(case_id=case.id)
        await self._log(reader, a.looked_up, FILED, filing.id, request_id)
        return await self.view(filing)

    async def _log(
        self,
        reader: Reader | None,
        person_ids: list[int],
        action: str,
        filing_id: int,
        request_id: str | None,
    ) -> None:
        if reader is None:
            return
        for person_id in sorted(set(person_ids)):
            await record_access(
                reader=reader,
                person_id=person_id,
                action=action,
                object_type="mortgage_filing",
                object_id=filing_id,
                purpose=_PURPOSE,
                clock=self.clock,
                request_id=request_id,
            )

    async def _mortgagors(self, filing: MortgageFiling) -> list[int]:
        case_id = filing.case_id  # type: ignore[attr-defined]
        if case_id is None:
            return []
        ids = await CaseParty.filter(case_id=case_id, role="mortgagor", person_id__isnull=False).values_list(
            "person_id", flat=True
        )
        return [int(i) for i in ids]  # type: ignore[call-overload]

    async def _reject(
        self,
        bank: ParticipatingBank,
        req: FilingRequest,
        a: Assessment,
        today: date,
        *,
        reader: Reader | None,
        request_id: str | None,
    ) -> FilingView:
        async with in_transaction() as conn:
            filing = await self._write(conn, bank, req, a, today, status=REJECTED)
            codes = ",".join(sorted({e.code for e in a.errors}))
            await notify_bank(
                conn,
                bank_code=bank.code,
                filing_id=filing.id,
                status=REJECTED,
                clock=self.clock,
                errors=codes,
            )
        await self._log(reader, a.looked_up, FILED, filing.id, request_id)
        raise FilingRejected(
            errors=[asdict(e) for e in a.errors],
            warnings=[asdict(w) for w in a.warnings],
            filing_id=filing.id,
            ref=filing_ref(filing.id),
            filing_status=REJECTED,
        )

    async def _write(
        self,
        conn: BaseDBAsyncClient,
        bank: ParticipatingBank,
        req: FilingRequest,
        a: Assessment,
        today: date,
        *,
        status: str,
    ) -> MortgageFiling:
        now = self.clock.now()
        filing = await MortgageFiling.create(
            bank_id=bank.id,
            type=req.type,
            status=status,
            unit_id=a.unit.id if a.unit is not None else None,
            right_id=a.right.id if a.right is not None else None,
            mortgage_id=a.mortgage.id if a.mortgage is not None else None,
            contract_number=req.contract_number,
            amount_fen=req.amount_fen,
            term_start=req.term_start,
            term_end=req.term_end,
            borrower_name=req.borrower_name,
            submitted_by=req.submitted_by,
            errors=[asdict(e) for e in a.errors],
            warnings=[asdict(w) for w in a.warnings],
            priority_at=now if status == ACCEPTED else None,
            filed_on=today,
            created_at=now,
            updated_at=now,
            using_db=conn,
        )
        if status == ACCEPTED and req.attachment_ids:
            await (
                FilingAttachment.filter(
                    id__in=list(req.attachment_ids), bank_id=bank.id, filing_id__isnull=True
                )
                .using_db(conn)
                .update(filing_id=filing.id)
            )
        return filing

    # --- attachments -------------------------------------------------------------------------

    async def upload(
        self, *, bank_code: str | None, name: str, content_type: str, size: int, sha256: str, data: bytes
    ) -> AttachmentView:
        """Checked on receipt against what the bank declared; stored outside the database."""
        bank = await self._bank(bank_code)
        if size > self.policy.attachment_max_bytes:
            raise ValidationFailed(max_bytes=self.policy.attachment_max_bytes)
        actual = hashlib.sha256(data).hexdigest()
        if len(data) != size or actual != sha256.lower():
            raise AttachmentMismatch(declared_size=size, received_size=len(data))
        key = await self.storage.put(data)
        row = await FilingAttachment.create(
            bank_id=bank.id,
            name=name,
            content_type=content_type,
            size=size,
            sha256=actual,
            storage_key=key,
            created_at=self.clock.now(),
        )
        return AttachmentView(row.id, row.name, row.content_type, row.size, row.sha256, row.created_at)

    # --- reads -------------------------------------------------------------------------------

    async def get(
        self,
        *,
        bank_code: str | None,
        filing_id: int,
        reader: Reader | None = None,
        request_id: str | None = None,
    ) -> FilingView:
        bank = await self._bank(bank_code)
        filing = await MortgageFiling.get_or_none(id=filing_id, bank_id=bank.id)
        if filing is None:
            raise NotFound(filing_id=filing_id)
        await self._log(reader, await self._mortgagors(filing), READ, filing.id, request_id)
        return await self.view(filing)

    async def list(
        self,
        *,
        bank_code: str | None,
        status: str | None,
        filed_from: date | None,
        filed_to: date | None,
        limit: int,
        before_id: int | None,
        reader: Reader | None = None,
        request_id: str | None = None,
    ) -> list[FilingView]:
        bank = await self._bank(bank_code)
        query = MortgageFiling.filter(bank_id=bank.id).order_by("-id")
        if status is not None:
            query = query.filter(status=status)
        if filed_from is not None:
            query = query.filter(filed_on__gte=filed_from)
        if filed_to is not None:
            query = query.filter(filed_on__lte=filed_to)
        if before_id is not None:
            query = query.filter(id__lt=before_id)
        filings = await query.limit(limit)
        for filing in filings:
            await self._log(reader, await self._mortgagors(filing), READ, filing.id, request_id)
        return [await self.view(f) for f in filings]

    async def view(self, filing: MortgageFiling) -> FilingView:
        await filing.fetch_related("case", "unit")
        case = filing.case
        unit = filing.unit
        return FilingView(
            id=filing.id,
            ref=filing_ref(filing.id),
            type=filing.type,  # type: ignore[arg-type]
            status=filing.status,  # type: ignore[arg-type]
            contract_number=filing.contract_number,
            submitted_by=filing.submitted_by,
            unit_number=unit.unit_number if unit is not None else None,
            case_number=case.case_number if case is not None else None,
            priority_at=filing.priority_at,
            certificate_number=filing.certificate_number,
            errors=tuple(Issue(**e) for e in filing.errors or ()),
            warnings=tuple(Issue(**w) for w in filing.warnings or ()),
            reason=(case.reason if case is not None and case.reason else filing.reason),
            filed_on=filing.filed_on,
            created_at=filing.created_at,
            updated_at=filing.updated_at,
        )
