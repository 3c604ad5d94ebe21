"""Participating banks: the database is the one source of truth for who may file, on what terms,
and where their callbacks go. An administrator registers a bank, issues and rotates its client
credentials, suspends and reinstates it; config/banks.toml only seeds the demo (`seed_banks`).

Invariant (suspension): a suspended bank is refused on its very next request, whatever tokens it
holds. Every bank request asks `ensure_active`, which reads the bank's status from the key-value
store (kept `status_cache_s`, a few seconds) or the database; `suspend` writes the row and then
overwrites the cached status, so with the shared store (Redis) the next request anywhere sees
it. With the in-process store of a single-process install the same holds; several processes each
with their own memory store may serve a suspended bank for at most `status_cache_s`. The bank's
API clients are deactivated too, so it cannot sign in again.

The callback MAC: a bank verifies our callbacks with one MAC, `hmac-sha256` or `hmac-sm3`
(integrations/banks/http.py); `callback_mac` is the bank's choice, NULL the cryptography
profile's. It is read with the rest of the endpoint on every callback, so a change reaches the
bank's next callback, retries of an earlier one included: the bank must switch its receiver at the
same time.

Secrets: the callback signing secret is encrypted with the PII vault (context
`bank_callback_secret`); the client secret is shown once and only its argon2 hash is stored.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tortoise.transactions import in_transaction

from integrations.banks.base import CALLBACK_MACS, CallbackEndpoint
from integrations.banks.http import ADAPTERS
from services.clock import Clock
from services.errors import BankExists, BankNotRegistered, BankSuspended, NotFound, ValidationFailed
from services.filings.models import ACTIVE, FILING_TYPES, SUSPENDED, ParticipatingBank
from services.filings.views import BankView, Credentials
from services.identifiers import normalise_credit_code
from services.identity.models import ApiClient
from services.kv import KeyValueStore
from services.pii import PiiVault
from services.registry.models import Organisation

VAULT_CONTEXT = "bank_callback_secret"
BANK_SCOPES = ("mortgage:file", "mortgage:read")
MIN_SECRET_LENGTH = 16
_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{1,31}$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")


@dataclass(frozen=True)
class BankRegistration:
    code: str
    name: str
    credit_code: str
    callback_url: str  # empty: the bank simulator (demo and tests only)
    callback_secret: str = field(repr=False)
    branches: Sequence[str] = ()
    filing_types: Sequence[str] = FILING_TYPES
    daily_quota: int = 1000
    adapter: str = "signed-json-v2"
    callback_mac: str | None = None  # one of CALLBACK_MACS; None: the cryptography profile's


class BankRegistry:
    def __init__(
        self,
        *,
        vault: PiiVault,
        kv: KeyValueStore,
        clock: Clock,
        hash_secret: Callable[[str], str],
        status_cache_s: float = 3.0,
    ) -> None:
        self.vault = vault
        self.kv = kv
        self.clock = clock
        self._hash_secret = hash_secret  # argon2, as every client secret (services/identity)
        self.status_cache_s = status_cache_s

    # --- administrators ---------------------------------------------------------------------

    async def register(self, reg: BankRegistration) -> BankView:
        code = reg.code.strip().lower()
        problems = _problems(reg, code)
        if problems:
            raise ValidationFailed(
                "银行登记信息不合法：" + "；".join(problems),
                "The bank's registration is not valid: " + "; ".join(problems),
                problems=problems,
            )
        credit_code = normalise_credit_code(reg.credit_code)
        now = self.clock.now()
        async with in_transaction() as conn:
            if await ParticipatingBank.exists(code=code, using_db=conn):
                raise BankExists(code=code)
            org = await Organisation.get_or_none(credit_code=credit_code, using_db=conn)
            if org is None:
                org = await Organisation.create(
                    name=reg.name, credit_code=credit_code, kind="bank", bank_code=code, using_db=conn
                )
            elif org.bank_code not in (None, code):
                raise BankExists(credit_code=credit_code)
            else:
                await (
                    Organisation.filter(id=org.id)
                    .using_db(conn)
                    .update(name=reg.name, kind="bank", bank_code=code)
                )
            await ParticipatingBank.create(
                code=code,
                organisation_id=org.id,
                branches=list(reg.branches),
                filing_types=" ".join(t for t in FILING_TYPES if t in reg.filing_types),
                daily_quota=reg.daily_quota,
                callback_url=reg.callback_url,
                callback_secret_enc=self.vault.encrypt(reg.callback_secret, context=VAULT_CONTEXT),
                adapter=reg.adapter,
                callback_mac=reg.callback_mac,
                status=ACTIVE,
                created_at=now,
                updated_at=now,
                using_db=conn,
            )
        await self.kv.delete(_status_key(code))
        return await self.view(code)

    async def issue_credentials(self, code: str) -> Credentials:
        """Issue the bank's client credentials, or rotate its secret (same client id): the old
        secret stops working at once; tokens already issued live until they expire."""
        bank = await self._bank(code)
        secret = secrets.token_urlsafe(32)
        secret_hash = self._hash_secret(secret)
        active = bank.status == ACTIVE
        client = await ApiClient.filter(bank_code=bank.code).order_by("id").first()
        if client is None:
            client_id = f"bank-{bank.code}-{secrets.token_hex(4)}"
            await ApiClient.create(
                client_id=client_id,
                secret_hash=secret_hash,
                organisation_id=bank.organisation_id,  # type: ignore[attr-defined]
                bank_code=bank.code,
                scopes=" ".join(BANK_SCOPES),
                active=active,
            )
        else:
            client_id = client.client_id
            await ApiClient.filter(id=client.id).update(
                secret_hash=secret_hash, failed_logins=0, locked_until=None, active=active
            )
        return Credentials(client_id=client_id, client_secret=secret, scopes=BANK_SCOPES)

    async def set_status(self, code: str, status: str) -> BankView:
        """Suspend (`suspended`) or reinstate (`active`) a bank; takes effect on its next request."""
        bank = await self._bank(code)
        async with in_transaction() as conn:
            await (
                ParticipatingBank.filter(id=bank.id)
                .using_db(conn)
                .update(status=status, updated_at=self.clock.now())
            )
            await ApiClient.filter(bank_code=bank.code).using_db(conn).update(active=status == ACTIVE)
        if self.status_cache_s > 0:
            await self.kv.set(_status_key(bank.code), status.encode(), ttl_s=self.status_cache_s)
        else:
            await self.kv.delete(_status_key(bank.code))
        return await self.view(code)

    async def set_callback_mac(self, code: str, mac: str | None) -> BankView:
        """Sign the bank's callbacks with `mac` from the next one on (None: the profile's)."""
        problem = _mac_problem(mac)
        if problem:
            raise ValidationFailed(
                "银行登记信息不合法：" + problem,
                "The bank's registration is not valid: " + problem,
                problems=[problem],
            )
        bank = await self._bank(code)
        await ParticipatingBank.filter(id=bank.id).update(callback_mac=mac, updated_at=self.clock.now())
        return await self.view(code)

    async def view(self, code: str) -> BankView:
        return _view(await self._bank(code), await _client_id(code))

    async def list(self) -> list[BankView]:
        banks = await ParticipatingBank.all().select_related("organisation").order_by("code")
        clients = {
            c.bank_code: c.client_id for c in await ApiClient.filter(bank_code__in=[b.code for b in banks])
        }
        return [_view(b, clients.get(b.code)) for b in banks]

    # --- every bank request, every callback --------------------------------------------------

    async def ensure_active(self, code: str) -> None:
        """Raise BankSuspended for a suspended bank (module docstring). A bank without a row is
        left to the routes that need one (`bank_for`), which refuse it."""
        key = _status_key(code)
        cached = await self.kv.get(key)
        if cached is None:
            row = await ParticipatingBank.get_or_none(code=code).only("id", "status")
            cached = (row.status if row is not None else "unknown").encode()
            if self.status_cache_s > 0:
                await self.kv.set(key, cached, ttl_s=self.status_cache_s)
        if cached == SUSPENDED.encode():
            raise BankSuspended(bank_code=code)

    async def bank_for(self, code: str | None) -> ParticipatingBank:
        """The calling bank's row: refused if it has none or is suspended."""
        bank = await ParticipatingBank.get_or_none(code=code or "") if code else None
        if bank is None:
            raise BankNotRegistered(bank_code=code)
        if bank.status != ACTIVE:
            raise BankSuspended(bank_code=code)
        return bank

    async def callback_endpoint(self, code: str) -> CallbackEndpoint | None:
        """Looked up per callback: a bank registered or changed at run time is reached at once."""
        bank = await ParticipatingBank.get_or_none(code=code)
        if bank is None:
            return None
        return CallbackEndpoint(
            bank_code=bank.code,
            url=bank.callback_url,
            secret=self.vault.decrypt(bank.callback_secret_enc, context=VAULT_CONTEXT),
            adapter=bank.adapter,
            mac=bank.callback_mac,
        )

    async def _bank(self, code: str) -> ParticipatingBank:
        bank = await ParticipatingBank.get_or_none(code=code).select_related("organisation")
        if bank is None:
            raise NotFound(bank_code=code)
        return bank


