"""The one error hierarchy that leaves `integrations/`.

Adapters translate every foreign exception (aiohttp, httpx, JSON decoding) into one of these
at the boundary, so services can decide on retry or refusal without knowing the transport.
`retryable` tells an outbox or a caller whether sending the same request again may succeed.
"""

from __future__ import annotations

from typing import ClassVar


class IntegrationError(Exception):
    retryable: ClassVar[bool] = False
    outcome: ClassVar[str] = "error"  # the metrics label

    def __init__(self, message: str = "", *, system: str, operation: str) -> None:
        self.system = system
        self.operation = operation
        self.message = message or self.__class__.__name__
        super().__init__(f"{system}.{operation}: {self.message}")


class SystemUnavailable(IntegrationError):
    """Connection refused or reset, 5xx, or retries exhausted. Trying again later may succeed."""

    retryable = True
    outcome = "unavailable"

    def __init__(
        self,
        message: str = "",
        *,
        system: str,
        operation: str,
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, system=system, operation=operation)
        self.status = status
        self.attempts = attempts


class SystemTimeout(SystemUnavailable):
    """No answer within the per-call timeout; whether the other side applied the call is unknown."""

    outcome = "timeout"


class RequestRejected(IntegrationError):
    """The other side understood and refused (4xx or a business refusal). Do not retry as is."""

    outcome = "rejected"

    def __init__(
        self,
        message: str = "",
        *,
        system: str,
        operation: str,
        code: str,
        status: int | None = None,
    ) -> None:
        super().__init__(message, system=system, operation=operation)
        self.code = code
        self.status = status


class AdapterNotConfigured(IntegrationError):
    """Nothing is configured to serve this call (no provider for a district, unknown bank)."""

    outcome = "not_configured"


class MalformedResponse(IntegrationError):
    """The other side answered something we cannot read. Not retried: it is a contract breach."""

    outcome = "malformed"
