"""Routing and configuration of the integrations, without I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import aiohttp
import httpx
import pytest
from prometheus_client import CollectorRegistry

from config.settings import ConfigurationError, Settings
from integrations.banks.config import BankConfig, load_banks, parse_banks, uscc_valid
from integrations.banks.http import sign, signature_valid
from integrations.base import integration_metrics, mask_id, mask_phone
from integrations.errors import (
    AdapterNotConfigured,
    IntegrationError,
    MalformedResponse,
    RequestRejected,
    SystemTimeout,
    SystemUnavailable,
)
from integrations.factory import build_integrations
from integrations.sms.simulator import load_templates, placeholders
from integrations.utilities.base import UtilityKind, UtilityProvider, UtilityTransfer
from integrations.utilities.config import load_providers, parse_providers
from integrations.utilities.http import ADAPTERS as UTILITY_ADAPTERS
from integrations.utilities.router import UtilityRouter

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI_DISTRICTS = {
    "310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112",
    "310113", "310114", "310115", "310116", "310117", "310118", "310120", "310151",
}  # fmt: skip


# --- the demo provider catalogue --------------------------------------------------------------------


def test_demo_catalogue_covers_every_district_for_every_kind_exactly_once() -> None:
    catalogue = load_providers(ROOT / "config" / "providers.toml")
    assert set(catalogue.districts) == SHANGHAI_DISTRICTS
    serving = catalogue.serving()
    assert set(serving) == {(k, d) for k in UtilityKind for d in SHANGHAI_DISTRICTS}
    counts: dict[tuple[UtilityKind, str], int] = {}
    for provider in catalogue.providers:
        for district in provider.districts:
            counts[(provider.kind, district)] = counts.get((provider.kind, district), 0) + 1
    assert set(counts.values()) == {1}


def test_demo_catalogue_shape() -> None:
    catalogue = load_providers(ROOT / "config" / "providers.toml")
    by_kind: dict[UtilityKind, list[str]] = {}
    for provider in catalogue.providers:
        by_kind.setdefault(provider.kind, []).append(provider.name)
        assert provider.adapter in UTILITY_ADAPTERS
    assert len(by_kind[UtilityKind.ELECTRICITY]) == 1 and len(by_kind[UtilityKind.CABLE_TV]) == 1
    assert len(by_kind[UtilityKind.WATER]) >= 3 and 3 <= len(by_kind[UtilityKind.GAS]) <= 4
    assert "water.shanghai-chengtou" in by_kind[UtilityKind.WATER]
    assert {p.adapter for p in catalogue.providers} == {"http-json-v1", "staff-portal"}


AREA = {"area": {"districts": {"310101": "黄浦区", "310115": "浦东新区"}}}


def _provider(name: str, kind: str, districts: list[str], adapter: str = "http-json-v1") -> dict:
    return {"name": name, "kind": kind, "districts": districts, "adapter": adapter}


def _catalogue(*providers: dict, **kwargs):
    return parse_providers({**AREA, "provider": list(providers)}, **kwargs)


def test_adding_a_provider_is_one_entry() -> None:
    entries = [_provider(f"{k.value}.all", k.value, ["*"]) for k in UtilityKind]
    base = _catalogue(*entries)
    assert base.serving()[(UtilityKind.WATER, "310115")].name == "water.all"
    entries[0] = _provider("water.all", "water", ["310101"])
    extended = _catalogue(*entries, _provider("water.pudong", "water", ["310115"], "staff-portal"))
    assert extended.serving()[(UtilityKind.WATER, "310115")].name == "water.pudong"


def test_catalogue_refuses_overlaps_gaps_and_strangers() -> None:
    full = [_provider(f"{k.value}.all", k.value, ["*"]) for k in UtilityKind]
    with pytest.raises(ConfigurationError, match=r"both water\.all and water\.two"):
        _catalogue(*full, _provider("water.two", "water", ["310115"]))
    with pytest.raises(ConfigurationError, match="no gas provider for district 310115"):
        _catalogue(*full[:2], _provider("gas.x", "gas", ["310101"]), full[3])
    with pytest.raises(ConfigurationError, match="not in \\[area\\]"):
        _catalogue(*full, _provider("water.nj", "water", ["320106"]))
    with pytest.raises(ConfigurationError, match="name must look like"):
        _catalogue(*full, _provider("gas-wrong", "gas", ["310101"]))
    with pytest.raises(ConfigurationError, match="heating"):
        _catalogue(*full, _provider("heating.x", "heating", ["310101"]))
    with pytest.raises(ConfigurationError, match="listed twice"):
        _catalogue(*full, full[0])


def test_catalogue_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "providers.toml"
    broken.write_text("[area\n")
    with pytest.raises(ConfigurationError, match=r"providers\.toml"):
        load_providers(broken)


# --- the router ---------------------------------------------------------------------------------------


class FakeProvider(UtilityProvider):
    async def _transfer_account(self, *args: object) -> UtilityTransfer:
        raise NotImplementedError

    async def _get_transfer(self, ref: str) -> UtilityTransfer:
        raise NotImplementedError

    async def _lookup_account(self, unit_number: str) -> str | None:
        raise NotImplementedError

    async def _find_transfer(self, idempotency_key: str) -> UtilityTransfer | None:
        raise NotImplementedError


def _router(catalogue) -> UtilityRouter:
    metrics = integration_metrics(CollectorRegistry())
    fakes = {p.name: FakeProvider(name=p.name, kind=p.kind, metrics=metrics) for p in catalogue.providers}
    return UtilityRouter(catalogue, fakes, metrics=metrics)


def test_router_picks_the_provider_of_the_district() -> None:
    router = _router(load_providers(ROOT / "config" / "providers.toml"))
    for district in SHANGHAI_DISTRICTS:
        chosen = router.providers_for_district(district)
        assert set(chosen) == set(UtilityKind)
        for kind, provider in chosen.items():
            assert provider.kind is kind and provider.name.startswith(f"{kind.value}.")
            assert router.provider_for(kind.value, district) is provider
    assert router.provider_for(UtilityKind.WATER, "310115").name == "water.pudong"
    assert router.provider_for(UtilityKind.WATER, "310101").name == "water.shanghai-chengtou"


def test_router_refuses_what_nobody_serves() -> None:
    router = _router(_catalogue(_provider("water.central", "water", ["310101"]), require_full_coverage=False))
    with pytest.raises(AdapterNotConfigured, match="water provider configured for district 310115"):
        router.provider_for(UtilityKind.WATER, "310115")
    with pytest.raises(AdapterNotConfigured):
        router.provider_for(UtilityKind.GAS, "310101")
    with pytest.raises(AdapterNotConfigured):
        router.provider_for("water", "999999")
    with pytest.raises(AdapterNotConfigured):
        router.provider("water.nowhere")


# --- banks --------------------------------------------------------------------------------------------


def test_demo_banks_load_with_valid_credit_codes_and_hidden_secrets() -> None:
    banks = load_banks(ROOT / "config" / "banks.toml")
    assert [b.code for b in banks] == ["icbc-sh", "boc-sh"]
    assert {b.uscc for b in banks} == {"91350100M000100Y43", "91110000600037341L"}
    for bank in banks:
        assert bank.client_id and bank.scopes and bank.callback_url == ""
        assert bank.client_secret not in repr(bank) and bank.callback_secret not in repr(bank)


def test_uscc_check() -> None:
    assert uscc_valid("91350100M000100Y43") and uscc_valid("91110000600037341L")
    assert not uscc_valid("91110000600037341X")  # wrong check character
    assert not uscc_valid("91350100M000100Y4")  # short
    assert not uscc_valid("91350100M0001O0Y43")  # O is not in the alphabet


def _bank(**overrides: object) -> dict:
    entry = {
        "code": "demo",
        "name": "Demo",
        "uscc": "91350100M000100Y43",
        "client_id": "demo-client",
        "client_secret": "0123456789abcdef",
        "callback_secret": "fedcba9876543210",
        "scopes": ["mortgage:file"],
    }
    entry.update(overrides)
    return entry


def test_bank_loader_refuses_bad_entries() -> None:
    with pytest.raises(ConfigurationError, match="fails its check"):
        parse_banks({"bank": [_bank(uscc="91110000600037341X")]})
    with pytest.raises(ConfigurationError, match="shorter than"):
        parse_banks({"bank": [_bank(callback_secret="short")]})
    with pytest.raises(ConfigurationError, match="used twice"):
        parse_banks({"bank": [_bank(), _bank(client_id="other")]})
    with pytest.raises(ConfigurationError, match="scopes"):
        parse_banks({"bank": [_bank(scopes="mortgage:file")]})


def test_bank_secret_from_a_file_wins(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-the-mounted-file-0001\n")
    (bank,) = parse_banks({"bank": [_bank(client_secret_file="secret")]}, base_dir=tmp_path)
    assert bank.client_secret == "from-the-mounted-file-0001"


def test_signature_helpers() -> None:
    body = b'{"filing_ref":"MF-1"}'
    header = sign("k" * 16, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert signature_valid("k" * 16, body, header)
    assert not signature_valid("k" * 16, body + b" ", header)
    assert not signature_valid("x" * 16, body, header)
    assert not signature_valid("k" * 16, body, None)


# --- shared pieces ------------------------------------------------------------------------------------


def test_masking() -> None:
    assert mask_id("110105199003071239") == "1101**********1239"
    assert mask_id("12345") == "*****" and mask_id(None) == ""
    assert mask_phone("13800001234") == "138****1234"


def test_metrics_are_created_once_per_registry() -> None:
    registry = CollectorRegistry()
    first = integration_metrics(registry)
    assert integration_metrics(registry) is first
    assert integration_metrics(CollectorRegistry()) is not first
    first.observe("tax", "book_appointment", "ok", 0.01)
    value = registry.get_sample_value(
        "integration_calls_total", {"system": "tax", "operation": "book_appointment", "outcome": "ok"}
    )
    assert value == 1.0


def test_error_hierarchy() -> None:
    timeout = SystemTimeout("slow", system="tax", operation="book_appointment")
    assert isinstance(timeout, SystemUnavailable) and isinstance(timeout, IntegrationError)
    assert timeout.retryable and timeout.outcome == "timeout"
    rejected = RequestRejected("no", system="tax", operation="x", code="SLOT_FULL", status=409)
    assert not rejected.retryable and rejected.code == "SLOT_FULL"
    assert not AdapterNotConfigured("x", system="s", operation="o").retryable
    assert not MalformedResponse("x", system="s", operation="o").retryable
    assert str(rejected) == "tax.x: no"


def test_sms_templates() -> None:
    signature, templates = load_templates()
    assert signature
    assert templates["login_code"] == "您的登录验证码为{code}，{minutes}分钟内有效。"
    assert placeholders(templates["login_code"]) == {"code", "minutes"}
    assert "property_alert" in templates


def test_new_settings_fields_have_safe_defaults() -> None:
    settings = Settings()
    assert settings.utilities_simulator_url == "" and settings.banks_simulator_url == ""
    assert settings.external_adapters == {}
    assert 0 < settings.external_backoff_initial_s <= settings.external_backoff_max_s


async def test_build_refuses_missing_urls_and_unknown_adapters() -> None:
    async with aiohttp.ClientSession() as session, httpx.AsyncClient() as client:
        with pytest.raises(ConfigurationError, match="no URL configured for"):
            build_integrations(Settings(), session=session, http_client=client)
        urls = {
            "civil_registry_url": "http://r",
            "tax_url": "http://t",
            "elicense_url": "http://e",
            "appointment_centre_url": "http://a",
            "sms_gateway_url": "http://s",
            "utilities_simulator_url": "http://u",
            "banks_simulator_url": "http://b",
        }
        built = build_integrations(
            Settings(**urls), session=session, http_client=client, metrics_registry=CollectorRegistry()
        )
        water = built.utilities.provider_for(UtilityKind.WATER, "310115")
        assert water.base_url == "http://u/water.pudong"  # type: ignore[attr-defined]
        with pytest.raises(ConfigurationError, match="unknown adapter 'soap-v2' for tax"):
            build_integrations(
                Settings(**urls, external_adapters={"tax": "soap-v2"}), session=session, http_client=client
            )
        with pytest.raises(ConfigurationError, match="unknown adapter"):
            bank = BankConfig(
                "x", "x", "91350100M000100Y43", "c", "s" * 16, "", "t" * 16, (), "carrier-pigeon"
            )
            build_integrations(Settings(**urls), session=session, http_client=client, banks=[bank])


def test_integrations_never_import_services_api_or_sanic() -> None:
    forbidden = {"services", "api", "sanic"}
    for path in (ROOT / "integrations").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path} imports {name}"
