"""Banks' mortgage filings without a visit (issue 14): file one (Idempotency-Key required) or up
to 100 in a batch (each with its own key), upload attachments, poll a filing or list them. A bank
sees only its own filings (404 otherwise). docs/filings.md describes statuses, codes, callbacks."""

from __future__ import annotations

import datetime as dt
import hashlib
import json as stdlib_json
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from api.errors import domain_problem
from api.fields import CalendarDay, IdNumber, UnitNumber
from api.guards import current_principal, requires
from api.idempotency import _store, idempotent, scope_of
from api.openapi import doc
from api.routes.properties import ID_PARAM, object_id, services
from api.validation import _validate, parse_json, parse_query
from services.audit import reader_for
from services.errors import DomainError, TooManyFilings
from services.filings import FilingRequest, MortgagorInput
from services.filings.views import AttachmentView, FilingView

bp = Blueprint("filings", url_prefix="/api/v1/bank")

_NO_STORE = {"Cache-Control": "no-store"}
_TEXT = r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"
BATCH_MAX = 100


class MortgagorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_number: IdNumber
    name: str = Field(min_length=1, max_length=64, pattern=_TEXT, description="as in the register")


class FilingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["create", "change", "cancel"]
    unit_number: UnitNumber | None = None
    certificate_number: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=_TEXT, description="the right's 不动产权证书号"
    )
    mortgage_certificate_number: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=_TEXT,
        description="change, cancel: the mortgage's 不动产登记证明号",
    )
    mortgagors: list[MortgagorIn] = Field(min_length=1, max_length=20)
    borrower_name: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=_TEXT, description="when not the mortgagor"
    )
    amount_fen: int | None = Field(default=None, ge=1, le=10**15, description="secured amount in fen")
    term_start: dt.date | None = None
    term_end: dt.date | None = None
    contract_number: str = Field(min_length=1, max_length=64, pattern=_TEXT)
    submitted_by: str = Field(
        min_length=1, max_length=64, pattern=_TEXT, description="the bank's staff member"
    )
    attachment_ids: list[int] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _one_property(self) -> FilingIn:
        if (self.unit_number is None) == (self.certificate_number is None):
            raise ValueError("give either unit_number or certificate_number")
        return self

    def to_request(self) -> FilingRequest:
        return FilingRequest(
            type=self.type,
            contract_number=self.contract_number.strip(),
            submitted_by=self.submitted_by.strip(),
            mortgagors=tuple(MortgagorInput(m.id_number, m.name) for m in self.mortgagors),
            unit_number=self.unit_number,
            certificate_number=self.certificate_number,
            mortgage_certificate_number=self.mortgage_certificate_number,
            borrower_name=self.borrower_name,
            amount_fen=self.amount_fen,
            term_start=self.term_start,
            term_end=self.term_end,
            attachment_ids=tuple(self.attachment_ids),
        )


class BatchItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: str = Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
    filing: dict[str, Any]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BatchItemIn] = Field(min_length=1)


class BatchItemOut(BaseModel):
    idempotency_key: str
    status: int
    replayed: bool
    body: dict[str, Any]


class BatchOut(BaseModel):
    results: list[BatchItemOut]


class FilingList(BaseModel):
    items: list[FilingView]


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["validating", "rejected", "accepted", "clerk_review", "registered"] | None = None
    filed_from: CalendarDay | None = None
    filed_to: CalendarDay | None = None
    limit: int = Field(default=50, ge=1, le=200)
    before_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


class AttachmentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=_TEXT)
    size: int = Field(ge=1, le=2**31, description="declared size in bytes")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="declared SHA-256, hex")


async def _bank_code(request: Request) -> str | None:
    return (await current_principal(request)).bank_code


async def _reader(request: Request) -> dict[str, Any]:
    """Who reads, for the mortgagors' access log, and the request it was."""
    reader = await reader_for(await current_principal(request))
    return {"reader": reader, "request_id": getattr(request.ctx, "request_id", None)}


@bp.post("/mortgage-filings")
@doc(
    summary="File a mortgage registration, change or cancellation",
    description=(
        "Validated at once: blocking errors and warnings are all reported together (422 "
        "FILING_REJECTED with `errors` and `warnings`). Without warnings the filing is accepted "
        "and registered at once; with warnings it is accepted and waits for a clerk. Requires an "
        "`Idempotency-Key`: the same key and body returns the first answer, another body 422."
    ),
    tag="bank",
    body=FilingIn,
    ok=(201, FilingView),
    errors=(403, 404, 409, 422, 429),
)
@requires("bank", scope="mortgage:file")
@idempotent(required=True)
async def file_mortgage(request: Request) -> HTTPResponse:
    body = parse_json(request, FilingIn)
    view = await services(request).filings.submit(
        bank_code=await _bank_code(request), req=body.to_request(), **await _reader(request)
    )
    return json(view, status=201, headers=_NO_STORE)


