"""Authentication and role checks for routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

from sanic import Request

from services.errors import AuthenticationRequired, PermissionDenied
from services.identity.tokens import Principal

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def client_ip(request: Request) -> str:
    """The caller's address as rate limits key it: the proxy-reported one when PROXIES_COUNT says
    how many proxies to trust (Sanic's `remote_addr`), else the peer's."""
    return request.remote_addr or request.ip or "unknown"


async def current_principal(request: Request) -> Principal:
    cached = getattr(request.ctx, "principal", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired()
    services = request.app.ctx.services
    principal = await services.auth.authenticate(token.strip())
    if principal.role == "bank" and principal.bank_code:
        # Suspension counts from the bank's next request, not from its token's expiry.
        await services.banks.ensure_active(principal.bank_code)
    request.ctx.principal = principal
    return principal


def requires(*roles: str, scope: str | None = None) -> Callable[[F], F]:
    """The route needs a signed-in caller with one of `roles` (citizen, clerk, admin, bank,
    organisation) and `scope`, for API clients."""

    def decorator(handler: F) -> F:
        @wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Any:
            principal = await current_principal(request)
            if roles and principal.role not in roles:
                raise PermissionDenied(required_roles=list(roles))
            # API clients (banks', organisations' systems) hold scopes; staff who sign in do not.
            is_client = principal.subject.startswith("client:")
            if scope is not None and is_client and scope not in principal.scopes:
                raise PermissionDenied(required_scope=scope)
            return await handler(request, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
