"""The composition root's wiring: opens every connection, builds the services, closes them.

Nothing here runs at import time; `start_services` is called from a Sanic listener (or a CLI
command) and `stop_services` undoes it in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from tortoise.context import TortoiseContext

from api.outbox_handlers import build_handlers
from certificates.keys import CertificateKeyring
from config.settings import Profile, Settings
from integrations.banks.config import load_banks, refuse_demo_secrets
from integrations.factory import Integrations, SimulatorSuite, build_integrations
from services.appointments import AppointmentPolicy, AppointmentService
from services.audit.checkpoints import CheckpointError, CheckpointKeys
from services.audit.partitions import PartitionsBusy, ensure_partitions
from services.cases import CasePolicy, CaseService, filing_kinds
from services.certificates import (
    Catalogue,
    CertificatePolicy,
    CertificateService,
    CertificateVerifier,
)
from services.clock import Clock, SystemClock
from services.crypto.switch import CryptoProfileMismatch, require_profile
from services.db import apply_migrations, close_database, open_database
from services.filings import BankRegistry, FilesystemStorage, seed_banks
from services.filings.service import FilingPolicy, FilingService
from services.guardianship.feed import GuardianshipFeed
from services.guardianship.reads import WardReadPolicy, WardReads
from services.identity.auth import AuthPolicy, AuthService, hash_password
from services.identity.install_keys import ensure_private_key, with_install_secrets
from services.identity.tokens import TokenSigner
from services.kv import KeyValueStore, MemoryStore, RedisStore
from services.outbox import HandlerTable, register_handlers
from services.pii import PiiVault
from services.ratelimit import RateLimiter
from services.registry.reads import PropertyReads
from standards.crypto_profile import (
    EDDSA,
    SigningKey,
    VerifyingKey,
    generate_signing_key,
    load_signing_key,
    load_verifying_key,
    signature_algorithm,
)

log = logging.getLogger("estate.container")


@dataclass
class Services:
    settings: Settings
    clock: Clock
    vault: PiiVault
    kv: KeyValueStore
    limiter: RateLimiter
    signer: TokenSigner
    integrations: Integrations
    auth: AuthService
    db: TortoiseContext
    session: aiohttp.ClientSession
    http_client: httpx.AsyncClient
    guardianship_feed: GuardianshipFeed
    property_reads: PropertyReads
    ward_reads: WardReads
    outbox_handlers: HandlerTable
    certificates: CertificateService
    verifier: CertificateVerifier
    appointments: AppointmentService
    cases: CaseService
    banks: BankRegistry
    filings: FilingService
    simulators: SimulatorSuite | None = None
    demo: Any = None
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)


async def start_services(
    settings: Settings, *, clock: Clock | None = None, migrate: bool | None = None
) -> Services:
    clock = clock or SystemClock()
    settings = with_install_secrets(settings)
    banks = load_banks(settings.banks_file)
    if settings.profile is Profile.PRODUCTION:
        refuse_demo_secrets(banks)  # before anything is opened
    config = settings.tortoise_config()
    vault = PiiVault.from_settings(settings)  # before migrating: migration 0005 encrypts phones
    if migrate if migrate is not None else (settings.is_sqlite or settings.migrate_on_start):
        await apply_migrations(config, vault=vault)
    db = await open_database(config)
    try:  # the blind indexes must be of this profile (services/crypto/switch.py)
        await require_profile(settings.crypto_profile)
    except CryptoProfileMismatch:
        await close_database(db)
        raise
    try:  # the access log's monthly partitions, ahead of the rows (services/audit/partitions.py)
        await ensure_partitions(now=clock.now(), months_ahead=settings.access_log_partitions_ahead)
    except PartitionsBusy as exc:  # an append makes its month itself; the next start tries again
        log.warning("access log partitions not made at start: %s", exc)
    prefix = settings.redis_key_prefix
    kv: KeyValueStore = (
        RedisStore.from_url(settings.redis_url, prefix=prefix) if settings.redis_url else MemoryStore()
    )
    limiter = RateLimiter.from_url(settings.redis_url, prefix=prefix)
    session = aiohttp.ClientSession()
    http_client = httpx.AsyncClient()

    simulators = None
    if settings.simulators_in_process:
        simulators = await SimulatorSuite.start(
            settings.simulator_host, settings.simulator_base_port, settings=settings, banks=banks
        )
        settings = settings.model_copy(update=simulators.settings_overrides())
    # The participating banks are rows of the database: each callback looks its bank up when sent.
    bank_registry = BankRegistry(
        vault=vault,
        kv=kv,
        clock=clock,
        hash_secret=hash_password,
        status_cache_s=settings.bank_status_cache_s,
    )
    integrations = build_integrations(
        settings,
        session=session,
        http_client=http_client,
        banks=banks,
        bank_directory=bank_registry.callback_endpoint,
    )

    signer = TokenSigner.from_settings(settings, clock)
    auth = AuthService(
        signer=signer,
        sms=integrations.sms,
        limiter=limiter,
        kv=kv,
        vault=vault,
        clock=clock,
        policy=AuthPolicy.from_settings(settings),
        otp_secret=settings.secret_key.get_secret_value(),
    )
    keyring = certificate_keyring(settings)
    catalogue = Catalogue.load(settings.certificates_file)
    certificates = CertificateService(
        keyring=keyring,
        font_files=settings.certificate_font_files,
        catalogue=catalogue,
        vault=vault,
        civil_registry=integrations.civil_registry,
        limiter=limiter,
        clock=clock,
        policy=CertificatePolicy(
            public_base_url=settings.base_url,
            presentation_ttl_s=settings.certificate_presentation_ttl_s,
            issues_per_day=settings.certificate_issues_per_day,
        ),
    )
    verifier = CertificateVerifier(
        keyring=keyring,
        catalogue=catalogue,
        limiter=limiter,
        clock=clock,
        public_per_minute=settings.public_verifications_per_minute,
    )
    appointments = AppointmentService(tax=integrations.tax, clock=clock, policy=appointment_policy(settings))
    cases = CaseService(
        kv=kv,
        clock=clock,
        vault=vault,
        civil_registry=integrations.civil_registry,
        utilities=integrations.utilities,
        policy=CasePolicy(hotline=settings.property_alert_hotline, utility_poll_s=settings.utility_poll_s),
    )
    for kind in filing_kinds(kv=kv, clock=clock, hotline=settings.property_alert_hotline):
        cases.add_kind(kind)
    filings = FilingService(
        banks=bank_registry,
        storage=FilesystemStorage(settings.filing_attachments_dir),
        vault=vault,
        kv=kv,
        limiter=limiter,
        clock=clock,
        policy=FilingPolicy(
            hotline=settings.property_alert_hotline,
            requests_per_minute=settings.bank_requests_per_minute,
            attachment_max_bytes=settings.filing_attachment_max_bytes,
        ),
    )
    # Once, before anything can enqueue: enqueue refuses a topic not in it (services/outbox/handlers.py).
    outbox_handlers = build_handlers(
        integrations,
        vault=vault,
        auth=auth,
        certificates=certificates,
        appointments=appointments,
        cases=cases,
    )
    register_handlers(outbox_handlers)
    feed = GuardianshipFeed(
        civil_registry=integrations.civil_registry,
        vault=vault,
        clock=clock,
        max_age_s=settings.guardianship_feed_max_age_s,
        page_size=settings.guardianship_feed_page_size,
    )
    services = Services(
        settings=settings,
        clock=clock,
        vault=vault,
        kv=kv,
        limiter=limiter,
        signer=signer,
        integrations=integrations,
        auth=auth,
        db=db,
        session=session,
        http_client=http_client,
        guardianship_feed=feed,
        property_reads=PropertyReads(
            vault=vault,
            kv=kv,
            limiter=limiter,
            clock=clock,
            cache_ttl_s=settings.property_cache_ttl_s,
            clerk_limits=(settings.clerk_lookups_per_minute, settings.clerk_lookups_per_day),
        ),
        ward_reads=WardReads(
            vault=vault,
            civil_registry=integrations.civil_registry,
            feed=feed,
            kv=kv,
            clock=clock,
            policy=WardReadPolicy(
                reverify_days=settings.guardianship_reverify_days,
                cache_ttl_s=settings.property_cache_ttl_s,
                hotline=settings.property_alert_hotline,
                alert_period_s=settings.guardian_alert_period_s,
            ),
        ),
        outbox_handlers=outbox_handlers,
        certificates=certificates,
        verifier=verifier,
        appointments=appointments,
        cases=cases,
        banks=bank_registry,
        filings=filings,
        simulators=simulators,
    )
    await auth.restore_revocations()
    if settings.load_demo_data:
        await load_demo(services)
    return services


def appointment_policy(settings: Settings) -> AppointmentPolicy:
    return AppointmentPolicy(
        cutoff_h=settings.appointment_cutoff_h,
        no_show_limit=settings.appointment_no_show_limit,
        no_show_window_days=settings.appointment_no_show_window_days,
        no_show_block_days=settings.appointment_no_show_block_days,
        waitlist_offer_ttl_s=settings.waitlist_offer_ttl_s,
        reminder_at=time(settings.appointment_reminder_hour, 0),
    )


def certificate_keyring(settings: Settings) -> CertificateKeyring:
    """Production loads the configured keys (and refuses to start without them, config/settings.py,
    or with a current key of the other cryptography profile's algorithm); the embedded profile
    makes the install's own under key_dir on first start, and rotates when the profile changed."""
    algorithm = signature_algorithm(settings.crypto_profile)
    if settings.certificate_keys_dir is not None and settings.profile is Profile.PRODUCTION:
        return CertificateKeyring.load(settings.certificate_keys_dir, algorithm)
    return CertificateKeyring.ensure(
        settings.certificate_keys_dir or settings.key_dir / "certificates", algorithm
    )


_EMBEDDED_CHECKPOINT_KEYS = {EDDSA: "audit-checkpoint-ed25519.pem", "SM2SM3": "audit-checkpoint-sm2.pem"}


def audit_checkpoint_keys(settings: Settings, *, for_signing: bool) -> CheckpointKeys:
    """The access-log checkpoint key (services/audit/checkpoints.py) and the public keys trusted.

    `for_signing`: the key must be there and of the profile's algorithm; the embedded profile makes
    one under key_dir (a file per algorithm, so a profile switch keeps the old one verifying), and
    production refuses to sign without ESTATE_AUDIT_CHECKPOINT_KEY_FILE. A verifier loads only
    what exists: the key file's public half and ESTATE_AUDIT_CHECKPOINT_PUBLIC_KEY_FILES."""
    algorithm = signature_algorithm(settings.crypto_profile)
    key_file = settings.audit_checkpoint_key_file
    trusted: list[VerifyingKey] = []
    if key_file is None and settings.profile is Profile.EMBEDDED:
        key_file = Path(settings.key_dir) / _EMBEDDED_CHECKPOINT_KEYS[algorithm]
        if for_signing:
            ensure_private_key(key_file, lambda: generate_signing_key(algorithm).pem())
        for other in _EMBEDDED_CHECKPOINT_KEYS.values():
            path = Path(settings.key_dir) / other
            if path != key_file and path.exists():
                trusted.append(_checkpoint_key(path).public_key())
    signing: SigningKey | None = None
    if key_file is not None and (for_signing or key_file.exists()):
        signing = _checkpoint_key(key_file)
    if for_signing and signing is None:
        raise CheckpointError(
            "ESTATE_AUDIT_CHECKPOINT_KEY_FILE is not set: production signs checkpoints only with a "
            "key of its own (PEM, Ed25519 or SM2 by ESTATE_CRYPTO_PROFILE)"
        )
    if for_signing and signing is not None and signing.algorithm != algorithm:
        raise CheckpointError(
            f"the checkpoint key in {key_file} is {signing.algorithm}, but the "
            f"{settings.crypto_profile} profile signs with {algorithm}: configure a key of that algorithm "
            "and keep the old one's public half in ESTATE_AUDIT_CHECKPOINT_PUBLIC_KEY_FILES"
        )
    for path in settings.audit_checkpoint_public_key_files:
        try:
            trusted.append(load_verifying_key(Path(path).read_bytes()))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"checkpoint public key {path} cannot be used: {exc}") from exc
    if signing is not None:
        trusted.append(signing.public_key())
    return CheckpointKeys(signing if for_signing else None, trusted)


