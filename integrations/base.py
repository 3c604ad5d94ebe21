"""Shared work of every external-system contract: timing, logging, metrics, error mapping, retries.

A contract (e.g. `TaxSystem`) subclasses `ExternalSystem`; its public methods call `self._call(...)`,
which does the shared work once and then runs the adapter's `_operation`. The HTTP adapters add
`HttpAdapter`, which speaks JSON over an injected aiohttp session and maps every transport failure
into `integrations.errors` (GOV.UK Notify's `send_sms` -> `try_send_sms`, httpx's exception mapping).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from abc import ABC
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import aiohttp
import httpx
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from integrations.errors import (
    IntegrationError,
    MalformedResponse,
    RequestRejected,
    SystemTimeout,
    SystemUnavailable,
)
from standards import gb11643

T = TypeVar("T")

logger = logging.getLogger("integrations")

IDEMPOTENCY_HEADER = "Idempotency-Key"


# --- masking -----------------------------------------------------------------------------------


def mask_id(value: str | None) -> str:
    """An ID number as logs show it (`1101**********1239`): the one mask, `standards.gb11643.mask`."""
    return gb11643.mask(value)


def mask_phone(value: str | None) -> str:
    if not value:
        return ""
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


# --- metrics -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntegrationMetrics:
    calls: Counter
    duration: Histogram
    retries: Counter

    def observe(self, system: str, operation: str, outcome: str, seconds: float) -> None:
        self.calls.labels(system=system, operation=operation, outcome=outcome).inc()
        self.duration.labels(system=system, operation=operation, outcome=outcome).observe(seconds)


_METRICS: WeakKeyDictionary[CollectorRegistry, IntegrationMetrics] = WeakKeyDictionary()
_LABELS = ("system", "operation", "outcome")


def integration_metrics(registry: CollectorRegistry | None = None) -> IntegrationMetrics:
    """The metrics for `registry` (default: the process registry), created once per registry."""
    registry = registry if registry is not None else REGISTRY
    found = _METRICS.get(registry)
    if found is None:
        found = IntegrationMetrics(
            calls=_collector(registry, Counter, "integration_calls", "Calls to external systems", _LABELS),
            duration=_collector(
                registry,
                Histogram,
                "integration_call_duration_seconds",
                "Duration of calls to external systems, retries included",
                _LABELS,
            ),
            retries=_collector(
                registry, Counter, "integration_retries", "Retried attempts", ("system", "operation")
            ),
        )
        _METRICS[registry] = found
    return found


def _collector(registry: CollectorRegistry, kind: Any, name: str, doc: str, labels: tuple[str, ...]) -> Any:
    try:
        return kind(name, doc, labels, registry=registry)
    except ValueError:
        # Already registered on this registry (e.g. the module was imported twice): reuse it.
        existing = registry._names_to_collectors.get(name)
        if existing is None:
            existing = registry._names_to_collectors.get(name + "_total")
        if existing is None:
            raise
        return existing


# --- the contract base -------------------------------------------------------------------------


class ExternalSystem(ABC):  # noqa: B024 - the contracts below declare the abstract `_op`s
    """Base of every contract. Public methods go through `_call`; adapters implement `_op` methods."""

    system: str = "external"

    def __init__(self, *, metrics: IntegrationMetrics | None = None) -> None:
        self._metrics = metrics if metrics is not None else integration_metrics()

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]], **log_fields: Any) -> T:
        """Time, log (fields must already be masked), count and map errors of one logical call."""
        started = time.perf_counter()
        try:
            result = await call()
        except IntegrationError as exc:
            self._finish(operation, exc.outcome, started, log_fields, exc)
            raise
        except TimeoutError as exc:
            error = SystemTimeout("no answer in time", system=self.system, operation=operation)
            self._finish(operation, error.outcome, started, log_fields, error)
            raise error from exc
        except (aiohttp.ClientError, httpx.HTTPError) as exc:  # a safety net: adapters map these first
            unavailable = SystemUnavailable(type(exc).__name__, system=self.system, operation=operation)
            self._finish(operation, unavailable.outcome, started, log_fields, unavailable)
            raise unavailable from exc
        except Exception:
            self._finish(operation, "bug", started, log_fields, None)
            raise
        self._finish(operation, "ok", started, log_fields, None)
        return result

    def _finish(
        self,
        operation: str,
        outcome: str,
        started: float,
        log_fields: Mapping[str, Any],
        error: IntegrationError | None,
    ) -> None:
        seconds = time.perf_counter() - started
        self._metrics.observe(self.system, operation, outcome, seconds)
        extra = {
            "event": "integration_call",
            "system": self.system,
            "operation": operation,
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 1),
            **log_fields,
        }
        if error is None and outcome == "ok":
            logger.info("%s.%s ok", self.system, operation, extra=extra)
        elif error is None:
            logger.exception("%s.%s failed unexpectedly", self.system, operation, extra=extra)
        else:
            extra["error"] = type(error).__name__
            extra["error_code"] = getattr(error, "code", None)
            logger.warning("%s.%s %s: %s", self.system, operation, outcome, error.message, extra=extra)

    @contextmanager
    def _parsing(self, operation: str) -> Iterator[None]:
        """Turn a surprise in the other side's answer into MalformedResponse."""
        try:
            yield
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponse(
                f"unexpected answer: {type(exc).__name__}: {exc}", system=self.system, operation=operation
            ) from exc


