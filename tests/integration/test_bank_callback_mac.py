"""Bank callbacks under the national profile (issue 16): each bank verifies the MAC its
configuration names (HMAC-SHA256 or HMAC-SM3, default the profile's), the header's label says
which, and the bank simulator over real HTTP refuses a callback signed with the other one."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from integrations.banks.base import HMAC_SHA256, HMAC_SM3, CallbackEndpoint
from integrations.banks.config import BankConfig, parse_banks
from integrations.banks.http import (
    ADAPTERS,
    endpoint_of,
    labelled_mac,
    profile_mac,
    sign,
    sign_v2,
    verify_v1,
    verify_v2,
)
from integrations.banks.simulator import BankCallbackSimulator
from integrations.base import RetryPolicy
from integrations.errors import RequestRejected
from standards.crypto_profile import keyed_index

SECRET = "callback-secret-0123456789"
USCC = "91350100M000100Y43"


def _bank(code: str, adapter: str, mac: str | None) -> BankConfig:
    return BankConfig(
        code=code, name=code, uscc=USCC, client_id=code, client_secret="s" * 16,
        callback_url="", callback_secret=SECRET, adapter=adapter, callback_mac=mac,
    )  # fmt: skip


BANKS = [
    _bank("sm3-v1", "signed-json-v1", HMAC_SM3),
    _bank("sm3-v2", "signed-json-v2", HMAC_SM3),
    _bank("sha-v1", "signed-json-v1", HMAC_SHA256),
    _bank("sha-v2", "signed-json-v2", HMAC_SHA256),
    _bank("profile-v2", "signed-json-v2", None),  # the profile's MAC
]


@pytest_asyncio.fixture
async def bank_sim() -> AsyncIterator[BankCallbackSimulator]:
    sim = BankCallbackSimulator(BANKS, default_mac=profile_mac("national"))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def _key() -> str:
    return str(uuid.uuid4())


async def _deliver(
    bank: BankConfig | CallbackEndpoint,
    url: str,
    *,
    default_mac: str,
    filing_ref: str,
    status: str,
    detail: str,
) -> None:
    """One callback through the bank's adapter, as the outbox handler sends it, to `url`."""
    endpoint = endpoint_of(bank)
    async with aiohttp.ClientSession() as session:
        sender = ADAPTERS[endpoint.adapter](
            endpoint,
            session=session,
            timeout_s=2,
            retry=RetryPolicy.none(),
            callback_url=url,
            default_mac=default_mac,
        )
        await sender.send(_key(), filing_ref, status, None, detail)


async def _send(sim: BankCallbackSimulator, bank: BankConfig | CallbackEndpoint, *, default_mac: str) -> None:
    url = f"{sim.base_url}/{endpoint_of(bank).bank_code}/callback"
    await _deliver(
        bank, url, default_mac=default_mac, filing_ref="MF-1", status="registered", detail="已登簿"
    )


@pytest.mark.parametrize("code", ["sm3-v1", "sm3-v2"])
async def test_an_hmac_sm3_callback_verifies_at_a_bank_configured_for_it(
    bank_sim: BankCallbackSimulator, code: str
) -> None:
    bank = next(b for b in BANKS if b.code == code)
    # The bank's own configuration wins over any default the sender has.
    await _send(bank_sim, bank, default_mac=HMAC_SHA256)
    (delivery,) = bank_sim.received(code)
    assert delivery["signature_valid"] and delivery["mac"] == HMAC_SM3


@pytest.mark.parametrize("code", ["sm3-v1", "sm3-v2"])
async def test_a_sha256_callback_to_an_sm3_bank_is_refused(
    bank_sim: BankCallbackSimulator, code: str
) -> None:
    bank = next(b for b in BANKS if b.code == code)
    # A sender that does not know the bank chose SM3 (e.g. an old configuration) signs SHA-256.
    stale = CallbackEndpoint(bank_code=code, url="", secret=SECRET, adapter=bank.adapter, mac=HMAC_SHA256)
    with pytest.raises(RequestRejected) as caught:
        await _send(bank_sim, stale, default_mac=HMAC_SM3)
    assert caught.value.code == "WRONG_MAC" and caught.value.status == 401
    assert bank_sim.received(code) == []
    (attempt,) = bank_sim.received(code, valid_only=False)
    assert attempt["signature_valid"] is False and attempt["refusal"] == "WRONG_MAC"


