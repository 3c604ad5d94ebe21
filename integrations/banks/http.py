"""Bank callback senders. A bank's `adapter` in config/banks.toml picks one from ADAPTERS.

"signed-json-v1": POST JSON to the bank's callback URL with `X-Estate-Signature: sha256=<hex>`,
the HMAC-SHA256 of the exact body bytes under the bank's callback secret, and `Idempotency-Key`
so the bank can drop repeats of an at-least-once delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp

from integrations.banks.base import SIGNATURE_HEADER, BankAck
from integrations.banks.config import BankConfig
from integrations.base import HttpAdapter, RetryPolicy
from integrations.errors import RequestRejected

# Business codes in a bank's answer body. Source: the callback interface we publish to banks
# (docs/integrations.md); banks answer HTTP 200 with one of these.
ACK_CODES: dict[str, str | None] = {
    "0000": None,  # accepted
    "1001": "UNKNOWN_FILING",  # the bank does not know this filing reference
    "1002": "FILING_CLOSED",  # the bank closed the filing already
}
EVENT = "mortgage_filing.status_changed"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret, body), header)


class SignedJsonCallback(HttpAdapter):
    """One bank's callback endpoint; the BankRouter does the timing, logging and counting."""

    system = "banks"

    def __init__(
        self,
        bank: BankConfig,
        *,
        session: aiohttp.ClientSession,
        timeout_s: float,
        retry: RetryPolicy,
        callback_url: str | None = None,
    ) -> None:
        url = callback_url or bank.callback_url
        super().__init__(base_url=url, session=session, timeout_s=timeout_s, retry=retry)
        self.bank = bank

    async def send(
        self, idempotency_key: str, filing_ref: str, status: str, certificate_number: str | None, detail: str
    ) -> BankAck:
        body = json.dumps(
            {
                "event": EVENT,
                "bank_code": self.bank.code,
                "filing_ref": filing_ref,
                "status": status,
                "certificate_number": certificate_number,
                "detail": detail,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        answer = await self._request(
            "notify_filing",
            "POST",
            "",
            data=body,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self.bank.callback_secret, body),
            },
            idempotency_key=idempotency_key,
        )
        return self._ack(answer)

    def _ack(self, answer: Any) -> BankAck:
        with self._parsing("notify_filing"):
            code = str(answer["code"])
            refusal = ACK_CODES.get(code, code)
            if refusal is not None:
                raise RequestRejected(
                    str(answer.get("message", "")) or refusal,
                    system=self.system,
                    operation="notify_filing",
                    code=refusal,
                )
            receipt = answer.get("receipt_no")
            return BankAck(bank_code=self.bank.code, receipt_no=str(receipt) if receipt is not None else None)


ADAPTERS: dict[str, type[SignedJsonCallback]] = {"signed-json-v1": SignedJsonCallback}
