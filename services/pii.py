"""Personal data at rest: AES-256-GCM for ID numbers and phones, with HMAC blind indexes for look-ups.

The ciphertext is `v1.` + urlsafe-base64(nonce || ciphertext+tag); the version prefix lets us
rotate keys later without guessing which key wrote a value. The `context` (`id_number`, `phone`)
is bound into both: as the AEAD's associated data, so a phone's ciphertext copied into an ID-number
column does not decrypt, and as a prefix of the HMAC input, so equal strings in two roles have
unrelated indexes.

A blind index is a keyed HMAC, not a hash: a phone has about 10^10 possible values and an ID
number about 10^9 plausible ones, so an unkeyed hash of either is reversed by enumeration in
minutes. Without the key an index says nothing; with it (an attacker holding the keys) it is as
good as the value, which is the threat docs/decisions/0002-personal-data-at-rest.md leaves out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1."
ID_NUMBER = "id_number"
PHONE = "phone"


class PiiVault:
    def __init__(self, *, key_b64: str, blind_index_key: str) -> None:
        key = base64.b64decode(key_b64)
        if len(key) != 32:
            raise ValueError("the PII key must be 32 bytes (base64)")
        self._aead = AESGCM(key)
        self._index_key = blind_index_key.encode()

    @classmethod
    def from_settings(cls, settings: Any) -> PiiVault:
        return cls(
            key_b64=settings.pii_key.get_secret_value(),
            blind_index_key=settings.blind_index_key.get_secret_value(),
        )

    def encrypt(self, plaintext: str, *, context: str = ID_NUMBER) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str, *, context: str = ID_NUMBER) -> str:
        if not token.startswith(_VERSION):
            raise ValueError("unknown ciphertext version")
        raw = base64.urlsafe_b64decode(token[len(_VERSION) :])
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()

    def blind_index(self, value: str, *, context: str = ID_NUMBER) -> str:
        return hmac.new(self._index_key, f"{context}:{value}".encode(), hashlib.sha256).hexdigest()

    # --- phones (normalised first: services.identifiers.normalise_phone) ---------------------------

    def encrypt_phone(self, phone: str) -> str:
        return self.encrypt(phone, context=PHONE)

    def decrypt_phone(self, token: str) -> str:
        return self.decrypt(token, context=PHONE)

    def phone_index(self, phone: str) -> str:
        """The look-up key of a phone: `Person.phone_index`, OTP challenges, rate-limit keys."""
        return self.blind_index(phone, context=PHONE)
