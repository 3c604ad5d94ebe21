"""Maps every error to one RFC 9457 problem+json envelope, in one place.

Domain errors carry a stable `code`; this module decides the HTTP status. An `IntegrationError`
that a service let through is a 503 UPSTREAM_UNAVAILABLE naming the system (a safety net: services
translate the errors they can act on, e.g. a refusal, and need not wrap the rest). Anything
unknown is a 500 with the request id and nothing of the internals.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from sanic import HTTPResponse, Request, Sanic
from sanic import exceptions as sanic_exceptions
from sanic.response import json as json_response
from tortoise.exceptions import ValidationError as TortoiseValidationError

from integrations.errors import IntegrationError
from services import errors as e

log = logging.getLogger("estate.api")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://estate.example.gov.cn/problems/"

# Most specific class first: the first match decides.
STATUS_BY_ERROR: list[tuple[type[e.DomainError], int]] = [
    (e.UnsupportedMediaType, 415),
    (e.IdempotencyKeyRequired, 400),
    (e.RateLimited, 429),
    (e.AccountLocked, 423),
    (e.PermissionDenied, 403),
    (e.AuthenticationFailed, 401),
    (e.ValidationFailed, 422),
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.UpstreamUnavailable, 503),
]

# Errors raised by Sanic itself (routing, body parsing), with our codes and texts.
_REQUIRED = e.AuthenticationRequired
_SANIC_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("BAD_REQUEST", "请求格式错误", "The request is malformed"),
    401: (_REQUIRED.code, _REQUIRED.title_zh, _REQUIRED.title_en),
    403: ("PERMISSION_DENIED", "无权执行该操作", "You are not allowed to do this"),
    404: ("NOT_FOUND", "未找到该资源", "Not found"),
    405: ("METHOD_NOT_ALLOWED", "不支持该请求方法", "Method not allowed"),
    408: ("REQUEST_TIMEOUT", "请求超时", "The request timed out"),
    413: ("PAYLOAD_TOO_LARGE", "请求体过大", "The request body is too large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "不支持的内容类型", "Unsupported media type"),
    416: ("RANGE_NOT_SATISFIABLE", "请求范围无效", "Range not satisfiable"),
    431: ("REQUEST_HEADERS_TOO_LARGE", "请求头过大", "The request headers are too large"),
    503: ("SERVICE_UNAVAILABLE", "服务暂时不可用", "Service unavailable"),
}
_INTERNAL = ("INTERNAL_ERROR", "服务器内部错误，请凭请求编号联系客服", "Internal error; quote the request id")


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def wants_english(request: Request) -> bool:
    """English if the caller prefers it to Chinese (RFC 9110 Accept-Language with q-values;
    q=0 means not acceptable); Chinese otherwise, and on a tie, the earlier range wins."""
    header = request.headers.get("accept-language", "")
    best: tuple[float, str] = (0.0, "zh")
    for part in header.split(","):
        tag, *params = part.split(";")
        lang = tag.strip().lower()
        kind = "zh" if lang.startswith("zh") else "en" if lang.startswith("en") else None
        if kind is None:
            continue
        q = _quality(params)
        if q > best[0]:
            best = (q, kind)
    return best[1] == "en"


def status_for(error: e.DomainError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return 400


def problem(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> HTTPResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code.lower().replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": getattr(request.ctx, "request_id", None),
        "instance": request.path,
    }
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return json_response(body, status=status, headers=headers, content_type=PROBLEM_JSON)


def domain_problem(request: Request, error: e.DomainError) -> HTTPResponse:
    english = wants_english(request)
    status = status_for(error)
    headers = {"Retry-After": str(error.retry_after_s)} if isinstance(error, e.RateLimited) else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="estate"'}
    return problem(
        request,
        status=status,
        code=error.code,
        title=error.title_en if english else error.title_zh,
        detail=error.detail_en if english else error.detail_zh,
        extra=error.fields,
        headers=headers,
    )


def _allowed_methods(request: Request) -> list[str]:
    """Sanic names the allowed methods for static routes only; ask the router for the others."""
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        try:
            request.app.router.get(request.path, method, request.headers.get("host"))
        except sanic_exceptions.SanicException:
            continue
        allowed.append(method)
    return allowed


def register_error_handlers(app: Sanic) -> None:
    @app.exception(e.DomainError)
    async def on_domain_error(request: Request, error: e.DomainError) -> HTTPResponse:
        return domain_problem(request, error)

    @app.exception(IntegrationError)
    async def on_integration_error(request: Request, error: IntegrationError) -> HTTPResponse:
        # Frames as file:line in function only: no values, so nothing personal reaches the log.
        frames = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(error.__traceback__)]
        log.error(
            "integration error reached the API: %s",
            str(error),  # a string, so the log filter masks ID and phone numbers in it
            extra={
                "request_id": getattr(request.ctx, "request_id", None),
                "system": error.system,
                "operation": error.operation,
                "outcome": error.outcome,
                "error_type": type(error).__name__,
                "frames": " <- ".join(reversed(frames)),
            },
        )
        return domain_problem(request, e.UpstreamUnavailable(system=error.system))

    @app.exception(sanic_exceptions.SanicException)
    async def on_sanic_error(request: Request, error: sanic_exceptions.SanicException) -> HTTPResponse:
        status = int(getattr(error, "status_code", 500) or 500)
        if status == 413 and "header" in str(error).lower():
            status = 431  # Sanic reports oversized headers as 413; RFC 6585 names 431 for them
        code, zh, en = _SANIC_ERRORS.get(status, _INTERNAL)
        if status >= 500:
            log.error("sanic error", exc_info=error)
        english = wants_english(request)
        headers = dict(getattr(error, "headers", None) or {})
        if status == 405 and "Allow" not in headers:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="estate"'
        return problem(
            request,
            status=status,
            code=code,
            title=en if english else zh,
            detail=en if english else zh,
            headers=headers,
        )

    @app.exception(TortoiseValidationError)
    async def on_field_validation(request: Request, error: TortoiseValidationError) -> HTTPResponse:
        # Safety net: a value that does not fit a column (too long, out of range) reached the
        # ORM. The input was bad, not the server: 422, with no value echoed.
        log.warning("a value reached the ORM that does not fit its field: %s", type(error).__name__)
        return domain_problem(request, e.ValidationFailed())

    @app.exception(Exception)
    async def on_unexpected(request: Request, error: Exception) -> HTTPResponse:
        log.exception("unhandled error", extra={"request_id": getattr(request.ctx, "request_id", None)})
        code, zh, en = _INTERNAL
        english = wants_english(request)
        return problem(
            request, status=500, code=code, title=en if english else zh, detail=en if english else zh
        )
