"""The one typed settings object. Nothing else in the code base reads the environment."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Well-known development values. Production refuses to start with any of them.
DEV_SECRET = "dev-only-secret-change-me-0123456789abcdef"  # noqa: S105
DEV_PII_KEY = "ZGV2LW9ubHktcGlpLWtleS0zMi1ieXRlcy1sb25nISE="  # base64 of 32 dev bytes
DEV_SMS_KEY = "sim-sms-key"  # the SMS simulator's key
# The shipped bank catalogue, with inline demo secrets; integrations.banks refuses those in production.
DEMO_BANKS_FILE = Path(__file__).with_name("banks.toml")


class Profile(StrEnum):
    EMBEDDED = "embedded"
    PRODUCTION = "production"


class ConfigurationError(RuntimeError):
    """Settings that would make the service unsafe or unable to run."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_prefix="ESTATE_",
        extra="ignore",
        env_nested_delimiter="__",
        populate_by_name=True,
    )

    profile: Profile = Profile.EMBEDDED
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Connections the kernel queues for accept() (capped by net.core.somaxconn). Sanic's default,
    # 100, overflows when a slot release brings hundreds of new connections at once: the SYNs
    # dropped are retried by the clients after a second (bench/rush.py saw it as a 1 s tail).
    listen_backlog: int = Field(default=1024, ge=1, le=65535)
    public_base_url: str = ""
    # Reverse proxies in front of the service that append to X-Forwarded-For (Sanic's
    # PROXIES_COUNT). 0 trusts no header and uses the peer address: right when clients connect
    # directly, wrong behind a load balancer (every citizen would share its address, and the
    # per-address sign-in limit). Never set it higher than the proxies really are: the client
    # writes the leftmost entries itself.
    proxies_count: int = Field(default=0, ge=0, le=8)

    # Storage
    database_url: str = Field(default="sqlite://var/estate.sqlite3", validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    # SQLite databases are always migrated at start; PostgreSQL only when this is set
    # (production runs `python -m api migrate` as a release step instead).
    migrate_on_start: bool = False
    redis_key_prefix: str = "estate:"  # lets several deployments (or test sessions) share one Redis

    # Cryptography profile (docs/decisions/0006-national-cryptography.md): `international` is
    # Ed25519, SHA-256, HMAC-SHA256, AES-256-GCM; `national` (国密) is SM2 with SM3, SM3, HMAC-SM3,
    # SM4-GCM. It chooses what is made: new certificate signing keys, personal data sealed from now
    # on (older ciphertexts name their own key), blind indexes and access-log hashes. A database
    # records the profile its indexes were computed under; the service refuses to start with another
    # until `python -m api crypto switch-profile <name>` has converted it (services/crypto).
    crypto_profile: Literal["international", "national"] = "international"

    # Secrets
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    pii_key: SecretStr = SecretStr(DEV_PII_KEY)  # base64, 32 bytes: AES-256-GCM for ID numbers at rest
    # base64, 16 bytes: SM4-GCM, the national profile's key for personal data (key version 2,
    # services/pii.py). Unset in the embedded profile: made under key_dir; production under the
    # national profile refuses to start without it.
    pii_sm4_key: SecretStr | None = None
    blind_index_key: SecretStr = SecretStr(DEV_SECRET + "-blind-index")
    # PEM, Ed25519. Unset in the embedded profile: a random key is made for the install under
    # key_dir (services/identity/install_keys.py); production refuses to start without one.
    jwt_private_key_file: Path | None = None
    # Embedded profile: where the install's own keys are made and kept (owner-only files). Secrets
    # left at a development default above are replaced by this install's own at start.
    key_dir: Path = Path("var/keys")
    jwt_previous_public_key_files: list[Path] = []  # still accepted during a rotation
    jwt_issuer: str = "https://estate.example.gov.cn"
    jwt_audience: str = "estate-api"
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600

    # Sign-in by SMS
    otp_ttl_s: int = 300
    otp_max_attempts: int = 5
    otp_cooldown_s: int = 60
    otp_daily_cap_per_phone: int = 10
    otp_hourly_cap_per_ip: int = 30
    # Staff passwords and bank client secrets (services/identity/auth.py): the account locks after this
    # many wrong guesses in a row, for staff_lock_s; each address gets at most
    # password_signin_hourly_cap_per_ip guesses an hour over all accounts.
    staff_login_max_failures: int = Field(default=5, ge=1)
    staff_lock_s: int = Field(default=900, ge=1)
    password_signin_hourly_cap_per_ip: int = Field(default=60, ge=1)
    # Clerk look-ups of a person by ID number, per clerk (services/registry/reads.py).
    clerk_lookups_per_minute: int = Field(default=30, ge=1)
    clerk_lookups_per_day: int = Field(default=1000, ge=1)

    # External systems. Empty base URL in the embedded profile = start the simulator in-process.
    simulators_in_process: bool = True
    simulator_host: str = "127.0.0.1"
    simulator_base_port: int = 0  # 0 = ephemeral ports; the demo fixes them so URLs can be documented
    civil_registry_url: str = ""
    tax_url: str = ""
    elicense_url: str = ""
    appointment_centre_url: str = ""
    sms_gateway_url: str = ""
    sms_gateway_api_key: SecretStr = SecretStr(DEV_SMS_KEY)
    utility_providers_file: Path = Path(__file__).with_name("providers.toml")
    banks_file: Path = DEMO_BANKS_FILE
    external_timeout_s: float = 3.0
    external_retries: int = 2
    # Added for integrations/: backoff between retries, simulator URLs for config entries with an
    # empty base_url / callback_url, and adapter choice per system ({"tax": "http-json-v1"}).
    external_backoff_initial_s: float = 0.2
    external_backoff_max_s: float = 2.0
    utilities_simulator_url: str = ""
    banks_simulator_url: str = ""
    external_adapters: dict[str, str] = {}

    # Outbox
    outbox_in_process: bool = True
    outbox_batch_size: int = 20
    outbox_poll_interval_s: float = 0.5
    outbox_lease_s: float = 30.0
    outbox_max_attempts: int = 8
    outbox_backoff_base_s: float = 1.0
    outbox_backoff_cap_s: float = 600.0
    outbox_concurrency: int = 8
    # Delivered messages older than this are deleted by the workers (hourly). A delivered row is
    # the record that its idempotency key was used: keep it longer than any caller may retry.
    outbox_retention_days: float | None = Field(default=90.0, ge=1)
    # Inbound Idempotency-Key (docs/security.md): how long a caller's key replays its first answer.
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60)

    # Demo data
    demo_seed: int = 20261129
    demo_persons: int = 2000
    demo_units: int = 3000
    load_demo_data: bool = False

    # No-housing certificates (docs/certificates.md). Their signing keys are their own, never the
    # access-token key: a directory of Ed25519 keys, one current (<kid>.key.pem) and the retired
    # ones still verifying (<kid>.pub.pem); `python -m api certificate-keys rotate` adds one.
    # Unset in the embedded profile: key_dir/certificates is made; production refuses to start
    # without it, and without an https public_base_url (the QR opens {public_base_url}/v#token).
    certificate_keys_dir: Path | None = None
    certificates_file: Path = Path(__file__).with_name("certificates.toml")
    certificate_font_files: list[Path] = []  # empty: Debian's fonts-wqy-zenhei and fonts-hanazono
    certificate_presentation_ttl_s: int = Field(default=120, ge=10, le=900)
    certificate_issues_per_day: int = Field(default=10, ge=1)  # per person
    public_verifications_per_minute: int = Field(default=30, ge=1)  # per address, the public page's API

    log_level: str = "INFO"
    log_json: bool = True

    # Properties, guardians, access log (docs/properties.md)
    guardianship_reverify_days: int = Field(default=30, ge=1)  # ask the civil registry again after this
    # The civil registry's guardianship change feed: read before a ward read or `GET /me/wards`
    # unless a sync that started at most this long before the request succeeded (0 = every time;
    # concurrent reads share one call), and polled in the background every interval (0 = off).
    guardianship_feed_max_age_s: float = Field(default=0.0, ge=0)
    guardianship_feed_poll_interval_s: float = Field(default=30.0, ge=0)
    guardianship_feed_page_size: int = Field(default=200, ge=1, le=1000)
    # Appointments (docs/appointments.md): release due slots from their templates every interval (0 = off).
    slot_release_interval_s: float = Field(default=60.0, ge=0)
    # The other guardians get one in-app alert per (guardian, ward) per period: consecutive periods
    # of this length counted from a Shanghai midnight (default: one Shanghai calendar day).
    guardian_alert_period_s: int = Field(default=86400, ge=60, le=86400)
    ward_link_attempts_per_day: int = Field(default=20, ge=1)  # per guardian: the link is no ID oracle
    property_cache_ttl_s: int = Field(default=300, ge=1)  # bounds staleness if an invalidation is lost
    # First status check of a utility transfer a provider accepted but has not finished; later
    # checks follow the outbox's backoff.
    utility_poll_s: float = Field(default=60.0, gt=0)
    property_alert_hotline: str = "12345"  # named in property-change SMS; illustrative

    # The access log at scale (docs/decisions/0007-access-log-partitions-and-checkpoints.md). On
    # PostgreSQL it is partitioned by calendar month (UTC); partitions are made this many months
    # ahead at start and by every `python -m api audit` command.
    access_log_partitions_ahead: int = Field(default=3, ge=1, le=24)
    # `audit retain` drops whole months older than this, and only those a signed checkpoint covers.
    # Six months is the floor: the Cybersecurity Law (网络安全法, art. 21) keeps network logs that long.
    access_log_retention_months: int = Field(default=36, ge=6)
    # PEM private key (Ed25519 under the international profile, SM2 under the national one) that
    # signs access-log checkpoints: its own key, neither the token nor the certificate key. Only
    # `audit checkpoint` needs it, so the API servers need not hold it. Unset in the embedded
    # profile: made under key_dir; in production `audit checkpoint` refuses to run without it.
    audit_checkpoint_key_file: Path | None = None
    # Public keys (PEM) of earlier checkpoint keys, or of the signer for a verifier that does not
    # hold the private key: a checkpoint signed by any of these (or the key above) is trusted.
    audit_checkpoint_public_key_files: list[Path] = []

    # Bank mortgage filings (docs/filings.md): where uploaded attachments are kept (a directory
    # outside the database), how long a bank's active/suspended status is cached per process
    # (suspension also clears it at once), per-bank requests per minute, the largest attachment.
    filing_attachments_dir: Path = Path("var/filing-attachments")
    bank_status_cache_s: float = Field(default=3.0, ge=0, le=60)
    bank_requests_per_minute: int = Field(default=600, ge=1)
    filing_attachment_max_bytes: int = Field(default=2 * 1024 * 1024 - 4096, ge=1)

    # Booking (docs/appointments.md "Booking"): cancel or reschedule online until this many hours
    # before the slot; `appointment_no_show_limit` no-shows within the window block online booking
    # for `appointment_no_show_block_days` after the last; a freed seat is held for the first on the
    # waitlist this long; the reminder SMS goes the day before at this Shanghai hour.
    appointment_cutoff_h: float = Field(default=2.0, ge=0)
    appointment_no_show_limit: int = Field(default=3, ge=1)
    appointment_no_show_window_days: int = Field(default=30, ge=1)
    appointment_no_show_block_days: int = Field(default=30, ge=0)
    waitlist_offer_ttl_s: int = Field(default=900, ge=60)
    appointment_reminder_hour: int = Field(default=10, ge=0, le=23)

    @model_validator(mode="after")
    def _check_profile(self) -> Settings:
        if self.profile is Profile.PRODUCTION:
            problems = []
            if self.secret_key.get_secret_value() == DEV_SECRET:
                problems.append("ESTATE_SECRET_KEY is the development default")
            if self.pii_key.get_secret_value() == DEV_PII_KEY:
                problems.append("ESTATE_PII_KEY is the development default")
            if self.blind_index_key.get_secret_value().startswith(DEV_SECRET):
                problems.append("ESTATE_BLIND_INDEX_KEY is the development default")
            if self.crypto_profile == "national" and self.pii_sm4_key is None:
                problems.append("ESTATE_PII_SM4_KEY is not set (the national profile's personal-data key)")
            if self.sms_gateway_api_key.get_secret_value() == DEV_SMS_KEY:
                problems.append(
                    "ESTATE_SMS_GATEWAY_API_KEY is the SMS simulator's key: set the key the gateway issued"
                )
            if self.jwt_private_key_file is None:
                problems.append("ESTATE_JWT_PRIVATE_KEY_FILE is not set")
            if self.certificate_keys_dir is None:
                problems.append("ESTATE_CERTIFICATE_KEYS_DIR is not set (the certificate signing keys)")
            if not self.public_base_url.startswith("https://"):
                problems.append(
                    "ESTATE_PUBLIC_BASE_URL must be the service's https:// address (printed in QR codes)"
                )
            if self.database_url.startswith("sqlite"):
                problems.append("DATABASE_URL must point at PostgreSQL")
            if not self.redis_url:
                problems.append("REDIS_URL is required")
            if self.simulators_in_process:
                problems.append("ESTATE_SIMULATORS_IN_PROCESS must be false")
            if problems:
                raise ConfigurationError("refusing to start in production: " + "; ".join(problems))
        if self.workers > 1 and (self.database_url.startswith("sqlite") or not self.redis_url):
            raise ConfigurationError("more than one worker needs PostgreSQL and Redis")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.host}:{self.port}"

    def tortoise_config(self) -> dict[str, Any]:
        return tortoise_config(self.database_url)


MODEL_MODULES = [
    "services.registry.models",
    "services.identity.models",
    "services.outbox.models",
    "services.audit.models",
    "services.guardianship.models",
    "services.messages.models",
    "services.certificates.models",
    "services.appointments.models",
    "services.idempotency.models",
    "services.cases.models",
    "services.filings.models",
    "services.crypto.models",
]


def tortoise_config(database_url: str) -> dict[str, Any]:
    if database_url.startswith("sqlite://") and not database_url.startswith("sqlite://:memory:"):
        Path(database_url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)
    return {
        "connections": {"default": database_url},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "services.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)


def _cli_tortoise_config() -> dict[str, Any]:
    """Used by `python -m tortoise -c config.settings.TORTOISE_ORM` (makemigrations and the other
    Tortoise commands), through the module's `__getattr__`: built when asked, from the environment."""
    return load_settings().tortoise_config()


def __getattr__(name: str) -> Any:
    if name == "TORTOISE_ORM":
        return _cli_tortoise_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