@pytest.mark.parametrize("code", ["sha-v1", "sha-v2"])
async def test_an_sm3_callback_to_a_sha256_bank_is_refused(
    bank_sim: BankCallbackSimulator, code: str
) -> None:
    bank = next(b for b in BANKS if b.code == code)
    await _send(bank_sim, bank, default_mac=HMAC_SM3)  # configured SHA-256: accepted
    wrong = CallbackEndpoint(bank_code=code, url="", secret=SECRET, adapter=bank.adapter, mac=HMAC_SM3)
    with pytest.raises(RequestRejected) as caught:
        await _send(bank_sim, wrong, default_mac=HMAC_SM3)
    assert caught.value.code == "WRONG_MAC"
    assert len(bank_sim.received(code)) == 1


async def test_a_bank_that_names_no_mac_gets_the_profiles(bank_sim: BankCallbackSimulator) -> None:
    bank = next(b for b in BANKS if b.code == "profile-v2")
    await _send(bank_sim, bank, default_mac=profile_mac("national"))
    (delivery,) = bank_sim.received("profile-v2")
    assert delivery["signature_valid"] and delivery["mac"] == HMAC_SM3
    with pytest.raises(RequestRejected):
        await _send(bank_sim, bank, default_mac=profile_mac("international"))
    assert profile_mac("international") == HMAC_SHA256


async def test_a_bank_added_at_run_time_says_its_mac(bank_sim: BankCallbackSimulator) -> None:
    async with aiohttp.ClientSession() as http:
        body = {"code": "rt-sha", "secret": SECRET, "adapter": "signed-json-v2", "mac": HMAC_SHA256}
        async with http.post(f"{bank_sim.base_url}/_sim/banks", json=body) as response:
            assert response.status == 200
    endpoint = CallbackEndpoint(bank_code="rt-sha", url="", secret=SECRET, adapter="signed-json-v2")
    await _send(bank_sim, endpoint, default_mac=HMAC_SHA256)
    assert bank_sim.received("rt-sha")[0]["mac"] == HMAC_SHA256
    with pytest.raises(ValueError, match="unknown callback MAC"):
        bank_sim.add_bank("rt-md5", SECRET, mac="hmac-md5")


async def _captured(bank: BankConfig, *, default_mac: str) -> tuple[bytes, dict[str, str]]:
    """What the sender puts on the wire, caught by a bare HTTP server."""
    seen: list[tuple[bytes, dict[str, str]]] = []

    async def capture(request: web.Request) -> web.Response:
        seen.append((await request.read(), dict(request.headers)))
        return web.json_response({"code": "0000", "receipt_no": "R1"})

    app = web.Application()
    app.router.add_post("/cb", capture)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        url = f"http://127.0.0.1:{port}/cb"
        await _deliver(
            bank, url, default_mac=default_mac, filing_ref="MF-9", status="refused", detail="材料不全"
        )
    finally:
        await runner.cleanup()
    return seen[0]


def _openssl_hmac_sm3(key: str, data: bytes) -> str:
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl (3.x, with SM3) is needed for the independent HMAC-SM3 check"
    result = subprocess.run(
        [openssl, "dgst", "-sm3", "-hmac", key], input=data, capture_output=True, check=True, timeout=30
    )
    return result.stdout.decode().strip().rsplit("= ", 1)[1]


async def test_hmac_sm3_on_the_wire_matches_openssl() -> None:
    body, headers = await _captured(_bank("sm3-v1", "signed-json-v1", HMAC_SM3), default_mac=HMAC_SHA256)
    label, _, value = headers["X-Estate-Signature"].partition("=")
    assert label == "sm3" and value == _openssl_hmac_sm3(SECRET, body)

    body, headers = await _captured(_bank("sm3-v2", "signed-json-v2", HMAC_SM3), default_mac=HMAC_SHA256)
    timestamp = headers["X-Estate-Timestamp"]
    label, _, value = headers["X-Estate-Signature"].partition("=")
    assert label == "v2-sm3" and value == _openssl_hmac_sm3(SECRET, f"{timestamp}.".encode() + body)
    assert keyed_index("national", SECRET.encode(), b"x").hex() == _openssl_hmac_sm3(SECRET, b"x")


