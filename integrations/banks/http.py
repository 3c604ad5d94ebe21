"""Bank callback senders. A bank's `adapter` (its `participating_bank` row, or config/banks.toml
for the integration tests) picks one from ADAPTERS; its MAC (`callback_mac`) picks the HMAC.

"signed-json-v1": POST JSON to the bank's callback URL with `X-Estate-Signature: sha256=<hex>`,
the HMAC-SHA256 of the exact body bytes under the bank's callback secret, and `Idempotency-Key`
so the bank can drop repeats of an at-least-once delivery. A captured v1 callback can be replayed
to the bank at any later time: the signature covers no time.

"signed-json-v2": the same body, with `X-Estate-Timestamp: <Unix seconds>` and
`X-Estate-Signature: v2=<hex>`, the HMAC-SHA256 of `<timestamp>.` followed by the body bytes. The
receiver refuses a timestamp outside its window (`REPLAY_WINDOW_S` either side of its clock), so a
captured callback is useless after a few minutes; within the window the `Idempotency-Key` dedupes.
`verify_v2` is the receiver's check, written once here for the simulator and for banks to copy.

The MAC. A bank verifies one: `hmac-sha256` or `hmac-sm3` (HMAC over SM3, GB/T 32905, RFC 2104
construction, from standards.crypto_profile `keyed_index`). Which one is the bank's
configuration (`callback_mac` in config/banks.toml, `CallbackEndpoint.mac`); unset, the
cryptography profile's (`default_mac`: HMAC-SHA256 international, HMAC-SM3 national). The
label before `=` names the algorithm, so a receiver can tell what it was sent:

    MAC          v1 header value    v2 header value      (same signed bytes as above)
    hmac-sha256  sha256=<hex>       v2=<hex>
    hmac-sm3     sm3=<hex>          v2-sm3=<hex>

HMAC-SHA256 headers are byte for byte what they were before SM3 existed. Invariant: a receiver
checks with the MAC it is configured for and nothing else; a value labelled for another MAC is
refused (`WRONG_MAC`, 401) without being computed, so a sender cannot choose a weaker MAC for a
bank than the bank chose, and the label is never trusted to pick the algorithm (no downgrade).
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from integrations.banks.base import (
    BAD_SIGNATURE,
    HMAC_SHA256,
    HMAC_SM3,
    SIGNATURE_HEADER,
    STALE_TIMESTAMP,
    TIMESTAMP_HEADER,
    WRONG_MAC,
    BankAck,
    CallbackEndpoint,
)
from integrations.banks.config import BankConfig
from integrations.base import HttpAdapter, RetryPolicy
from integrations.errors import RequestRejected
from standards.crypto_profile import INTERNATIONAL, NATIONAL, ProfileName, keyed_index

# Business codes in a bank's answer body. Source: the callback interface we publish to banks
# (docs/integrations.md); banks answer HTTP 200 with one of these.
ACK_CODES: dict[str, str | None] = {
    "0000": None,  # accepted
    "1001": "UNKNOWN_FILING",  # the bank does not know this filing reference
    "1002": "FILING_CLOSED",  # the bank closed the filing already
}
EVENT = "mortgage_filing.status_changed"
REPLAY_WINDOW_S = 300

# MAC -> (the profile whose keyed index it is, v1 label, v2 label). Source: the module docstring,
# which is the callback interface we publish to banks.
MACS: dict[str, tuple[ProfileName, str, str]] = {
    HMAC_SHA256: (INTERNATIONAL, "sha256", "v2"),
    HMAC_SM3: (NATIONAL, "sm3", "v2-sm3"),
}
_LABELS: dict[str, str] = {label: mac for mac, (_, v1, v2) in MACS.items() for label in (v1, v2)}


def profile_mac(profile: ProfileName) -> str:
    """The MAC a bank that configured none verifies under the cryptography profile."""
    return HMAC_SHA256 if profile == INTERNATIONAL else HMAC_SM3


def _hex(mac: str, secret: str, data: bytes) -> str:
    return keyed_index(MACS[mac][0], secret.encode(), data).hex()


def labelled_mac(header: str | None) -> str | None:
    """The MAC a signature header's label names (`sm3=...` -> hmac-sm3); None if none we know."""
    return _LABELS.get(header.partition("=")[0]) if header and "=" in header else None


def sign(secret: str, body: bytes, mac: str = HMAC_SHA256) -> str:
    return f"{MACS[mac][1]}={_hex(mac, secret, body)}"


def verify_v1(secret: str, body: bytes, signature: str | None, mac: str = HMAC_SHA256) -> str | None:
    """None if `signature` is the bank's MAC of the body, else why not (BAD_SIGNATURE, WRONG_MAC)."""
    named = labelled_mac(signature)
    if signature is None or named is None:
        return BAD_SIGNATURE
    if named != mac:
        return WRONG_MAC
    return None if hmac.compare_digest(sign(secret, body, mac), signature) else BAD_SIGNATURE


def signature_valid(secret: str, body: bytes, header: str | None, mac: str = HMAC_SHA256) -> bool:
    return verify_v1(secret, body, header, mac) is None


def sign_v2(secret: str, timestamp: int, body: bytes, mac: str = HMAC_SHA256) -> str:
    return f"{MACS[mac][2]}={_hex(mac, secret, f'{timestamp}.'.encode() + body)}"


def verify_v2(
    secret: str,
    body: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    now: float,
    window_s: float = REPLAY_WINDOW_S,
    mac: str = HMAC_SHA256,
) -> str | None:
    """None if the callback is genuine and fresh, else why not (BAD_SIGNATURE, WRONG_MAC,
    STALE_TIMESTAMP). The signature is checked first: an unsigned timestamp says nothing."""
    if timestamp is None or signature is None or not timestamp.isdigit() or len(timestamp) > 12:
        return BAD_SIGNATURE
    named = labelled_mac(signature)
    if named is not None and named != mac:
        return WRONG_MAC
    if not hmac.compare_digest(sign_v2(secret, int(timestamp), body, mac), signature):
        return BAD_SIGNATURE
    if abs(now - int(timestamp)) > window_s:
        return STALE_TIMESTAMP
    return None


def endpoint_of(bank: BankConfig | CallbackEndpoint) -> CallbackEndpoint:
    if isinstance(bank, CallbackEndpoint):
        return bank
    return CallbackEndpoint(
        bank_code=bank.code,
        url=bank.callback_url,
        secret=bank.callback_secret,
        adapter=bank.adapter,
        mac=bank.callback_mac,
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
        default_mac: str = HMAC_SHA256,
    ) -> None:
        self.endpoint = endpoint_of(bank)
        # The bank's own choice, else the profile's (the composition root passes `profile_mac`).
        self.mac = self.endpoint.mac or default_mac
        if self.mac not in MACS:
            raise ValueError(f"bank {self.endpoint.bank_code}: unknown callback MAC {self.mac!r}")
        url = callback_url or self.endpoint.url
        super().__init__(base_url=url, session=session, timeout_s=timeout_s, retry=retry)
        self._now = now

    def _signature_headers(self, body: bytes) -> dict[str, str]:
        return {SIGNATURE_HEADER: sign(self.endpoint.secret, body, self.mac)}

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
            SIGNATURE_HEADER: sign_v2(self.endpoint.secret, timestamp, body, self.mac),
        }


ADAPTERS: dict[str, type[SignedJsonCallback]] = {
    "signed-json-v1": SignedJsonCallback,
    "signed-json-v2": SignedJsonCallbackV2,
}
