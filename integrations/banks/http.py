"""Bank callback senders. A bank's `adapter` (its `participating_bank` row, or config/banks.toml
for the integration tests) picks one from ADAPTERS.

"signed-json-v1": POST JSON to the bank's callback URL with `X-Estate-Signature: sha256=<hex>`,
the HMAC-SHA256 of the exact body bytes under the bank's callback secret, and `Idempotency-Key`
so the bank can drop repeats of an at-least-once delivery. A captured v1 callback can be replayed
to the bank at any later time: the signature covers no time.

"signed-json-v2": the same body, with `X-Estate-Timestamp: <Unix seconds>` and
`X-Estate-Signature: v2=<hex>`, the HMAC-SHA256 of `<timestamp>.` followed by the body bytes. The
receiver refuses a timestamp outside its window (`REPLAY_WINDOW_S` either side of its clock), so a
captured callback is useless after a few minutes; within the window the `Idempotency-Key` dedupes.
`verify_v2` is the receiver's check, written once here for the simulator and for banks to copy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from integrations.banks.base import (
    BAD_SIGNATURE,
    SIGNATURE_HEADER,
    STALE_TIMESTAMP,
    TIMESTAMP_HEADER,
    BankAck,
    CallbackEndpoint,
)
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
REPLAY_WINDOW_S = 300


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def sign_v2(secret: str, timestamp: int, body: bytes) -> str:
    return "v2=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_v2(
    secret: str,
    body: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    now: float,
    window_s: float = REPLAY_WINDOW_S,
) -> str | None:
    """None if the callback is genuine and fresh, else why not (BAD_SIGNATURE, STALE_TIMESTAMP).
    The signature is checked first: an unsigned timestamp says nothing."""
    if timestamp is None or signature is None or not timestamp.isdigit() or len(timestamp) > 12:
        return BAD_SIGNATURE
    if not hmac.compare_digest(sign_v2(secret, int(timestamp), body), signature):
        return BAD_SIGNATURE
    if abs(now - int(timestamp)) > window_s:
        return STALE_TIMESTAMP
    return None


def endpoint_of(bank: BankConfig | CallbackEndpoint) -> CallbackEndpoint:
    if isinstance(bank, CallbackEndpoint):
        return bank
    return CallbackEndpoint(
        bank_code=bank.code, url=bank.callback_url, secret=bank.callback_secret, adapter=bank.adapter
    )


class SignedJsonCallback(HttpAdapter):
    """One bank's callback endpoint (v1); the BankRouter does the timing, logging and counting."""

    system = "banks"

    def __init__(
        self,
        bank: BankConfig | CallbackEndpoint,
        *,
        session: aiohttp.ClientSession,
        timeout_s: float,
        retry: RetryPolicy,
        callback_url: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint_of(bank)
        url = callback_url or self.endpoint.url
        super().__init__(base_url=url, session=session, timeout_s=timeout_s, retry=retry)
        self._now = now

    def _signature_headers(self, body: bytes) -> dict[str, str]:
        return {SIGNATURE_HEADER: sign(self.endpoint.secret, body)}

    async def send(
        self, idempotency_key: str, filing_ref: str, status: str, certificate_number: str | None, detail: str
    ) -> BankAck:
        body = json.dumps(
            {
                "event": EVENT,
                "bank_code": self.endpoint.bank_code,
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
            headers={"Content-Type": "application/json", **self._signature_headers(body)},
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
            return BankAck(
                bank_code=self.endpoint.bank_code, receipt_no=str(receipt) if receipt is not None else None
            )


class SignedJsonCallbackV2(SignedJsonCallback):
    """v2: the signature covers a timestamp, so the receiver can refuse replays (module docstring).
    Every delivery the outbox retries is signed afresh, with the time it is sent."""

    def _signature_headers(self, body: bytes) -> dict[str, str]:
        timestamp = int(self._now())
        return {
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign_v2(self.endpoint.secret, timestamp, body),
        }


ADAPTERS: dict[str, type[SignedJsonCallback]] = {
    "signed-json-v1": SignedJsonCallback,
    "signed-json-v2": SignedJsonCallbackV2,
}
