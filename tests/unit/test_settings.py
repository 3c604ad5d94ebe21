import pytest

from config.settings import DEV_SMS_KEY, ConfigurationError, Settings


def test_embedded_default_needs_no_servers():
    s = Settings(_env_file=None)
    assert s.is_sqlite and s.redis_url is None and s.simulators_in_process


def test_production_refuses_default_secrets():
    with pytest.raises(ConfigurationError) as exc:
        Settings(_env_file=None, profile="production", database_url="postgres://x/y", redis_url="redis://r")
    message = str(exc.value)
    assert "ESTATE_SECRET_KEY" in message and "ESTATE_PII_KEY" in message and "JWT" in message


def _production(tmp_path, **overrides):
    key = tmp_path / "jwt.pem"
    key.write_text("placeholder")
    values = {
        "profile": "production",
        "database_url": "postgres://x/y",
        "redis_url": "redis://r",
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
    return Settings(_env_file=None, **values)


def test_production_with_real_secrets_starts(tmp_path):
    assert _production(tmp_path).profile == "production"


def test_production_refuses_the_sms_simulator_key(tmp_path):
    with pytest.raises(ConfigurationError) as exc:
        _production(tmp_path, sms_gateway_api_key=DEV_SMS_KEY)
    message = str(exc.value)
    assert "ESTATE_SMS_GATEWAY_API_KEY" in message and "set the key the gateway issued" in message
    assert DEV_SMS_KEY not in message  # the message names the setting, not the value
    assert _production(tmp_path).sms_gateway_api_key.get_secret_value() == "key-the-gateway-issued"


def test_embedded_keeps_the_sms_simulator_key():
    assert Settings(_env_file=None).sms_gateway_api_key.get_secret_value() == DEV_SMS_KEY


def test_several_workers_need_postgres_and_redis():
    with pytest.raises(ConfigurationError):
        Settings(_env_file=None, workers=2)


def test_environment_is_read(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h:5432/db")
    monkeypatch.setenv("ESTATE_PORT", "9001")
    s = Settings(_env_file=None)
    assert s.database_url == "postgres://u@h:5432/db" and s.port == 9001


def test_production_needs_certificate_keys_and_an_https_address(tmp_path):
    with pytest.raises(ConfigurationError) as exc:
        _production(tmp_path, certificate_keys_dir=None, public_base_url="http://estate.example.gov.cn")
    assert "ESTATE_CERTIFICATE_KEYS_DIR" in str(exc.value) and "ESTATE_PUBLIC_BASE_URL" in str(exc.value)