@bp.post("/mortgage-filing-batches")
@doc(
    summary="File up to 100 filings, each with its own Idempotency-Key and its own result",
    description=(
        "Each item runs as a single filing would under its key (a retried batch replays the items "
        "already answered). `status` is what the single request would have answered: 201, 422, 409."
    ),
    tag="bank",
    body=BatchIn,
    ok=(200, BatchOut),
    errors=(403, 422, 429),
)
@requires("bank", scope="mortgage:file")
async def file_batch(request: Request) -> HTTPResponse:
    body = parse_json(request, BatchIn)
    if len(body.items) > BATCH_MAX:
        raise TooManyFilings(max_items=BATCH_MAX)
    principal = await current_principal(request)
    store = _store(request)
    scope = scope_of(principal.subject)
    who = await _reader(request)
    results = []
    for item in body.items:
        fingerprint = hashlib.sha256(
            # stdlib json: any JSON the body parser took (integers beyond 64 bits, lone surrogates)
            b"batch-item\n" + stdlib_json.dumps(item.filing, sort_keys=True).encode()
        ).hexdigest()
        results.append(await _batch_item(request, store, scope, item, fingerprint, principal.bank_code, who))
    return json({"results": results}, headers=_NO_STORE)


async def _batch_item(
    request: Request,
    store: Any,
    scope: str,
    item: BatchItemIn,
    fingerprint: str,
    bank_code: str | None,
    who: dict[str, Any],
) -> dict[str, Any]:
    key = item.idempotency_key
    try:
        begun = await store.begin(scope, key, fingerprint)
    except DomainError as error:  # the key is in use, or was used with another filing
        return _result(key, domain_problem(request, error), replayed=False)
    if begun.replay is not None:
        return {
            "idempotency_key": key,
            "status": begun.replay.status,
            "replayed": True,
            "body": orjson.loads(begun.replay.body),
        }
    response: HTTPResponse
    try:
        filing = _validate(FilingIn, item.filing)
        view = await services(request).filings.submit(bank_code=bank_code, req=filing.to_request(), **who)
        response = json(view, status=201)
    except DomainError as error:
        response = domain_problem(request, error)
    except BaseException:
        await store.abandon(begun.record)
        raise
    if response.status >= 500:
        await store.abandon(begun.record)
    else:
        await store.finish(
            begun.record,
            response.status,
            bytes(response.body or b""),
            {"content-type": response.content_type or ""},
        )
    return _result(key, response, replayed=False)


def _result(key: str, response: HTTPResponse, *, replayed: bool) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "status": response.status,
        "replayed": replayed,
        "body": orjson.loads(response.body or b"{}"),
    }


@bp.get("/mortgage-filings/<filing_id:int>")
@doc(
    summary="One of your filings: its status, errors and warnings, case, priority, certificate",
    description="404 for another bank's filing, exactly as for one that does not exist.",
    tag="bank",
    path_params={"filing_id": ID_PARAM},
    ok=(200, FilingView),
    errors=(403, 404),
)
@requires("bank", scope="mortgage:read")
async def get_filing(request: Request, filing_id: int) -> HTTPResponse:
    view = await services(request).filings.get(
        bank_code=await _bank_code(request),
        filing_id=object_id(filing_id, "filing_id"),
        **await _reader(request),
    )
    return json(view, headers=_NO_STORE)


@bp.get("/mortgage-filings")
@doc(
    summary="Your filings, newest first, by status and filing day (Asia/Shanghai)",
    tag="bank",
    query=ListQuery,
    ok=(200, FilingList),
    errors=(403, 422),
)
@requires("bank", scope="mortgage:read")
async def list_filings(request: Request) -> HTTPResponse:
    q = parse_query(request, ListQuery)
    items = await services(request).filings.list(
        bank_code=await _bank_code(request),
        status=q.status,
        filed_from=q.filed_from,
        filed_to=q.filed_to,
        limit=q.limit,
        before_id=q.before_id,
        **await _reader(request),
    )
    return json({"items": items}, headers=_NO_STORE)


@bp.post("/attachments")
@doc(
    summary="Upload an attachment (the raw bytes) with its declared size and SHA-256",
    description="Checked on receipt (422 ATTACHMENT_MISMATCH); name its id in a filing's `attachment_ids`.",
    tag="bank",
    query=AttachmentQuery,
    body_content_types=("application/pdf", "image/jpeg", "image/png", "application/octet-stream"),
    ok=(201, AttachmentView),
    errors=(403, 422),
    body_required=True,
)
@requires("bank", scope="mortgage:file")
async def upload_attachment(request: Request) -> HTTPResponse:
    q = parse_query(request, AttachmentQuery)
    content_type = (request.content_type or "application/octet-stream").split(";")[0].strip()[:64]
    view = await services(request).filings.upload(
        bank_code=await _bank_code(request),
        name=q.name,
        content_type=content_type,
        size=q.size,
        sha256=q.sha256,
        data=bytes(request.body or b""),
    )
    return json(view, status=201, headers=_NO_STORE)
