"""Personal data at rest: AES-256-GCM for ID numbers, with an HMAC blind index for look-ups.

The ciphertext is `v1.` + urlsafe-base64(nonce || ciphertext+tag); the version prefix lets us
rotate keys later without guessing which key wrote a value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1."


class PiiVault:
    def __init__(self, *, key_b64: str, blind_index_key: str) -> None:
        key = base64.b64decode(key_b64)
        if len(key) != 32:
            raise ValueError("the PII key must be 32 bytes (base64)")
        self._aead = AESGCM(key)
        self._index_key = blind_index_key.encode()

    def encrypt(self, plaintext: str, *, context: str = "id_number") -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str, *, context: str = "id_number") -> str:
        if not token.startswith(_VERSION):
            raise ValueError("unknown ciphertext version")
        raw = base64.urlsafe_b64decode(token[len(_VERSION) :])
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()

    def blind_index(self, value: str, *, context: str = "id_number") -> str:
        return hmac.new(self._index_key, f"{context}:{value}".encode(), hashlib.sha256).hexdigest()
