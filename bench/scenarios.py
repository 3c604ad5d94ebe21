"""Named scenarios. Each returns a JSON-ready section: the load summary per endpoint and the cost
of the server that answered it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bench.load import LoadResult, RequestFactory, run_load
from bench.procinfo import ServerWatch, pids_listening_on

ROOT = Path(__file__).resolve().parents[1]
TOKEN_CACHE_DIR = ROOT / "var" / "bench"
START_TIMEOUT_S = 30.0
_PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_PERSON_PHONES = "SELECT phone_enc FROM person WHERE phone_enc IS NOT NULL ORDER BY id LIMIT {limit:d}"


@dataclass
class Options:
    base_url: str
    connections: int
    duration_s: float
    warmup_s: float
    max_requests: int
    users: int
    phones_file: Path | None
    sms_url: str
    server_pid: int | None
    database_url: str
    ceiling_port: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(
    opts: Options, name: str, base_url: str, pids: list[int], make_request: RequestFactory
) -> dict[str, Any]:
    print(f"[bench] {name}: {opts.connections} connections, {opts.duration_s:g}s", flush=True)
    async with ServerWatch(pids) as watch:
        result: LoadResult = await run_load(
            name,
            base_url,
            make_request,
            connections=opts.connections,
            duration_s=opts.duration_s,
            warmup_s=opts.warmup_s,
            max_requests=opts.max_requests,
        )
    return {**result.summary(), "server": watch.summary()}


# --- who signs in --------------------------------------------------------------------------------


async def _phones_from_database(database_url: str, limit: int) -> list[str]:
    """Phones of real-name persons, read from the API's database (read-only)."""
    tokens = await _first_column(database_url, _PERSON_PHONES.format(limit=limit))
    return _decrypt_phones(database_url, tokens)


def _decrypt_phones(database_url: str, tokens: list[str]) -> list[str]:
    """Phones are stored encrypted (docs/decisions/0002-personal-data-at-rest.md): read them with
    the keys the API runs with, from the same environment (.env, an embedded install's key files)."""
    if not tokens:
        return []
    from cryptography.exceptions import InvalidTag

    from config.settings import load_settings
    from services.identity.install_keys import with_install_secrets
    from services.pii import PiiVault

    vault = PiiVault.from_settings(with_install_secrets(load_settings(database_url=database_url)))
    try:
        return [vault.decrypt_phone(token) for token in tokens]
    except (InvalidTag, ValueError):
        raise SystemExit(
            "the phones in the database do not decrypt with this environment's keys: run the bench "
            "with the API's ESTATE_PII_KEY, or pass --phones-file"
        ) from None


async def _first_column(database_url: str, sql: str) -> list[str]:
    if database_url.startswith("sqlite://"):
        path = ROOT / database_url.removeprefix("sqlite://")
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            try:
                return [row[0] for row in db.execute(sql)]
            except sqlite3.Error:
                return []
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        return [row[0] for row in await conn.fetch(sql)]
    finally:
        await conn.close()


async def demo_phones(opts: Options) -> tuple[list[str], str]:
    """Up to `opts.users` phones, and where they came from: --phones-file, else the database, else
    the identities listed in docs/demo.md."""
    if opts.phones_file:
        text = opts.phones_file.read_text(encoding="utf-8")
        phones = json.loads(text) if text.lstrip().startswith("[") else _PHONE.findall(text)
        return list(dict.fromkeys(phones))[: opts.users], str(opts.phones_file)
    phones = await _phones_from_database(opts.database_url, opts.users)
    if phones:
        return phones, f"database ({opts.database_url})"
    demo_doc = ROOT / "docs" / "demo.md"
    if demo_doc.exists():
        found = list(dict.fromkeys(_PHONE.findall(demo_doc.read_text(encoding="utf-8"))))
        return found[: opts.users], "docs/demo.md"
    return [], "nowhere"


# --- signing in ----------------------------------------------------------------------------------


class SignInRefused(Exception):
    pass


async def _inbox_ids(session: aiohttp.ClientSession, sms_url: str, phone: str) -> list[dict[str, Any]]:
    async with session.get(f"{sms_url}/messages", params={"phone": phone}) as response:
        response.raise_for_status()
        messages: list[dict[str, Any]] = await response.json()
        return messages


