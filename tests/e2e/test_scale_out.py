"""Scale-out: two API processes and two outbox workers on one PostgreSQL and one Redis share state.

Processes, as production runs them (docs/architecture.md): the simulators in their own process
(`python -m integrations.simulators`), `python -m api migrate`, `python -m api seed`, two
`python -m api serve` on two ports and two `python -m api worker`, with no simulator and no
outbox in the API processes. Then:

* a token issued by server A works on server B (same signing key, same database);
* the sign-in code cool-down hit on A applies on B (rate limits live in Redis);
* logout on A revokes the access token on B (the denylist lives in Redis);
* outbox messages are delivered exactly once between the two workers.

Needs TEST_DATABASE_URL and TEST_REDIS_URL (CI's second pass). A scratch database is created
and dropped; Redis gets a database number of its own next to TEST_REDIS_URL's (flushed), so
the rate-limit counters of this test do not reach the rest of the suite.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.support.postgres import scratch_postgres
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
START_TIMEOUT_S = 60.0
OUTBOX_MESSAGES = 40
OUTBOX_PHONE = "13800000042"  # the SMS simulator takes any mainland mobile number

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.skipif(
        not (TEST_DATABASE_URL and TEST_REDIS_URL),
        reason="needs PostgreSQL and Redis: set TEST_DATABASE_URL and TEST_REDIS_URL",
    ),
]

T = TypeVar("T")


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Cluster:
    directory: Path
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> Process:
        log = self.directory / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, *args],
                cwd=self.directory,  # not the repo: a developer's .env must not leak in
                env={**self.env, **(extra_env or {})},
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # signals meant for a child never reach pytest
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    async def run(self, name: str, *args: str, timeout_s: float = START_TIMEOUT_S) -> str:
        """A command that must finish and succeed; its output."""
        process = self.start(name, *args)
        try:
            code = await asyncio.to_thread(process.popen.wait, timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} did not finish within {timeout_s:g}s:\n{process.tail()}")
        assert code == 0, f"{name} exited with {code}:\n{process.tail()}"
        return process.log.read_text(encoding="utf-8", errors="replace")

    async def stop_all(self) -> None:
        """SIGTERM each process we started, then SIGKILL what is still running after 10 seconds."""
        running = [p for p in self.processes if p.popen.poll() is None]
        for process in running:
            process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in running:
            try:
                await asyncio.to_thread(process.popen.wait, max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                await asyncio.to_thread(process.popen.wait, 10)

    def report(self) -> str:
        return "\n\n".join(f"--- {p.name} (exit {p.popen.poll()}) ---\n{p.tail()}" for p in self.processes)


async def eventually(what: str, probe: Callable[[], Awaitable[T | None]], timeout_s: float) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s:g}s")
        await asyncio.sleep(0.1)


# --- backing services ----------------------------------------------------------------------------


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


@asynccontextmanager
async def scratch_redis(base_url: str) -> AsyncIterator[str]:
    """TEST_REDIS_URL's neighbouring database number (14 for the usual /15), flushed before and after."""
    from redis.asyncio import Redis

    number = int(urlsplit(base_url).path.strip("/") or 0)
    url = _with_path(base_url, f"/{number - 1 if number > 0 else number + 1}")
    client = Redis.from_url(url)
    try:
        await client.flushdb()
        yield url
        await client.flushdb()
    finally:
        await client.aclose()


