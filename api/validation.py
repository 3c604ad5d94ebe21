"""Request parsing with pydantic; every failure becomes a problem+json with field details."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from sanic import Request

from services.errors import DomainError, MalformedRequest, UnsupportedMediaType, ValidationFailed

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class DomainValueError(ValueError):
    """Carries a DomainError through pydantic, which reports only ValueErrors with their field."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(str(error))
        self.error = error


def domain_checked(check: Callable[[T], T]) -> Callable[[T], T]:
    """A domain normaliser (ID number, credit code, ...) as a pydantic validator: its error keeps
    its own code and gains the field it came from."""

    def validator(value: T) -> T:
        try:
            return check(value)
        except DomainError as exc:
            raise DomainValueError(exc) from None

    return validator


def _field_errors(exc: PydanticValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        out.append(
            {
                "field": ".".join(str(p) for p in err["loc"]) or None,
                "message": err["msg"],
                "type": err["type"],
            }
        )
    return out


def _validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        # A domain validator (e.g. an ID-number checksum) raised inside pydantic keeps its code.
        for err in exc.errors(include_url=False, include_input=False):
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, DomainValueError):
                cause.error.fields.setdefault("field", ".".join(str(p) for p in err["loc"]))
                raise cause.error from None
        errors = _field_errors(exc)
        first = errors[0]
        raise ValidationFailed(
            f"字段 {first['field']} 不合法：{first['message']}",
            f"Field {first['field']} is not valid: {first['message']}",
            errors=errors,
        ) from None


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def parse_json(request: Request, model: type[M], *, forms: bool = False) -> M:
    """The body as `model`. JSON only (`application/json` or `application/*+json`), and HTML
    form encoding where `forms` is set (OAuth2 token requests): any other type is refused with
    415, never guessed at, so a body sent as text/plain by a cross-site form is not parsed."""
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    if forms and content_type == "application/x-www-form-urlencoded":
        return _validate(model, {k: v[0] if len(v) == 1 else v for k, v in (request.form or {}).items()})
    if not request.body:
        raise MalformedRequest("请求体不能为空", "The request body is empty")
    if not _is_json(content_type):
        raise UnsupportedMediaType(
            "请求体应为 application/json",
            "The request body must be application/json",
            content_type=content_type or None,
        )
    try:
        data = request.json
    except Exception:  # Sanic raises BadRequest on invalid JSON
        raise MalformedRequest("请求体不是合法的JSON", "The request body is not valid JSON") from None
    return _validate(model, data)


def parse_query(request: Request, model: type[M]) -> M:
    data = {k: v[0] if len(v) == 1 else v for k, v in request.get_args(keep_blank_values=True).items()}
    return _validate(model, data)
