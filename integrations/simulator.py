"""Base for simulators: real local HTTP servers (aiohttp.web) that behave like the external systems.

Each simulator registers its routes with an operation name. Every such route gets, for free:

* fault injection (admin API `POST /_sim/faults`, Python `sim.set_fault(...)`): `latency` (sleep,
  then answer), `error` (answer `status`, default 503, apply nothing), `timeout` (sleep longer than
  any client timeout, apply nothing, never answer), `drop` (apply the effect, then close the
  connection without an answer: the lost-response case);
* accounting of requests and applied effects per operation and per idempotency key
  (`GET /_sim/state`, `sim.applied(...)`);
* for effectful routes, deduplication by `Idempotency-Key`: a repeated key returns the stored
  original answer (header `Idempotent-Replayed: true`) without applying again; the same key with a
  different request body is refused with 422, as Stripe does.

Faults compose the way a bad network does. Each request draws independently against every active
fault that matches its operation, in the order they were set: a fault with a `probability` fires
with that chance, one without it always fires; `count` limits how many times a fault fires. Every
firing `latency` fault adds its delay; of the other modes the first that fires decides the outcome
and the rest are not drawn for that request. The draws come from `random.Random(seed)`
(`Simulator(seed=...)`, re-seeded by `reset()`), so a run with the same seed and the same requests
faults the same requests.

Exactly-once accounting is kept even where a system does not deduplicate: a subclass that answers
False from `_dedupes(request)` applies a repeated key again (as a real provider without idempotency
would), and `sim.applied(key=K)` then counts every application, so a test can tell 1 from 2.

`POST /_sim/reset` (or `sim.reset()`) forgets faults, counters, stored answers and everything the
operations created; reference data loaded from outside (e.g. the civil registry's people) stays.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from aiohttp import web

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TIMEOUT_SLEEP_S = 120.0  # "longer than any client timeout"; the handler is cancelled when the client leaves


class FaultMode(StrEnum):
    LATENCY = "latency"
    ERROR = "error"
    TIMEOUT = "timeout"
    DROP = "drop"


@dataclass
class Fault:
    mode: FaultMode
    remaining: int | None = None  # applications left; None = until cleared
    latency_ms: int | None = None
    status: int = 503
    operations: frozenset[str] | None = None  # None = every operation
    probability: float | None = None  # chance per matching request; None = every one
    applied: int = 0  # how many requests it hit so far

    def matches(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "count": self.remaining,
            "latency_ms": self.latency_ms,
            "status": self.status,
            "operations": sorted(self.operations) if self.operations is not None else None,
            "probability": self.probability,
            "applied": self.applied,
        }


@dataclass(frozen=True)
class _Hit:
    """The faults one request drew: the summed latency, and at most one fault that decides the outcome."""

    latency_s: float = 0.0
    outcome: Fault | None = None

    @property
    def faulted(self) -> bool:
        return self.latency_s > 0 or self.outcome is not None


@dataclass
class Reply:
    """What a simulated operation answers; stored as is for idempotent replays."""

    status: int
    body: Any

    def to_response(self, replayed: bool = False) -> web.Response:
        response = web.json_response(
            self.body, status=self.status, dumps=lambda o: json.dumps(o, ensure_ascii=False)
        )
        if replayed:
            response.headers[REPLAYED_HEADER] = "true"
        return response


class SimRejection(Exception):  # a reply, not a failure of the simulator
    """Raised inside a simulated operation to refuse the request with a 4xx and a remote error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.reply = Reply(status, {"code": code, "message": message})


@dataclass
class _KeyRecord:
    operation: str
    fingerprint: str
    reply: Reply | None = None  # None while the first request is being applied
    applied: int = 0
    replays: int = 0


Handler = Callable[[web.Request], Awaitable[Reply]]


@dataclass
class _Accounting:
    requests: Counter[str] = field(default_factory=Counter)
    applied: Counter[str] = field(default_factory=Counter)
    faulted: Counter[str] = field(default_factory=Counter)
    keys: dict[str, _KeyRecord] = field(default_factory=dict)