# --- retries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; `attempts` counts the first try."""

    attempts: int = 3
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 2.0
    jitter_s: float = 0.1

    @classmethod
    def none(cls) -> RetryPolicy:
        return cls(attempts=1)

    def retrying(self, on_retry: Callable[[RetryCallState], None] | None = None) -> AsyncRetrying:
        """Retry only SystemUnavailable (and so SystemTimeout); the last error is re-raised."""
        return AsyncRetrying(
            retry=retry_if_exception_type(SystemUnavailable),
            stop=stop_after_attempt(max(1, self.attempts)),
            wait=wait_exponential_jitter(
                multiplier=self.initial_backoff_s, max=self.max_backoff_s, jitter=self.jitter_s
            ),
            before_sleep=on_retry,
            reraise=True,
        )


async def run_with_retries(
    policy: RetryPolicy,
    call: Callable[[], Awaitable[T]],
    *,
    may_retry: bool,
    on_retry: Callable[[RetryCallState], None] | None = None,
) -> T:
    """Run `call`, retrying per `policy` only when `may_retry` (an idempotent read, or a keyed effect)."""
    if not may_retry:
        return await call()
    attempt = 0
    try:
        async for try_ in policy.retrying(on_retry):
            with try_:
                attempt += 1
                return await call()
    except SystemUnavailable as exc:
        exc.attempts = attempt
        raise
    raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover


# --- the aiohttp adapter base ------------------------------------------------------------------


def error_fields(body: Any) -> tuple[str | None, str | None]:
    """Read `{"code": ..., "message": ...}`, the error shape our simulated systems share."""
    if isinstance(body, Mapping):
        code, message = body.get("code"), body.get("message")
        return (str(code) if code is not None else None, str(message) if message is not None else None)
    return None, None


# HTTP statuses that mean "the other side is busy or gone, try again" although they are 4xx.
RETRYABLE_4XX = frozenset({408, 425, 429})


class HttpAdapter(ExternalSystem):
    """JSON over HTTP with an injected aiohttp session, a per-call timeout and a retry policy.

    Effectful calls must carry an idempotency key (sent as `Idempotency-Key`); only those and
    idempotent reads are retried, so a retry can never apply an effect twice.
    """

    def __init__(
        self,
        *,
        base_url: str,
        session: aiohttp.ClientSession,
        timeout_s: float,
        retry: RetryPolicy,
        metrics: IntegrationMetrics | None = None,
        **contract_kwargs: Any,
    ) -> None:
        super().__init__(metrics=metrics, **contract_kwargs)
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retry = retry

    async def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        idempotent: bool = False,
    ) -> Any:
        """Send one logical request (with retries) and return the decoded JSON body of a 2xx answer."""
        sent_headers = dict(headers or {})
        if idempotency_key is not None:
            sent_headers[IDEMPOTENCY_HEADER] = idempotency_key

        async def attempt() -> Any:
            return await self._send_once(operation, method, path, json_body, form, data, sent_headers)

        def on_retry(state: RetryCallState) -> None:
            self._metrics.retries.labels(system=self.system, operation=operation).inc()
            logger.info(
                "%s.%s retrying",
                self.system,
                operation,
                extra={
                    "event": "integration_retry",
                    "system": self.system,
                    "operation": operation,
                    "attempt": state.attempt_number,
                },
            )

        return await run_with_retries(
            self._retry, attempt, may_retry=idempotent or idempotency_key is not None, on_retry=on_retry
        )

    async def _send_once(
        self,
        operation: str,
        method: str,
        path: str,
        json_body: Any,
        form: Mapping[str, str] | None,
        data: bytes | None,
        headers: dict[str, str],
    ) -> Any:
        url = self.base_url + path
        kwargs: dict[str, Any] = {"headers": headers, "timeout": self._timeout}
        if data is not None:
            kwargs["data"] = data
        elif form is not None:
            kwargs["data"] = dict(form)
        elif json_body is not None:
            kwargs["data"] = json.dumps(json_body, ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        try:
            async with self._session.request(method, url, **kwargs) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError as exc:  # aiohttp's own timeouts subclass TimeoutError too
            raise SystemTimeout(
                f"no answer within {self._timeout.total}s", system=self.system, operation=operation
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise SystemUnavailable(
                f"{type(exc).__name__} talking to {self._host()}", system=self.system, operation=operation
            ) from exc
        return self._decode(operation, status, raw)

    def _decode(self, operation: str, status: int, raw: bytes) -> Any:
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                if 200 <= status < 300:
                    raise MalformedResponse(
                        f"HTTP {status} with a body that is not JSON", system=self.system, operation=operation
                    ) from exc
        if 200 <= status < 300:
            return body
        code, message = self._error_fields(body)
        if status >= 500 or status in RETRYABLE_4XX:
            raise SystemUnavailable(
                f"HTTP {status}" + (f" {code}: {message}" if code else ""),
                system=self.system,
                operation=operation,
                status=status,
            )
        if 400 <= status < 500:
            raise RequestRejected(
                message or f"HTTP {status}",
                system=self.system,
                operation=operation,
                code=code or f"HTTP_{status}",
                status=status,
            )
        raise MalformedResponse(f"unexpected HTTP {status}", system=self.system, operation=operation)

    def _error_fields(self, body: Any) -> tuple[str | None, str | None]:
        """Where this system puts its error code and message; override for another shape."""
        return error_fields(body)

    def _host(self) -> str:
        return self.base_url.split("://", 1)[-1].split("/", 1)[0]
