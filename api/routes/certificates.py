"""No-housing certificates: the holder's routes, verification, and what offline verifiers fetch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json, raw

from api.guards import client_ip, current_principal, requires
from api.idempotency import idempotent
from api.openapi import doc
from api.routes.properties import person_id_of, services
from api.validation import parse_json
from services.audit import reader_for
from services.certificates import CertificateView, Presentation, RevocationListView, Verification

bp = Blueprint("certificates", url_prefix="/api/v1")

SERIAL_PARAM = {"type": "string", "pattern": "^WF[0-9]{8}[2-9A-HJ-NP-Z]{10}$", "maxLength": 32}
_NO_STORE = {"Cache-Control": "no-store"}


class IssueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["no-housing"] = Field(description="the certificate type; only no-housing today")
    purpose: str = Field(
        min_length=1,
        max_length=32,
        description="config/certificates.toml: purchase, loan, talent, school, rental_subsidy",
        examples=["talent"],
    )


class CertificateList(BaseModel):
    items: list[CertificateView]


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    qr: str = Field(
        min_length=1,
        max_length=4096,
        description="the scanned text: the verification URL ({base}/v#token) or the bare token",
    )


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=2, max_length=200)


class JwkSet(BaseModel):
    model_config = ConfigDict(extra="allow")

    keys: list[dict[str, str]]


# --- the holder -------------------------------------------------------------------------------


@bp.post("/me/certificates")
@doc(
    summary="Apply for a no-housing certificate (无房证明)",
    description=(
        "Decided from the register at once, in one transaction. For purposes that count the "
        "household (purchase, loan) the spouse and minor children from the civil registry count "
        "too. Someone holding housing is refused with `HOLDER_HAS_HOUSING` (and which member, "
        "masked); otherwise the certificate is issued, filed in the e-licence library, and an SMS "
        "and an in-app message follow. At most `certificate_issues_per_day` a day per person."
    ),
    tag="certificates",
    body=IssueRequest,
    ok=(201, CertificateView),
    errors=(403, 404, 409, 429, 503),
)
@requires("citizen")
@idempotent()
async def issue(request: Request) -> HTTPResponse:
    body = parse_json(request, IssueRequest)
    view = await services(request).certificates.issue(
        person_id=await person_id_of(request), cert_type=body.type, purpose_code=body.purpose
    )
    return json(view, status=201, headers=_NO_STORE)


@bp.get("/me/certificates")
@doc(summary="My certificates, newest first", tag="certificates", ok=(200, CertificateList), errors=(403,))
@requires("citizen")
async def list_certificates(request: Request) -> HTTPResponse:
    items = await services(request).certificates.list_for(await person_id_of(request))
    return json({"items": items}, headers=_NO_STORE)


@bp.get("/me/certificates/<serial:str>/pdf")
@doc(
    summary="My certificate as a PDF (one A4 page with the signed QR code)",
    tag="certificates",
    path_params={"serial": SERIAL_PARAM},
    ok=(200, {"type": "string", "format": "binary"}),
    ok_content_type="application/pdf",
    errors=(403, 404, 503),
)
@requires("citizen")
async def pdf(request: Request, serial: str) -> HTTPResponse:
    document = await services(request).certificates.pdf(await person_id_of(request), serial)
    return raw(
        document,
        content_type="application/pdf",
        headers={**_NO_STORE, "Content-Disposition": f'inline; filename="{serial[:32]}.pdf"'},
    )


@bp.post("/me/certificates/<serial:str>/presentations")
@doc(
    summary="Show a certificate on the phone (亮证): a QR code valid for a few minutes",
    description="A screenshot goes stale: verifying the code after `expires_at` says `expired`.",
    tag="certificates",
    path_params={"serial": SERIAL_PARAM},
    ok=(201, Presentation),
    errors=(403, 404, 409),
)
@requires("citizen")
async def present(request: Request, serial: str) -> HTTPResponse:
    shown = await services(request).certificates.present(await person_id_of(request), serial)
    return json(shown, status=201, headers=_NO_STORE)


# --- verification -----------------------------------------------------------------------------


@bp.post("/verifications")
@doc(
    summary="Verify a scanned certificate or presentation (registration staff)",
    description=(
        "Answers `valid`, `expired`, `revoked`, `forged` or `unknown` with only what a check "
        "needs. Each verification of a real certificate is shown to its holder in their access log."
    ),
    tag="certificates",
    body=VerifyRequest,
    ok=(200, Verification),
    errors=(403,),
)
@requires("clerk", "admin")
async def verify(request: Request) -> HTTPResponse:
    body = parse_json(request, VerifyRequest)
    reader = await reader_for(await current_principal(request))
    result = await services(request).verifier.verify(
        body.qr, reader=reader, request_id=getattr(request.ctx, "request_id", None)
    )
    return json(result, headers=_NO_STORE)


@bp.post("/public/verifications")
@doc(
    summary="Verify a certificate without signing in (the page a phone camera opens)",
    description="The same answer as the staff route; limited per address.",
    tag="certificates",
    body=VerifyRequest,
    ok=(200, Verification),
    errors=(429,),
    secured=False,
)
async def verify_public(request: Request) -> HTTPResponse:
    body = parse_json(request, VerifyRequest)
    result = await services(request).verifier.verify_public(
        body.qr,
        client_ip=client_ip(request),
        request_id=getattr(request.ctx, "request_id", None),
    )
    return json(result, headers=_NO_STORE)


@bp.get("/certificate-keys")
@doc(
    summary="The certificate signing keys (JWK Set), current and retired, for offline verifiers",
    tag="certificates",
    ok=(200, JwkSet),
    secured=False,
)
async def keys(request: Request) -> HTTPResponse:
    return json(services(request).certificates.keyring.jwks(), headers={"Cache-Control": "max-age=300"})


@bp.get("/certificate-revocations")
@doc(
    summary="The signed list of revoked certificates still within validity, for offline verifiers",
    description="`token` is a compact JWS (typ `crl`); a verifier shows how old its list is.",
    tag="certificates",
    ok=(200, RevocationListView),
    secured=False,
)
async def revocations(request: Request) -> HTTPResponse:
    listed = await services(request).certificates.revocation_list()
    return json(listed, headers={"Cache-Control": "max-age=60"})


@bp.post("/admin/certificates/<serial:str>/revocation")
@doc(
    summary="Revoke a certificate, with the reason the holder is told (administrators)",
    tag="certificates",
    path_params={"serial": SERIAL_PARAM},
    body=RevokeRequest,
    ok=(200, CertificateView),
    errors=(403, 404, 409),
)
@requires("admin")
async def revoke(request: Request, serial: str) -> HTTPResponse:
    body = parse_json(request, RevokeRequest)
    principal = await current_principal(request)
    view = await services(request).certificates.revoke(
        serial, reason=body.reason.strip(), by=principal.subject
    )
    return json(view, headers=_NO_STORE)