async def sign_in(session: aiohttp.ClientSession, opts: Options, phone: str) -> dict[str, Any]:
    """SMS code -> read it from the simulator's inbox -> token pair."""
    before = {m.get("message_id") for m in await _inbox_ids(session, opts.sms_url, phone)}
    async with session.post(f"{opts.base_url}/api/v1/auth/sms-codes", json={"phone": phone}) as response:
        if response.status != 202:
            raise SignInRefused(f"sms-codes {response.status}: {(await response.text())[:200]}")
    deadline = time.monotonic() + 10
    code = None
    while code is None:
        fresh = [
            m for m in await _inbox_ids(session, opts.sms_url, phone) if m.get("message_id") not in before
        ]
        if fresh:
            params = fresh[0].get("params") or {}
            code = params.get("code") or (re.findall(r"\d{6}", fresh[0].get("text", "")) or [None])[0]
        elif time.monotonic() > deadline:
            raise SignInRefused("no SMS arrived in the simulator inbox within 10s")
        else:
            await asyncio.sleep(0.1)
    async with session.post(
        f"{opts.base_url}/api/v1/auth/tokens", json={"phone": phone, "code": code}
    ) as response:
        if response.status != 200:
            raise SignInRefused(f"tokens {response.status}: {(await response.text())[:200]}")
        body: dict[str, Any] = await response.json()
    return {
        "access_token": body["access_token"],
        "refresh_token": body.get("refresh_token"),
        "expires_at": time.time() + int(body["expires_in"]),
    }


async def _refresh(
    session: aiohttp.ClientSession, opts: Options, cached: dict[str, Any]
) -> dict[str, Any] | None:
    if not cached.get("refresh_token"):
        return None
    async with session.post(
        f"{opts.base_url}/api/v1/auth/refresh", json={"refresh_token": cached["refresh_token"]}
    ) as response:
        if response.status != 200:
            return None
        body = await response.json()
    return {
        "access_token": body["access_token"],
        "refresh_token": body.get("refresh_token"),
        "expires_at": time.time() + int(body["expires_in"]),
    }


async def _still_valid(session: aiohttp.ClientSession, opts: Options, cached: dict[str, Any]) -> bool:
    if cached.get("expires_at", 0) < time.time() + opts.warmup_s + opts.duration_s + 60:
        return False
    headers = {"Authorization": f"Bearer {cached['access_token']}"}
    async with session.get(f"{opts.base_url}/api/v1/me", headers=headers) as response:
        return response.status == 200


def _cache_path(base_url: str) -> Path:
    parts = urlsplit(base_url)
    return TOKEN_CACHE_DIR / f"tokens-{parts.hostname}-{parts.port}.json"


