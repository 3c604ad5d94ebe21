"""Contract of the bank callbacks: tell a bank what became of its mortgage filing."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field

from integrations.base import ExternalSystem

# v1 "sha256=<hex>" / "sm3=<hex>", v2 "v2=<hex>" / "v2-sm3=<hex>" (integrations/banks/http.py)
SIGNATURE_HEADER = "X-Estate-Signature"
TIMESTAMP_HEADER = "X-Estate-Timestamp"  # v2: Unix seconds, signed with the body
HMAC_SHA256 = "hmac-sha256"
HMAC_SM3 = "hmac-sm3"
CALLBACK_MACS: frozenset[str] = frozenset({HMAC_SHA256, HMAC_SM3})  # what a bank may verify
BAD_SIGNATURE = "BAD_SIGNATURE"
WRONG_MAC = "WRONG_MAC"  # signed, but with a MAC the bank is not configured for
STALE_TIMESTAMP = "STALE_TIMESTAMP"
UNKNOWN_FILING = "UNKNOWN_FILING"


@dataclass(frozen=True)
class CallbackEndpoint:
    """Where and how one bank receives our callbacks: looked up per message (a bank registered
    at run time gets its callbacks without a restart)."""

    bank_code: str
    url: str  # empty: the bank simulator's `/<code>/callback`
    secret: str = field(repr=False)
    adapter: str = "signed-json-v1"
    mac: str | None = None  # one of CALLBACK_MACS; None: the cryptography profile's


@dataclass(frozen=True)
class BankAck:
    bank_code: str
    receipt_no: str | None = None  # the bank's reference for our callback, when it gives one


class BankCallbacks(ExternalSystem):
    system = "banks"

    async def notify_filing(
        self,
        idempotency_key: str,
        bank_code: str,
        filing_ref: str,
        status: str,
        certificate_number: str | None,
        detail: str,
    ) -> BankAck:
        """Raises AdapterNotConfigured for a bank that is not configured."""
        return await self._call(
            "notify_filing",
            lambda: self._notify_filing(
                idempotency_key, bank_code, filing_ref, status, certificate_number, detail
            ),
            bank_code=bank_code,
            filing_ref=filing_ref,
            status=status,
        )

    @abstractmethod
    async def _notify_filing(
        self,
        idempotency_key: str,
        bank_code: str,
        filing_ref: str,
        status: str,
        certificate_number: str | None,
        detail: str,
    ) -> BankAck: ...
