"""`otp-timing`: does the time of POST /api/v1/auth/sms-codes tell registered phones apart?

Issue 8, item 7: before the fix the request looked the phone up and sent the SMS for a registered
phone only (median 7.4 ms against 2.0 ms). The scenario asks for a code for `--users` registered
phones and as many unregistered ones, interleaved (registered, unregistered, registered, ...),
one request at a time so each latency is the server's alone, and reports both medians and their
ratio. Target: medians within 10 % of each other.

The server must allow that many code requests from one address within the hour:
start it with `ESTATE_OTP_HOURLY_CAP_PER_IP=100000` (docs/security.md#benchmark).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

import aiohttp

from bench.scenarios import Options, demo_phones

TARGET_RATIO = 1.10


def _unregistered(registered: set[str], n: int, seed: int = 8) -> list[str]:
    """Phones in a 199 range the demo does not hand out, none of them registered."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        phone = f"199{rng.randrange(10**8):08d}"
        if phone not in registered and phone not in out:
            out.append(phone)
    return out


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(samples), 3),
        "p10_ms": round(ordered[len(ordered) // 10], 3),
        "p90_ms": round(ordered[len(ordered) * 9 // 10], 3),
        "mean_ms": round(statistics.fmean(samples), 3),
    }


async def run(opts: Options) -> dict[str, Any]:
    """POST /api/v1/auth/sms-codes for registered and unregistered phones, interleaved."""
    registered, source = await demo_phones(opts)
    if len(registered) < opts.users:
        raise SystemExit(f"only {len(registered)} registered phones found ({source}); seed the demo first")
    unregistered = _unregistered(set(registered), len(registered))
    times: dict[str, list[float]] = {"registered": [], "unregistered": []}
    url = f"{opts.base_url}/api/v1/auth/sms-codes"
    async with aiohttp.ClientSession() as session:
        warm_up = _unregistered(set(registered) | set(unregistered), 20, seed=9)
        for warm in warm_up:  # not counted
            async with session.post(url, json={"phone": warm}) as response:
                await response.read()
        for reg, unreg in zip(registered, unregistered, strict=True):
            for kind, phone in (("registered", reg), ("unregistered", unreg)):
                for _attempt in range(3):
                    started = time.perf_counter()
                    async with session.post(url, json={"phone": phone}) as response:
                        body = await response.read()
                        status = response.status
                        retry_after = int(response.headers.get("Retry-After", "0") or 0)
                    elapsed = (time.perf_counter() - started) * 1000
                    if status == 429 and 0 < retry_after <= 61:  # this phone asked in an earlier run
                        await asyncio.sleep(retry_after + 0.5)
                        continue
                    break
                if status != 202:
                    raise SystemExit(
                        f"sms-codes answered {status} ({body[:160]!r}): start the server with "
                        "ESTATE_OTP_HOURLY_CAP_PER_IP=100000 and fresh phones (one code a minute per phone)"
                    )
                times[kind].append(elapsed)
    reg_s, unreg_s = _summary(times["registered"]), _summary(times["unregistered"])
    ratio = max(reg_s["median_ms"], unreg_s["median_ms"]) / min(reg_s["median_ms"], unreg_s["median_ms"])
    return {
        "setup": {"phones_from": source, "pairs": len(registered), "order": "interleaved, one at a time"},
        "runs": {},
        "timing": {
            "registered": reg_s,
            "unregistered": unreg_s,
            "median_ratio": round(ratio, 3),
            "target_ratio_at_most": TARGET_RATIO,
            "met": ratio <= TARGET_RATIO,
        },
    }