def _ed25519_pem(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _base_env(tmp_path: Path, database_url: str, redis_url: str) -> dict[str, str]:
    """The parent's environment without our settings, plus one set of secrets for every process."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ESTATE_", "TEST_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
        PYTHONUNBUFFERED="1",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        ESTATE_SECRET_KEY=secrets.token_urlsafe(32),
        ESTATE_PII_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        ESTATE_BLIND_INDEX_KEY=secrets.token_urlsafe(32),
        ESTATE_JWT_PRIVATE_KEY_FILE=str(_ed25519_pem(tmp_path / "jwt-ed25519.pem")),
        ESTATE_SIMULATORS_IN_PROCESS="false",
        ESTATE_OUTBOX_IN_PROCESS="false",
        ESTATE_OUTBOX_POLL_INTERVAL_S="0.1",
        ESTATE_OUTBOX_BATCH_SIZE="4",
        ESTATE_EXTERNAL_TIMEOUT_S="2",
        ESTATE_LOG_LEVEL="WARNING",
        ESTATE_LOG_JSON="false",
    )
    return env


# The app's own code enqueues: the outbox API, in one transaction, as a use case would, in a
# process whose composition root has started (it registers the handler table enqueue checks).
_ENQUEUE = """
import asyncio, sys
from api.container import start_services, stop_services
from config.settings import load_settings
from services.clock import SystemClock
from services.outbox.store import enqueue
from services.messages.sms import SMS_SEND, sms_to_phone
from tortoise.transactions import in_transaction

async def main(count, phone):
    services = await start_services(load_settings(load_demo_data=False), migrate=False)
    vault = services.vault
    try:
        async with in_transaction() as conn:
            for i in range(count):
                await enqueue(
                    topic=SMS_SEND,
                    payload=sms_to_phone(
                        phone=phone,
                        template="login_code",
                        params={"code": f"{i:06d}", "minutes": "5"},
                        vault=vault,
                    ),
                    idempotency_key=f"scale-out-{i}",
                    connection=conn,
                    clock=SystemClock(),
                )
    finally:
        await stop_services(services)

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


# --- the test ------------------------------------------------------------------------------------


async def _first_phone(database_url: str, env: dict[str, str]) -> str:
    """A seeded person's phone: stored encrypted, so read with the cluster's keys."""
    import asyncpg

    from services.pii import PiiVault

    conn = await asyncpg.connect(database_url)
    try:
        phone_enc = await conn.fetchval(
            "SELECT phone_enc FROM person WHERE phone_enc IS NOT NULL ORDER BY id LIMIT 1"
        )
    finally:
        await conn.close()
    assert phone_enc, "the seed wrote no person with a phone"
    vault = PiiVault(key_b64=env["ESTATE_PII_KEY"], blind_index_key=env["ESTATE_BLIND_INDEX_KEY"])
    return vault.decrypt_phone(str(phone_enc))


async def _sign_in(http: httpx.AsyncClient, server: str, sms_url: str, phone: str) -> dict[str, Any]:
    r = await http.post(f"{server}/api/v1/auth/sms-codes", json={"phone": phone})
    assert r.status_code == 202, r.text

    async def newest_message() -> dict[str, Any] | None:
        inbox = (await http.get(f"{sms_url}/messages", params={"phone": phone})).json()
        return inbox[0] if inbox else None

    code = (await eventually("the sign-in SMS", newest_message, 10))["params"]["code"]
    r = await http.post(f"{server}/api/v1/auth/tokens", json={"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_two_servers_and_two_workers_share_state(tmp_path: Path) -> None:
    async with (
        scratch_postgres(TEST_DATABASE_URL, prefix="estate_scale") as database_url,
        scratch_redis(TEST_REDIS_URL) as redis_url,
    ):
        cluster = Cluster(tmp_path, _base_env(tmp_path, database_url, redis_url))
        failed = True
        try:
            await _scenario(cluster, database_url)
            failed = False
        finally:
            await cluster.stop_all()
            if failed:
                print(cluster.report())


async def _scenario(cluster: Cluster, database_url: str) -> None:
    simulators = cluster.start("simulators", "-m", "integrations.simulators", "--port-base", "0")

    async def overrides_line() -> dict[str, str] | None:
        assert simulators.popen.poll() is None, f"simulators exited:\n{simulators.tail()}"
        for line in simulators.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                return dict(json.loads(line))
        return None

    overrides = await eventually("the simulators' settings line", overrides_line, START_TIMEOUT_S)
    cluster.env.update({f"ESTATE_{key.upper()}": str(value) for key, value in overrides.items()})
    sms_url = overrides["sms_gateway_url"]

    await cluster.run("migrate", "-m", "api", "migrate")
    await cluster.run("seed", "-m", "api", "seed", "--persons", "50", "--units", "60", timeout_s=120)
    phone = await _first_phone(database_url, cluster.env)

    servers = []
    for name in ("api-a", "api-b"):
        port = free_port()
        cluster.start(
            name, "-m", "api", "serve", extra_env={"ESTATE_HOST": "127.0.0.1", "ESTATE_PORT": str(port)}
        )
        servers.append(f"http://127.0.0.1:{port}")
    workers = [cluster.start(f"worker-{n}", "-m", "api", "worker") for n in (1, 2)]
    a, b = servers

    async with httpx.AsyncClient(timeout=10) as http:

        async def ready(server: str) -> dict[str, Any] | None:
            for process in cluster.processes:
                assert process.popen.poll() is None or process.name in ("migrate", "seed"), (
                    f"{process.name} exited:\n{process.tail()}"
                )
            try:
                r = await http.get(f"{server}/health/ready")
            except httpx.TransportError:
                return None
            return dict(r.json()) if r.status_code == 200 else None

        for server in servers:
            health = await eventually(f"{server} ready", functools.partial(ready, server), START_TIMEOUT_S)
            checks = health["checks"]
            assert checks == {"database": "ok", "redis": "ok"}, checks

        # A token issued by A works on B.
        pair = await _sign_in(http, a, sms_url, phone)
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        r = await http.get(f"{b}/api/v1/me", headers=bearer)
        assert r.status_code == 200, r.text
        assert r.json()["role"] == "citizen"

        # The cool-down started on A holds on B: Redis, not process memory.
        r = await http.post(f"{b}/api/v1/auth/sms-codes", json={"phone": phone})
        assert r.status_code == 429, r.text
        assert r.headers["content-type"].startswith("application/problem+json")

        # Logout on A revokes the access token on B, and the refresh token everywhere.
        r = await http.post(
            f"{a}/api/v1/auth/logout", headers=bearer, json={"refresh_token": pair["refresh_token"]}
        )
        assert r.status_code == 204, r.text
        r = await http.get(f"{b}/api/v1/me", headers=bearer)
        assert r.status_code == 401, r.text
        r = await http.post(f"{b}/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert r.status_code == 401, r.text

        # Outbox: the app enqueues, the two worker processes deliver, each message exactly once.
        await cluster.run("enqueue", "-c", _ENQUEUE, str(OUTBOX_MESSAGES), OUTBOX_PHONE)

        async def delivered() -> dict[str, Any] | None:
            state = (await http.get(f"{sms_url}/_sim/state")).json()
            keys = {k: v for k, v in state["idempotency"].items() if k.startswith("scale-out-")}
            return state if len(keys) == OUTBOX_MESSAGES else None

        await eventually("outbox delivery", delivered, START_TIMEOUT_S)
        await asyncio.sleep(1.0)  # a duplicate delivery, if any, would arrive now
        state = (await http.get(f"{sms_url}/_sim/state")).json()
        keys = {k: v for k, v in state["idempotency"].items() if k.startswith("scale-out-")}
        assert len(keys) == OUTBOX_MESSAGES
        assert all(v["applied"] == 1 and v["replays"] == 0 for v in keys.values()), keys
        inbox = (await http.get(f"{sms_url}/messages", params={"phone": OUTBOX_PHONE})).json()
        assert len(inbox) == OUTBOX_MESSAGES

    await _assert_outbox_rows(database_url)
    assert all(w.popen.poll() is None for w in workers), "a worker died"


async def _assert_outbox_rows(database_url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT status, attempts, count(*) AS n FROM outbox_message "
            "WHERE idempotency_key LIKE 'scale-out-%' GROUP BY status, attempts"
        )
    finally:
        await conn.close()
    assert [(r["status"], r["attempts"], r["n"]) for r in rows] == [("delivered", 1, OUTBOX_MESSAGES)]
