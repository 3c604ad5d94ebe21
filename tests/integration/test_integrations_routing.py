"""Utility routing over real HTTP for every district and kind, and signed bank callbacks."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import date

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from integrations.banks.config import BankConfig
from integrations.banks.http import SignedJsonCallback, profile_mac
from integrations.base import RetryPolicy
from integrations.errors import AdapterNotConfigured, RequestRejected
from integrations.testing import SimulatedWorld, fast_settings, simulated_integrations
from integrations.utilities.base import TransferStatus, UtilityKind
from integrations.utilities.http import JsonApiProvider, StaffPortalProvider

# GB/T 2260 county codes of Shanghai's 16 districts (docs: DOMAIN.md).
SHANGHAI_DISTRICTS = [
    "310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112",
    "310113", "310114", "310115", "310116", "310117", "310118", "310120", "310151",
]  # fmt: skip
UNIT = "310115001001GB00001F00010001"


@pytest_asyncio.fixture(scope="module")
async def world():
    async with simulated_integrations(fast_settings()) as w:
        yield w


@pytest.fixture(autouse=True)
def fresh(world: SimulatedWorld) -> None:
    world.suite.reset()


def key() -> str:
    return uuid.uuid4().hex


# --- utilities -------------------------------------------------------------------------------------


@pytest.mark.parametrize("district", SHANGHAI_DISTRICTS)
async def test_every_kind_in_every_district_reaches_its_provider(
    world: SimulatedWorld, district: str
) -> None:
    sim = world.suite.utilities
    for kind in UtilityKind:
        provider = world.integrations.utilities.provider_for(kind, district)
        assert (
            provider.kind is kind
            and district in world.integrations.utilities.catalogue.by_name(provider.name).districts
        )
        transfer = await provider.transfer_account(
            key(),
            "88001234",
            "P-old",
            "P-new",
            f"{district}001001GB00001F00010001",
            "某路1号",
            date(2026, 6, 1),
        )
        assert transfer.status is TransferStatus.COMPLETED  # the suite's providers answer at once
        (recorded,) = [t for t in sim.transfers_of(provider.name) if t["ref"] == transfer.ref]
        assert recorded["new_holder"] == "P-new" and recorded["account_no"] == "88001234"
        assert recorded["style"] == world.integrations.utilities.catalogue.by_name(provider.name).adapter
        assert await provider.get_transfer(transfer.ref) == transfer


async def test_both_adapter_styles_are_in_use(world: SimulatedWorld) -> None:
    styles = {type(p) for p in world.integrations.utilities.providers.values()}
    assert styles == {JsonApiProvider, StaffPortalProvider}


@pytest.mark.parametrize(("kind", "district"), [(UtilityKind.GAS, "310115"), (UtilityKind.WATER, "310151")])
async def test_transfer_progress_and_refusals_per_style(
    world: SimulatedWorld, kind: UtilityKind, district: str
) -> None:
    provider = world.integrations.utilities.provider_for(kind, district)
    transfer = await provider.transfer_account(
        key(), "66001234", "P-1", "P-2", UNIT, "某路2号", date(2026, 6, 1)
    )
    world.suite.utilities.set_transfer_status(transfer.ref, TransferStatus.COMPLETED)
    assert (await provider.get_transfer(transfer.ref)).status is TransferStatus.COMPLETED
    with pytest.raises(RequestRejected) as invalid:
        await provider.transfer_account(key(), "12-AB", "P-1", "P-2", UNIT, "某路2号", date(2026, 6, 1))
    assert invalid.value.code == "INVALID_ACCOUNT"  # the portal's E1001, mapped through its table
    with pytest.raises(RequestRejected) as missing:
        await provider.get_transfer("XX00000000")
    assert missing.value.code == "TRANSFER_NOT_FOUND"


async def test_unknown_district_is_not_configured(world: SimulatedWorld) -> None:
    with pytest.raises(AdapterNotConfigured) as caught:
        world.integrations.utilities.provider_for(UtilityKind.WATER, "320106")  # Nanjing
    assert caught.value.system == "utilities" and not caught.value.retryable
    with pytest.raises(AdapterNotConfigured):
        world.integrations.utilities.provider_for("heating", "310101")


# --- banks -------------------------------------------------------------------------------------------


async def test_bank_callback_is_signed_and_verified_by_the_bank(world: SimulatedWorld) -> None:
    k = key()
    certificate = "沪(2026)浦东新区不动产证明第0000001号"
    ack = await world.integrations.banks.notify_filing(
        k, "boc-sh", "MF-42", "registered", certificate, "已登簿"
    )
    assert ack.bank_code == "boc-sh" and ack.receipt_no
    (delivery,) = world.suite.banks.received("boc-sh")
    assert delivery["signature_valid"] and delivery["idempotency_key"] == k
    assert delivery["payload"] == {
        "event": "mortgage_filing.status_changed",
        "bank_code": "boc-sh",
        "filing_ref": "MF-42",
        "status": "registered",
        "certificate_number": certificate,
        "detail": "已登簿",
    }
    assert world.suite.banks.received("icbc-sh") == []


async def test_bank_callback_signature_is_hmac_sha256_of_the_body(world: SimulatedWorld) -> None:
    seen: list[tuple[bytes, str]] = []

    async def capture(request: web.Request) -> web.Response:
        seen.append((await request.read(), request.headers["X-Estate-Signature"]))
        return web.json_response({"code": "0000", "receipt_no": "R1"})

    app = web.Application()
    app.router.add_post("/cb", capture)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    bank = BankConfig(
        code="test-bank", name="t", uscc="91350100M000100Y43", client_id="c", client_secret="s" * 16,
        callback_url=f"http://127.0.0.1:{port}/cb", callback_secret="callback-secret-0123456789",
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            sender = SignedJsonCallback(bank, session=session, timeout_s=1, retry=RetryPolicy.none())
            await sender.send(key(), "MF-1", "refused", None, "材料不全")
    finally:
        await runner.cleanup()
    (body, signature) = seen[0]
    expected = hmac.new(b"callback-secret-0123456789", body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    assert json.loads(body)["certificate_number"] is None


async def test_bank_refuses_a_callback_with_a_bad_signature(world: SimulatedWorld) -> None:
    real = world.settings
    bank = BankConfig(
        code="icbc-sh", name="x", uscc="91350100M000100Y43", client_id="x", client_secret="x" * 16,
        callback_url="", callback_secret="not-the-secret-the-bank-has",
    )  # fmt: skip
    async with aiohttp.ClientSession() as session:
        sender = SignedJsonCallback(
            bank,
            session=session,
            timeout_s=1,
            retry=RetryPolicy(attempts=3),
            callback_url=f"{real.banks_simulator_url}/icbc-sh/callback",
            default_mac=profile_mac(real.crypto_profile),  # the bank's MAC; only the secret is wrong
        )
        with pytest.raises(RequestRejected) as caught:
            await sender.send(key(), "MF-1", "registered", None, "")
    assert caught.value.code == "BAD_SIGNATURE" and caught.value.status == 401
    assert world.suite.banks.received("icbc-sh") == []
    (attempt,) = world.suite.banks.received("icbc-sh", valid_only=False)
    assert attempt["signature_valid"] is False


async def test_bank_business_refusal_and_unknown_bank(world: SimulatedWorld) -> None:
    world.suite.banks.unknown_filings.add("MF-404")
    try:
        with pytest.raises(RequestRejected) as refused:
            await world.integrations.banks.notify_filing(key(), "icbc-sh", "MF-404", "registered", None, "")
        assert refused.value.code == "UNKNOWN_FILING"
    finally:
        world.suite.banks.unknown_filings.clear()
    with pytest.raises(AdapterNotConfigured):
        await world.integrations.banks.notify_filing(key(), "no-such-bank", "MF-1", "registered", None, "")
    async with aiohttp.ClientSession() as http:
        url = world.suite.banks.base_url + "/_sim/callbacks"
        async with http.get(url, params={"bank": "icbc-sh"}) as response:
            listed = await response.json()
    assert [d["payload"]["filing_ref"] for d in listed] == ["MF-404"]
