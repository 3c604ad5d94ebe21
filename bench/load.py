"""A bounded, self-stopping asyncio load generator: N connections, each sending one request at a time.

Closed loop (a connection sends its next request when the previous answer has arrived), so the
offered load adapts to the server and nothing queues up without bound on the client. The run
ends at the deadline or after `max_requests`, whichever comes first; a request still in flight
at the deadline is allowed its own timeout, then abandoned.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

MAX_CONNECTIONS = 1024
MAX_DURATION_S = 600.0
REQUEST_TIMEOUT_S = 10.0

# (method, path, headers, json body or None) for the i-th request of a run.
RequestFactory = Callable[[int], tuple[str, str, dict[str, str], Any]]


def require_loopback(base_url: str) -> None:
    """The harness is for this machine's own servers: refuse any other host."""
    host = urlsplit(base_url).hostname
    if not host:
        raise SystemExit(f"not a URL: {base_url}")
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise SystemExit(f"cannot resolve {host}: {exc}") from exc
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(f"refusing to load {host}: the harness only targets loopback addresses")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadResult:
    name: str
    connections: int
    duration_s: float
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    client_cpu_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_s)
        ms = {f"p{q}": round(percentile(ordered, q) * 1000, 3) if ordered else None for q in (50, 90, 95, 99)}
        ms["max"] = round(ordered[-1] * 1000, 3) if ordered else None
        ms["mean"] = round(sum(ordered) / len(ordered) * 1000, 3) if ordered else None
        return {
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "throughput_rps": round(self.requests / self.duration_s, 1) if self.duration_s else 0.0,
            "latency_ms": ms,
            "errors": self.errors,
            "error_rate": round(self.errors / self.requests, 6) if self.requests else None,
            "status_counts": dict(sorted(self.statuses.items())),
            "connections": self.connections,
            "client_cpu_utilisation": round(self.client_cpu_s / self.duration_s, 3)
            if self.duration_s
            else None,
        }


async def _drive(
    session: aiohttp.ClientSession,
    base_url: str,
    make_request: RequestFactory,
    connections: int,
    duration_s: float,
    max_requests: int,
    result: LoadResult | None,
) -> float:
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + duration_s

    async def connection() -> None:
        for i in counter:
            if time.perf_counter() >= deadline:
                return
            method, path, headers, body = make_request(i)
            started = time.perf_counter()
            try:
                async with session.request(method, base_url + path, headers=headers, json=body) as response:
                    await response.read()
                    status = str(response.status)
                    failed = response.status >= 400
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                status, failed = type(exc).__name__, True
            if result is not None:
                result.latencies_s.append(time.perf_counter() - started)
                result.statuses[status] += 1
                result.errors += failed

    started = time.perf_counter()
    tasks = [asyncio.create_task(connection()) for _ in range(connections)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration_s + REQUEST_TIMEOUT_S + 5)
    except TimeoutError:  # should not happen: every request has its own timeout
        for task in tasks:
            task.cancel()
    return time.perf_counter() - started


async def run_load(
    name: str,
    base_url: str,
    make_request: RequestFactory,
    *,
    connections: int,
    duration_s: float,
    warmup_s: float,
    max_requests: int,
) -> LoadResult:
    """Warm up (results discarded), then measure."""
    require_loopback(base_url)
    connections = max(1, min(connections, MAX_CONNECTIONS))
    duration_s = max(0.5, min(duration_s, MAX_DURATION_S))
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if warmup_s > 0:
            await _drive(session, base_url, make_request, connections, warmup_s, max_requests, None)
        result = LoadResult(name=name, connections=connections, duration_s=0.0)
        cpu_before = time.process_time()
        result.duration_s = await _drive(
            session, base_url, make_request, connections, duration_s, max_requests, result
        )
        result.client_cpu_s = time.process_time() - cpu_before
    return result
