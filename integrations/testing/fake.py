"""What every in-memory fake shares: the simulators' idempotency rules and switchable faults, no HTTP.

A fake subclasses a contract (`FakeTax(FakeSystem, TaxSystem)`) and implements its `_op`s in memory,
so the contract's `_call` still times, logs, counts and maps errors. The invariants mirror
`integrations/simulator.py`, so a unit test on a fake and an integration test on a simulator agree
(tests/integration/test_fakes_match_simulators.py runs the same scenarios on both):

* an effect needs an idempotency key, else RequestRejected(IDEMPOTENCY_KEY_REQUIRED, 400);
* a key seen before with the same operation and arguments returns the first outcome, a result or a
  refusal, without applying again; with other arguments it is RequestRejected(IDEMPOTENCY_KEY_REUSED,
  422), as Stripe and the simulators do;
* a fault raises its error before anything is applied, so the same key may try again; one set with
  `after_applying=True` applies the effect and then loses the answer (the simulators' `drop`): the
  caller sees SystemUnavailable and a retry with the same key replays the stored result;
* with a `retry` policy, SystemUnavailable is retried as `HttpAdapter` does; the default is no retry,
  so `fail_next(1)` reaches the caller.

Not mirrored: wire formats, latency and real timeouts (raise SystemTimeout instead); the simulators
stay for those.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from integrations.base import (
    ExternalSystem,
    IntegrationMetrics,
    RetryPolicy,
    integration_metrics,
    run_with_retries,
)
from integrations.errors import IntegrationError, RequestRejected, SystemUnavailable

T = TypeVar("T")

IDEMPOTENCY_KEY_REQUIRED = "IDEMPOTENCY_KEY_REQUIRED"
IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
BAD_REQUEST = "BAD_REQUEST"


@dataclass
class FakeFault:
    error: type[IntegrationError] | IntegrationError
    remaining: int | None  # None = until cleared
    operations: frozenset[str] | None  # None = every operation
    after_applying: bool

    def raise_for(self, system: str, operation: str) -> None:
        if isinstance(self.error, IntegrationError):
            raise self.error
        if issubclass(self.error, RequestRejected):
            raise RequestRejected("injected", system=system, operation=operation, code="SIMULATED_FAULT")
        raise self.error("injected fault", system=system, operation=operation)


@dataclass
class _KeyRecord:
    operation: str
    arguments: tuple[Any, ...]
    result: Any = None
    refusal: RequestRejected | None = None
    applied: int = 0
    replays: int = 0


class FakeSystem(ExternalSystem):
    """Placed before the contract, as `HttpAdapter` is: `class FakeTax(FakeSystem, TaxSystem)`."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        retry: RetryPolicy | None = None,
        metrics: IntegrationMetrics | None = None,
        **contract_kwargs: Any,
    ) -> None:
        # A registry of its own: no shared process state, and a test can read the fake's metrics.
        self.metrics_registry = CollectorRegistry()
        super().__init__(metrics=metrics or integration_metrics(self.metrics_registry), **contract_kwargs)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._retry = retry or RetryPolicy.none()
        self._faults: list[FakeFault] = []
        self._requests: Counter[str] = Counter()
        self._applied: Counter[str] = Counter()
        self._keys: dict[str, _KeyRecord] = {}

    # --- driving a test ---------------------------------------------------------------------------

    def fail_next(
        self,
        count: int | None = 1,
        error: type[IntegrationError] | IntegrationError = SystemUnavailable,
        *,
        operations: Iterable[str] | None = None,
        after_applying: bool = False,
    ) -> None:
        """The next `count` matching calls (None: until `clear_faults`) raise `error`."""
        if count is not None and count < 1:
            raise ValueError("count must be at least 1, or None for until cleared")
        self._faults.append(
            FakeFault(error, count, frozenset(operations) if operations is not None else None, after_applying)
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    def applied(self, operation: str | None = None, *, key: str | None = None) -> int:
        """How many times an effect was applied: all, per operation, or per idempotency key."""
        if key is not None:
            record = self._keys.get(key)
            return record.applied if record is not None else 0
        return self._applied[operation] if operation is not None else sum(self._applied.values())

    def requests(self, operation: str | None = None) -> int:
        """Attempts that reached the fake, retries included."""
        return self._requests[operation] if operation is not None else sum(self._requests.values())

    def reset(self) -> None:
        """Forget faults, counters, keys and what the operations created (not loaded reference data)."""
        self._faults.clear()
        self._requests.clear()
        self._applied.clear()
        self._keys.clear()
        self._reset_effects()

    def _reset_effects(self) -> None:
        """Forget what the operations created."""

    # --- for the fakes' `_op`s --------------------------------------------------------------------

    async def _read(self, operation: str, read: Callable[[], T]) -> T:
        async def attempt() -> T:
            fault = self._arrive(operation)
            if fault is not None:
                fault.raise_for(self.system, operation)
            return read()

        return await run_with_retries(self._retry, attempt, may_retry=True)

    async def _effect(
        self, operation: str, key: str, arguments: tuple[Any, ...], apply: Callable[[], T]
    ) -> T:
        """Apply once per key; `arguments` stand for the request body the simulator fingerprints."""

        async def attempt() -> T:
            fault = self._arrive(operation)
            if fault is not None and not fault.after_applying:
                fault.raise_for(self.system, operation)
            record = self._once(operation, key, arguments, apply)
            if fault is not None:
                fault.raise_for(self.system, operation)
            if record.refusal is not None:
                raise _copy(record.refusal)
            return record.result

        return await run_with_retries(self._retry, attempt, may_retry=True)

    def _refuse(self, operation: str, status: int | None, code: str, message: str = "") -> RequestRejected:
        return RequestRejected(
            message or code, system=self.system, operation=operation, code=code, status=status
        )

    def _require_text(self, operation: str, *values: object) -> None:
        """The simulators' `required`: present, a string, not blank."""
        if any(not isinstance(v, str) or not v.strip() for v in values):
            raise self._refuse(operation, 400, BAD_REQUEST, "a field is missing or invalid")

    def _arrive(self, operation: str) -> FakeFault | None:
        self._requests[operation] += 1
        for fault in self._faults:
            if fault.operations is None or operation in fault.operations:
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _once(
        self, operation: str, key: str, arguments: tuple[Any, ...], apply: Callable[[], Any]
    ) -> _KeyRecord:
        # No await between the look-up and the store: under asyncio this is atomic, like the
        # simulator's effect lock.
        key = key.strip() if isinstance(key, str) else ""
        if not key:
            return _KeyRecord(
                operation, arguments, refusal=self._refuse(operation, 400, IDEMPOTENCY_KEY_REQUIRED)
            )
        record = self._keys.get(key)
        if record is not None:
            if (record.operation, record.arguments) != (operation, arguments):
                return _KeyRecord(
                    operation, arguments, refusal=self._refuse(operation, 422, IDEMPOTENCY_KEY_REUSED)
                )
            record.replays += 1
            return record
        record = _KeyRecord(operation, arguments)
        try:
            record.result = apply()
        except RequestRejected as refusal:
            record.refusal = refusal  # stored and replayed, as the simulator stores a 4xx answer
        else:
            record.applied += 1
            self._applied[operation] += 1
        self._keys[key] = record
        return record


def _copy(refusal: RequestRejected) -> RequestRejected:
    return RequestRejected(
        refusal.message,
        system=refusal.system,
        operation=refusal.operation,
        code=refusal.code,
        status=refusal.status,
    )