async def citizen_tokens(opts: Options) -> tuple[list[str], dict[str, Any]]:
    """Access tokens for up to `opts.users` demo citizens.

    Sign-in codes are rate limited per phone (cool-down) and per client IP per hour, and the
    harness always comes from 127.0.0.1; so tokens are kept in var/bench/ and reused or
    refreshed by the next run, and a phone that is refused is skipped.
    """
    phones, source = await demo_phones(opts)
    if not phones:
        raise SystemExit(
            "no demo phones found: start the demo (python3 dev.py demo),"
            " or pass --phones-file or --database-url"
        )
    cache_file = _cache_path(opts.base_url)
    cache: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        cache = json.loads(cache_file.read_text())
    tokens: dict[str, dict[str, Any]] = {}
    refused: list[str] = []
    counts = {"reused": 0, "refreshed": 0, "signed_in": 0}
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for phone in phones:
            cached = cache.get(phone)
            if cached and await _still_valid(session, opts, cached):
                tokens[phone], how = cached, "reused"
            elif cached and (renewed := await _refresh(session, opts, cached)):
                tokens[phone], how = renewed, "refreshed"
            else:
                try:
                    tokens[phone], how = await sign_in(session, opts, phone), "signed_in"
                except SignInRefused as exc:
                    refused.append(f"{phone[:3]}****{phone[-4:]}: {exc}")
                    continue
            counts[how] += 1
    if not tokens:
        raise SystemExit(
            "no citizen could sign in:\n  "
            + "\n  ".join(refused)
            + "\nA 429 is the sign-in rate limit: wait, or restart the server with"
            " ESTATE_OTP_HOURLY_CAP_PER_IP=100000 for benchmarking."
        )
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache.update(tokens)
    cache_file.write_text(json.dumps(cache, indent=1))
    setup = {
        "phones_from": source,
        "users": len(tokens),
        **counts,
        "refused": refused,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return [t["access_token"] for t in tokens.values()], setup


# --- scenarios -----------------------------------------------------------------------------------


async def signin_me(opts: Options) -> dict[str, Any]:
    """Sign in N demo citizens once, then GET /api/v1/me with their tokens, round robin."""
    tokens, setup = await citizen_tokens(opts)
    print(f"[bench] {setup['users']} citizens ready ({setup['phones_from']})", flush=True)
    headers = [{"Authorization": f"Bearer {token}"} for token in tokens]

    def me(i: int) -> tuple[str, str, dict[str, str], Any]:
        return "GET", "/api/v1/me", headers[i % len(headers)], None

    pids = (
        pids_listening_on(urlsplit(opts.base_url).port or 80)
        if opts.server_pid is None
        else [opts.server_pid]
    )
    run = await measure(opts, "GET /api/v1/me", opts.base_url, pids, me)
    return {"setup": setup, "runs": {"GET /api/v1/me": run}}


async def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the ceiling app exited with {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise SystemExit(f"the ceiling app did not answer {url} within {START_TIMEOUT_S:g}s")
            await asyncio.sleep(0.2)


@dataclass(frozen=True)
class CeilingApp:
    base_url: str
    command: list[str]
    pid: int


@contextlib.asynccontextmanager
async def ceiling_app(database_url: str, *, port: int = 0, workers: int = 1) -> AsyncIterator[CeilingApp]:
    """bench/ceiling_app.py in a subprocess, answering; stopped (terminated, killed if it must)
    when the block ends."""
    port = port or free_port()
    command = [sys.executable, "-m", "bench.ceiling_app", "--port", str(port), "--database-url", database_url]
    if workers != 1:
        command += ["--workers", str(workers)]
    base_url = f"http://127.0.0.1:{port}"
    print(f"[bench] starting the ceiling app on {base_url}", flush=True)
    process = subprocess.Popen(command, cwd=ROOT)  # noqa: ASYNC220 - started once, before the load
    try:
        await wait_until_up(f"{base_url}/ceiling/json", process)
        yield CeilingApp(base_url, command, process.pid)
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 10)


async def ceiling(opts: Options) -> dict[str, Any]:
    """The bare framework on this machine: bench/ceiling_app.py in a subprocess, one worker."""
    async with ceiling_app(opts.database_url, port=opts.ceiling_port) as app:
        runs = {}
        for path in ("/ceiling/json", "/ceiling/db"):

            def request(i: int, path: str = path) -> tuple[str, str, dict[str, str], Any]:
                return "GET", path, {}, None

            runs[f"GET {path}"] = await measure(opts, f"ceiling GET {path}", app.base_url, [app.pid], request)
        return {"command": " ".join(app.command), "runs": runs}


# --- my properties (docs/properties.md) -----------------------------------------------------------

# Citizens holding 1 to 5 current rights: the ordinary owner the list is built for.
_HOLDER_PHONES = """
SELECT p.phone_enc FROM person p
  JOIN right_holder h ON h.person_id = p.id
  JOIN "right" r ON r.id = h.right_id AND r.status = 'current'
 WHERE p.phone_enc IS NOT NULL
 GROUP BY p.id, p.phone_enc
HAVING COUNT(*) BETWEEN 1 AND 5
 ORDER BY p.id
 LIMIT {limit:d}
"""


async def _holder_phones(database_url: str, limit: int) -> list[str]:
    tokens = await _first_column(database_url, _HOLDER_PHONES.format(limit=limit))
    return _decrypt_phones(database_url, tokens)


async def my_properties(opts: Options) -> dict[str, Any]:
    """Citizens with 1-5 current rights each, signed in once, GET /api/v1/me/properties round robin.

    After each citizen's first read the list comes from the per-person cache; every read still
    appends one entry to the access log, so this measures the cache and the audit chain's lock.
    """
    if opts.phones_file is None:  # --phones-file wins; otherwise the holders, from the database
        phones = await _holder_phones(opts.database_url, opts.users)
        if not phones:
            raise SystemExit("no citizen with 1-5 rights and a phone in the database: seed the demo first")
        phones_file = TOKEN_CACHE_DIR / "holder-phones.json"
        phones_file.parent.mkdir(parents=True, exist_ok=True)
        phones_file.write_text(json.dumps(phones))
        opts = replace(opts, phones_file=phones_file)
    tokens, setup = await citizen_tokens(opts)
    print(f"[bench] {setup['users']} property holders ready ({setup['phones_from']})", flush=True)
    headers = [{"Authorization": f"Bearer {token}"} for token in tokens]

    def properties(i: int) -> tuple[str, str, dict[str, str], Any]:
        return "GET", "/api/v1/me/properties", headers[i % len(headers)], None

    pids = (
        pids_listening_on(urlsplit(opts.base_url).port or 80)
        if opts.server_pid is None
        else [opts.server_pid]
    )
    run = await measure(opts, "GET /api/v1/me/properties", opts.base_url, pids, properties)
    return {"setup": setup, "runs": {"GET /api/v1/me/properties": run}}


async def otp_timing(opts: Options) -> dict[str, Any]:
    """Sign-in code requests, registered and unregistered phones interleaved: equal medians?"""
    from bench.otp_timing import run

    return await run(opts)


async def register_reads(opts: Options) -> dict[str, Any]:
    """A citizen's property list and a clerk's look-up, on a sample spread over the register."""
    from bench.register_reads import register_reads as run

    return await run(opts)


SCENARIOS: dict[str, Callable[[Options], Awaitable[dict[str, Any]]]] = {
    "signin-me": signin_me,
    "otp-timing": otp_timing,
    "ceiling": ceiling,
    "my-properties": my_properties,
    "register-reads": register_reads,
}