class Simulator:
    """Subclasses set `name`, register routes in `_setup_routes` and forget effects in `_reset_effects`."""

    name: str = "simulator"

    def __init__(self, *, clock: Callable[[], datetime] | None = None, seed: int | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.app = web.Application()
        self._seed = seed
        self._random = random.Random(seed)
        self._faults: list[Fault] = []
        self._acct = _Accounting()
        self._effect_lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._operations: set[str] = set()
        self._add_admin_routes()
        self._setup_routes()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host:port` (0 = an ephemeral port) on the running event loop."""
        if self._runner is not None:
            raise RuntimeError(f"{self.name} simulator already started at {self._base_url}")
        runner = web.AppRunner(self.app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        bound_host, bound_port = runner.addresses[0][:2]
        self._runner = runner
        self._base_url = f"http://{_url_host(host or bound_host)}:{bound_port}"

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._base_url = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError(f"{self.name} simulator is not running")
        return self._base_url

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    # --- Python API for in-process tests ------------------------------------------------------

    def set_fault(
        self,
        mode: FaultMode | str,
        *,
        count: int | None = None,
        latency_ms: int | None = None,
        status: int = 503,
        operations: Iterable[str] | None = None,
        probability: float | None = None,
    ) -> Fault:
        """Apply a fault to matching requests: each one (or, with `probability`, each with that
        chance) until it has hit `count` of them (None = until cleared)."""
        fault = Fault(
            mode=FaultMode(mode),
            remaining=count,
            latency_ms=latency_ms,
            status=status,
            operations=frozenset(operations) if operations is not None else None,
            probability=float(probability) if probability is not None else None,
        )
        unknown = (fault.operations or frozenset()) - set(self.operations)
        if unknown:
            raise ValueError(f"{self.name} has no operation(s) {sorted(unknown)}; it has {self.operations}")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1, or None for until cleared")
        if fault.probability is not None and not 0.0 <= fault.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1, or None for every request")
        self._faults.append(fault)
        return fault

    def reseed(self, seed: int | None) -> None:
        """Start the fault draws again from `seed` (kept by later `reset()`s)."""
        self._seed = seed
        self._random = random.Random(seed)

    def clear_faults(self) -> None:
        self._faults.clear()

    def applied(self, operation: str | None = None, *, key: str | None = None) -> int:
        """How many times an effect was applied: all, per operation, or per idempotency key."""
        if key is not None:
            record = self._acct.keys.get(key)
            return record.applied if record is not None else 0
        if operation is not None:
            return self._acct.applied[operation]
        return sum(self._acct.applied.values())

    def requests(self, operation: str | None = None) -> int:
        if operation is not None:
            return self._acct.requests[operation]
        return sum(self._acct.requests.values())

    def reset(self) -> None:
        self._faults.clear()
        self._random = random.Random(self._seed)
        self._acct = _Accounting()
        self._reset_effects()

    def state(self) -> dict[str, Any]:
        return {
            "simulator": self.name,
            "requests": dict(self._acct.requests),
            "applied": dict(self._acct.applied),
            "faulted": dict(self._acct.faulted),
            "idempotency": {
                key: {"operation": r.operation, "applied": r.applied, "replays": r.replays}
                for key, r in self._acct.keys.items()
            },
            "faults": [f.to_json() for f in self._faults],
            **self._extra_state(),
        }

    @property
    def operations(self) -> list[str]:
        return sorted(self._operations)

    # --- for subclasses -------------------------------------------------------------------------

    def _setup_routes(self) -> None:
        raise NotImplementedError

    def _reset_effects(self) -> None:
        """Forget what the operations created."""

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _dedupes(self, request: web.Request) -> bool:
        """Whether this effectful request is deduplicated by its Idempotency-Key; override for a
        system (or one of its tenants) that applies every request it receives."""
        return True

    def route(self, method: str, path: str, operation: str, handler: Handler, *, effectful: bool) -> None:
        """Register a simulated operation; effectful ones require and dedupe by Idempotency-Key."""
        self._operations.add(operation)

        async def serve(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, operation, handler, effectful)

        self.app.router.add_route(method, path, serve)

    # --- the request pipeline -----------------------------------------------------------------

    def _draw_faults(self, operation: str) -> _Hit:
        """Decide, once per request, which faults hit it (see the module docstring)."""
        latency_s = 0.0
        outcome: Fault | None = None
        for fault in list(self._faults):
            if not fault.matches(operation) or (outcome is not None and fault.mode is not FaultMode.LATENCY):
                continue
            if fault.probability is not None and self._random.random() >= fault.probability:
                continue
            fault.applied += 1
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
            if fault.mode is FaultMode.LATENCY:
                latency_s += (fault.latency_ms or 0) / 1000
            else:
                outcome = fault
        return _Hit(latency_s, outcome)

    async def _serve(
        self, request: web.Request, operation: str, handler: Handler, effectful: bool
    ) -> web.StreamResponse:
        self._acct.requests[operation] += 1
        hit = self._draw_faults(operation)
        fault = hit.outcome
        if hit.faulted:
            self._acct.faulted[operation] += 1
        if hit.latency_s:
            await asyncio.sleep(hit.latency_s)
        if fault is not None and fault.mode is FaultMode.ERROR:
            return Reply(
                fault.status, {"code": "SIMULATED_FAULT", "message": f"injected HTTP {fault.status}"}
            ).to_response()
        if fault is not None and fault.mode is FaultMode.TIMEOUT:
            await asyncio.sleep((fault.latency_ms or 0) / 1000 or TIMEOUT_SLEEP_S)
            return _drop(request)
        reply, replayed = await self._apply(request, operation, handler, effectful)
        if fault is not None and fault.mode is FaultMode.DROP:
            return _drop(request)
        return reply.to_response(replayed)

    async def _apply(
        self, request: web.Request, operation: str, handler: Handler, effectful: bool
    ) -> tuple[Reply, bool]:
        if not effectful:
            return await self._run(request, handler), False
        if not self._dedupes(request):
            return await self._apply_every_time(request, operation, handler), False
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if not key:
            return Reply(
                400, {"code": "IDEMPOTENCY_KEY_REQUIRED", "message": "send an Idempotency-Key"}
            ), False
        fingerprint = hashlib.sha256(
            request.method.encode() + b" " + request.path.encode() + b"\n" + await request.read()
        ).hexdigest()
        async with self._effect_lock:
            record = self._acct.keys.get(key)
            if record is not None:
                if record.operation != operation or record.fingerprint != fingerprint:
                    return Reply(
                        422,
                        {"code": "IDEMPOTENCY_KEY_REUSED", "message": "key already used for another request"},
                    ), False
                if record.reply is not None:
                    record.replays += 1
                    return record.reply, True
            reply = await self._run(request, handler)
            if reply.status >= 500:
                return reply, False  # nothing was applied; the same key may try again
            record = _KeyRecord(operation=operation, fingerprint=fingerprint, reply=reply)
            self._acct.keys[key] = record
            if 200 <= reply.status < 300:
                record.applied += 1
                self._acct.applied[operation] += 1
            return reply, False

    async def _apply_every_time(self, request: web.Request, operation: str, handler: Handler) -> Reply:
        """No deduplication: apply whatever arrives, and still count applications per key."""
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        async with self._effect_lock:
            reply = await self._run(request, handler)
            if not 200 <= reply.status < 300:
                return reply
            self._acct.applied[operation] += 1
            if key:
                record = self._acct.keys.get(key)
                if record is None:
                    record = self._acct.keys[key] = _KeyRecord(operation=operation, fingerprint="")
                record.reply = reply
                record.applied += 1
            return reply

    async def _run(self, request: web.Request, handler: Handler) -> Reply:
        try:
            return await handler(request)
        except SimRejection as rejection:
            return rejection.reply

    # --- admin API ------------------------------------------------------------------------------

    def _add_admin_routes(self) -> None:
        self.app.router.add_post("/_sim/faults", self._admin_add_fault)
        self.app.router.add_delete("/_sim/faults", self._admin_clear_faults)
        self.app.router.add_get("/_sim/state", self._admin_state)
        self.app.router.add_post("/_sim/reset", self._admin_reset)

    async def _admin_add_fault(self, request: web.Request) -> web.Response:
        try:
            body = await json_object(request)
            count = body.get("count")
            latency = body.get("latency_ms")
            operations = body.get("operations")
            probability = body.get("probability")
            fault = self.set_fault(
                str(body["mode"]),
                count=int(count) if count is not None else None,
                latency_ms=int(latency) if latency is not None else None,
                status=int(body.get("status", 503)),
                operations=[str(o) for o in operations] if operations is not None else None,
                probability=float(probability) if probability is not None else None,
            )
        except SimRejection as rejection:
            return rejection.reply.to_response()
        except (KeyError, TypeError, ValueError) as exc:
            return Reply(400, {"code": "BAD_FAULT", "message": str(exc)}).to_response()
        return Reply(201, {"fault": fault.to_json()}).to_response()

    async def _admin_clear_faults(self, request: web.Request) -> web.Response:
        cleared = len(self._faults)
        self.clear_faults()
        return Reply(200, {"cleared": cleared}).to_response()

    async def _admin_state(self, request: web.Request) -> web.Response:
        return Reply(200, self.state()).to_response()

    async def _admin_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return Reply(200, {"reset": True}).to_response()


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer; the client sees a disconnect."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --- helpers for simulated operations -------------------------------------------------------------


async def json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise SimRejection(400, "BAD_REQUEST", "body is not JSON") from exc
    if not isinstance(body, dict):
        raise SimRejection(400, "BAD_REQUEST", "body must be a JSON object")
    return body


def required(body: dict[str, Any], name: str, kind: type | tuple[type, ...] = str) -> Any:
    """A field that must be present, of `kind`, and (for strings) not blank."""
    value = body.get(name)
    if value is None or not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise SimRejection(400, "BAD_REQUEST", f"field {name!r} is missing or invalid")
    return value


def parse_aware_datetime(value: Any, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise SimRejection(400, "BAD_REQUEST", f"{name} is not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        raise SimRejection(400, "BAD_REQUEST", f"{name} must carry a UTC offset")
    return parsed