async def seed_banks(banks: Iterable[Any], *, vault: PiiVault, clock: Clock) -> int:
    """The demo: a `participating_bank` row for each bank of config/banks.toml (BankConfig) whose
    organisation the seeder wrote (`organisation.bank_code`); returns the rows added."""
    added = 0
    now = clock.now()
    for bank in banks:
        if await ParticipatingBank.exists(code=bank.code):
            continue
        org = await Organisation.get_or_none(bank_code=bank.code)
        if org is None:
            continue
        await ParticipatingBank.create(
            code=bank.code,
            organisation_id=org.id,
            branches=[],
            filing_types=" ".join(FILING_TYPES),
            daily_quota=1000,
            callback_url=bank.callback_url,
            callback_secret_enc=vault.encrypt(bank.callback_secret, context=VAULT_CONTEXT),
            adapter=bank.adapter,
            callback_mac=bank.callback_mac,
            status=ACTIVE,
            created_at=now,
            updated_at=now,
        )
        added += 1
    return added


def _problems(reg: BankRegistration, code: str) -> list[str]:
    problems = []
    if not _CODE.match(code):
        problems.append("code: 2-32 lower-case letters, digits and dashes")
    if not reg.name.strip():
        problems.append("name: required")
    if reg.callback_url and not _URL.match(reg.callback_url):
        problems.append("callback_url: an http(s) URL")
    if len(reg.callback_secret) < MIN_SECRET_LENGTH:
        problems.append(f"callback_secret: at least {MIN_SECRET_LENGTH} characters")
    if not reg.filing_types or not set(reg.filing_types) <= set(FILING_TYPES):
        problems.append("filing_types: some of create, change, cancel")
    if reg.daily_quota < 1:
        problems.append("daily_quota: at least 1")
    if reg.adapter not in ADAPTERS:
        problems.append(f"adapter: one of {', '.join(sorted(ADAPTERS))}")
    mac_problem = _mac_problem(reg.callback_mac)
    if mac_problem:
        problems.append(mac_problem)
    return problems


def _mac_problem(mac: str | None) -> str | None:
    if mac is not None and mac not in CALLBACK_MACS:
        return f"callback_mac: one of {', '.join(sorted(CALLBACK_MACS))}, or null for the profile's"
    return None


def _status_key(code: str) -> str:
    return f"bank-status:{code}"


async def _client_id(code: str) -> str | None:
    client = await ApiClient.filter(bank_code=code).order_by("id").first()
    return client.client_id if client is not None else None


def _view(bank: ParticipatingBank, client_id: str | None) -> BankView:
    org: Organisation = bank.organisation
    return BankView(
        code=bank.code,
        name=org.name,
        credit_code=org.credit_code,
        branches=tuple(bank.branches or ()),
        filing_types=tuple(bank.filing_types.split()),  # type: ignore[arg-type]
        daily_quota=bank.daily_quota,
        callback_url=bank.callback_url,
        adapter=bank.adapter,
        callback_mac=bank.callback_mac,  # type: ignore[arg-type]
        status=bank.status,  # type: ignore[arg-type]
        client_id=client_id,
        created_at=bank.created_at,
        updated_at=bank.updated_at,
    )
