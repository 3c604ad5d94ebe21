"""Sign-in: SMS codes for citizens, passwords for staff, client credentials for banks."""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import empty, json

from api.fields import Phone
from api.guards import client_ip, current_principal
from api.openapi import doc
from api.validation import parse_json
from services.errors import AuthenticationFailed
from services.identity.auth import TokenPair

bp = Blueprint("auth", url_prefix="/api/v1/auth")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SmsCodeRequest(_Strict):
    phone: Phone


class SmsCodeAccepted(BaseModel):
    status: str = Field(
        description="Always `sent`: the answer does not reveal whether the phone is registered"
    )
    expires_in: int


class CodeSignIn(_Strict):
    phone: Phone
    code: str = Field(min_length=6, max_length=6, pattern=r"^[0-9]{6}$")


class StaffSignIn(_Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class ClientCredentials(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    grant_type: str = Field(pattern=r"^client_credentials$")
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    client_secret: str | None = Field(default=None, min_length=1, max_length=256)
    scope: str | None = Field(default=None, max_length=256)


class RefreshRequest(_Strict):
    refresh_token: str = Field(min_length=16, max_length=256)


class LogoutRequest(_Strict):
    refresh_token: str | None = Field(default=None, min_length=16, max_length=256)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str | None = None
    role: str
    scope: str | None = None


def _token_response(pair: TokenPair) -> HTTPResponse:
    body = {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "role": pair.role,
    }
    if pair.refresh_token:
        body["refresh_token"] = pair.refresh_token
    if pair.scope is not None:
        body["scope"] = pair.scope
    return json(body, headers={"Cache-Control": "no-store"})


@bp.post("/sms-codes")
@doc(
    summary="Send a sign-in code by SMS to a phone registered to a real-name person",
    tag="auth",
    body=SmsCodeRequest,
    ok=(202, SmsCodeAccepted),
    errors=(429,),
    secured=False,
)
async def send_sms_code(request: Request) -> HTTPResponse:
    body = parse_json(request, SmsCodeRequest)
    ttl = await request.app.ctx.services.auth.request_sms_code(phone=body.phone, client_ip=client_ip(request))
    return json({"status": "sent", "expires_in": ttl}, status=202)


@bp.post("/tokens")
@doc(
    summary="Sign in with the SMS code (citizens)",
    tag="auth",
    body=CodeSignIn,
    ok=(200, TokenResponse),
    errors=(401,),
    secured=False,
)
async def sign_in_with_code(request: Request) -> HTTPResponse:
    body = parse_json(request, CodeSignIn)
    return _token_response(
        await request.app.ctx.services.auth.sign_in_with_code(phone=body.phone, code=body.code)
    )


@bp.post("/staff-tokens")
@doc(
    summary="Sign in with username and password (clerks, admins)",
    tag="auth",
    body=StaffSignIn,
    ok=(200, TokenResponse),
    errors=(401, 423, 429),
    secured=False,
)
async def sign_in_staff(request: Request) -> HTTPResponse:
    body = parse_json(request, StaffSignIn)
    pair = await request.app.ctx.services.auth.sign_in_staff(
        username=body.username, password=body.password, client_ip=client_ip(request)
    )
    return _token_response(pair)


@bp.post("/client-tokens")
@doc(
    summary="OAuth2 client credentials (banks); HTTP Basic or body credentials",
    tag="auth",
    body=ClientCredentials,
    body_content_types=("application/x-www-form-urlencoded", "application/json"),
    ok=(200, TokenResponse),
    errors=(401, 423, 429),
    secured=False,
)
async def client_token(request: Request) -> HTTPResponse:
    body = parse_json(request, ClientCredentials, forms=True)
    client_id, client_secret = body.client_id, body.client_secret
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            client_id, _, client_secret = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationFailed(reason="invalid_client") from None
    if not client_id or not client_secret:
        raise AuthenticationFailed(reason="invalid_client")
    pair = await request.app.ctx.services.auth.sign_in_client(
        client_id=client_id, client_secret=client_secret, scope=body.scope, client_ip=client_ip(request)
    )
    return _token_response(pair)


@bp.post("/refresh")
@doc(
    summary="Exchange a refresh token for a new pair; a reused token revokes the session",
    tag="auth",
    body=RefreshRequest,
    ok=(200, TokenResponse),
    errors=(401,),
    secured=False,
)
async def refresh(request: Request) -> HTTPResponse:
    body = parse_json(request, RefreshRequest)
    return _token_response(await request.app.ctx.services.auth.refresh(refresh_token=body.refresh_token))


@bp.post("/logout")
@doc(
    summary="Sign out: revoke this access token and end its sign-in (refresh family and its tokens)",
    tag="auth",
    body=LogoutRequest,
    body_required=False,
    ok=(204, None),
)
async def logout(request: Request) -> HTTPResponse:
    principal = await current_principal(request)
    body = parse_json(request, LogoutRequest) if request.body else LogoutRequest()
    await request.app.ctx.services.auth.logout(principal=principal, refresh_token=body.refresh_token)
    return empty()
