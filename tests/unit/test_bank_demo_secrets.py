"""Production refuses the bank secrets written in the shipped config/banks.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from config.settings import DEMO_BANKS_FILE, ConfigurationError, Settings
from integrations.banks.config import BankConfig, load_banks, parse_banks, refuse_demo_secrets

DEMO = tomllib.loads(DEMO_BANKS_FILE.read_text(encoding="utf-8"))["bank"]


def _production(tmp_path: Path, **overrides: object) -> Settings:
    key = tmp_path / "jwt.pem"
    key.write_text("placeholder")
    values: dict[str, object] = {
        "profile": "production",
        "database_url": "postgres://nowhere.invalid/estate",
        "redis_url": "redis://nowhere.invalid",
        "secret_key": "a" * 40,
        "pii_key": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
        "pii_sm4_key": "QkJCQkJCQkJCQkJCQkJCQg==",  # the national profile's (a suite run may use it)
        "blind_index_key": "b" * 40,
        "jwt_private_key_file": key,
        "simulators_in_process": False,
        "sms_gateway_api_key": "key-the-gateway-issued",
        "certificate_keys_dir": tmp_path / "certificate-keys",
        "public_base_url": "https://estate.example.gov.cn",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def _banks_with_secret_files(tmp_path: Path, secrets: dict[str, str]) -> list[BankConfig]:
    """The demo catalogue as production writes it: secrets in files, none inline."""
    entries = []
    for demo in DEMO:
        entry = {k: v for k, v in demo.items() if k not in ("client_secret", "callback_secret")}
        for name in ("client_secret", "callback_secret"):
            secret_file = tmp_path / f"{demo['code']}-{name}"
            secret_file.write_text(
                secrets.get(f"{demo['code']}.{name}", f"{demo['code']}-{name}-from-vault-01")
            )
            entry[f"{name}_file"] = secret_file.name
        entries.append(entry)
    return parse_banks({"bank": entries}, base_dir=tmp_path)


def test_the_shipped_demo_secrets_are_refused_naming_what_to_set():
    with pytest.raises(ConfigurationError) as exc:
        refuse_demo_secrets(load_banks(DEMO_BANKS_FILE))
    message = str(exc.value)
    assert message.startswith("refusing to start in production")
    for entry in DEMO:
        assert f"bank {entry['code']}: client_secret" in message
        assert f"bank {entry['code']}: callback_secret" in message
        assert entry["client_secret"] not in message and entry["callback_secret"] not in message
    assert "set client_secret_file" in message and "set callback_secret_file" in message


def test_secrets_from_files_pass(tmp_path):
    refuse_demo_secrets(_banks_with_secret_files(tmp_path, {}))


def test_a_demo_value_is_refused_wherever_it_comes_from(tmp_path):
    demo_callback = DEMO[1]["callback_secret"]
    banks = _banks_with_secret_files(tmp_path, {f"{DEMO[1]['code']}.callback_secret": demo_callback})
    with pytest.raises(ConfigurationError, match=f"bank {DEMO[1]['code']}: callback_secret") as exc:
        refuse_demo_secrets(banks)
    assert "client_secret" not in str(exc.value)
    # ...and a demo value copied inline into another catalogue
    (copied,) = parse_banks(
        {
            "bank": [
                {**DEMO[0], "code": "other", "client_id": "other", "client_secret": DEMO[0]["client_secret"]}
            ]
        }
    )
    with pytest.raises(ConfigurationError, match="bank other: client_secret"):
        refuse_demo_secrets([copied])


def test_no_shipped_demo_catalogue_means_nothing_to_refuse(tmp_path):
    refuse_demo_secrets(load_banks(DEMO_BANKS_FILE), demo_file=tmp_path / "absent.toml")


async def test_a_production_start_refuses_demo_bank_secrets_before_opening_anything(tmp_path):
    from api.container import start_services

    # The database and Redis URLs lead nowhere: the refusal has to come first.
    with pytest.raises(ConfigurationError, match=r"demo value from banks\.toml"):
        await start_services(_production(tmp_path, banks_file=DEMO_BANKS_FILE))