async def test_sha256_banks_get_the_bytes_they_always_did() -> None:
    body, headers = await _captured(_bank("sha-v1", "signed-json-v1", HMAC_SHA256), default_mac=HMAC_SM3)
    assert (
        headers["X-Estate-Signature"]
        == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    )
    body, headers = await _captured(_bank("sha-v2", "signed-json-v2", HMAC_SHA256), default_mac=HMAC_SM3)
    signed = f"{headers['X-Estate-Timestamp']}.".encode() + body
    assert (
        headers["X-Estate-Signature"] == "v2=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    )
    # The functions' defaults are SHA-256 still, so existing callers are unchanged.
    assert sign(SECRET, body) == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def test_the_receivers_check_never_lets_the_label_pick_the_mac() -> None:
    body, now = b'{"filing_ref":"MF-1"}', 1_800_000_000
    sm3 = sign_v2(SECRET, now, body, HMAC_SM3)
    assert labelled_mac(sm3) == HMAC_SM3 and labelled_mac(sign(SECRET, body)) == HMAC_SHA256
    assert labelled_mac("md5=00") is None and labelled_mac(None) is None
    assert verify_v2(SECRET, body, timestamp=str(now), signature=sm3, now=now, mac=HMAC_SM3) is None
    assert verify_v2(SECRET, body, timestamp=str(now), signature=sm3, now=now) == "WRONG_MAC"
    sha = sign_v2(SECRET, now, body)
    assert verify_v2(SECRET, body, timestamp=str(now), signature=sha, now=now, mac=HMAC_SM3) == "WRONG_MAC"
    # A v1 SM3 value is not a v2 one; a relabelled value is not genuine.
    v1 = sign(SECRET, body, HMAC_SM3)
    assert verify_v2(SECRET, body, timestamp=str(now), signature=v1, now=now, mac=HMAC_SM3) == "BAD_SIGNATURE"
    relabelled = "sm3=" + sign(SECRET, body).partition("=")[2]
    assert verify_v1(SECRET, body, relabelled, HMAC_SM3) == "BAD_SIGNATURE"
    assert verify_v1(SECRET, body, v1, HMAC_SM3) is None
    assert verify_v1(SECRET, body, None, HMAC_SM3) == "BAD_SIGNATURE"


def test_the_bank_catalogue_names_a_mac_or_none() -> None:
    entry = {
        "code": "b1", "name": "b", "uscc": USCC, "client_id": "c", "client_secret": "s" * 16,
        "callback_secret": SECRET,
    }  # fmt: skip
    (plain,) = parse_banks({"bank": [entry]})
    assert plain.callback_mac is None
    (sm3,) = parse_banks({"bank": [{**entry, "callback_mac": "hmac-sm3"}]})
    assert sm3.callback_mac == HMAC_SM3
    from config.settings import ConfigurationError

    with pytest.raises(ConfigurationError, match="callback_mac must be one of hmac-sha256, hmac-sm3"):
        parse_banks({"bank": [{**entry, "callback_mac": "hmac-md5"}]})


@pytest.mark.parametrize(("profile", "mac"), [("international", HMAC_SHA256), ("national", HMAC_SM3)])
async def test_the_composition_root_gives_banks_without_a_mac_the_profiles(profile: str, mac: str) -> None:
    """integrations/factory.py: the sender and the simulator both follow ESTATE_CRYPTO_PROFILE."""
    import base64
    import os

    import httpx

    from config.settings import Settings
    from integrations.factory import SimulatorSuite, build_integrations

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        crypto_profile=profile,
        pii_sm4_key=base64.b64encode(os.urandom(16)).decode(),
    )
    bank = _bank("profile-v1", "signed-json-v1", None)
    suite = await SimulatorSuite.start(settings=settings, banks=[bank])
    try:
        assert suite.banks.macs[bank.code] == mac
        settings = settings.model_copy(update=suite.settings_overrides())
        async with aiohttp.ClientSession() as session, httpx.AsyncClient() as client:
            integrations = build_integrations(settings, session=session, http_client=client, banks=[bank])
            sender = await integrations.banks._sender(bank.code)
            assert sender is not None and sender.mac == mac
    finally:
        await suite.stop()