def _checkpoint_key(path: Path) -> SigningKey:
    try:
        return load_signing_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint key {path} cannot be used: {exc}") from exc


async def load_demo(services: Services) -> None:
    from demo import civil_registry_dataset_from_db, seed_demo_data
    from integrations.banks.config import load_banks

    settings = services.settings
    services.demo = await seed_demo_data(
        vault=services.vault,
        seed=settings.demo_seed,
        persons=settings.demo_persons,
        units=settings.demo_units,
        banks=load_banks(settings.banks_file),
        clock=services.clock,  # releases the slots due now, so the demo shows free slots at once
    )
    # The demo banks become participating banks (the database is the source of truth from then on).
    await seed_banks(load_banks(settings.banks_file), vault=services.vault, clock=services.clock)
    if services.simulators is not None:
        dataset = await civil_registry_dataset_from_db(vault=services.vault, seed=settings.demo_seed)
        services.simulators.civil_registry.load(people=dataset.people, guardianships=dataset.guardianships)


async def stop_services(services: Services) -> None:
    services.stop_event.set()
    if services.background:
        # Let workers finish what they hold (bounded), then cancel what is left.
        _, pending = await asyncio.wait(services.background, timeout=5)
        for task in pending:
            task.cancel()
        for task in services.background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    await services.http_client.aclose()
    await services.session.close()
    if services.simulators is not None:
        await services.simulators.stop()
    await services.limiter.close()
    await services.kv.close()
    await close_database(services.db)
