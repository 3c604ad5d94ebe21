"""Personal data at rest: ID numbers and phones sealed with an AEAD, with keyed blind indexes for look-ups.

A ciphertext names the key that sealed it, and the key names its algorithm:

* `v1.` + urlsafe-base64(nonce || ciphertext+tag): key version 1, AES-256-GCM (`ESTATE_PII_KEY`),
  the form written since migration 0005 and still written under the international profile;
* `v<n>.<algorithm>.` + the same: key version n, sealed with `<algorithm>` (`aes256gcm` or
  `sm4gcm`); version 2 is SM4-GCM under `ESTATE_PII_SM4_KEY`, written under the national profile.

Invariant: `decrypt` reads by the marker only, never by the current profile, so a database holding
both forms (during `python -m api pii reencrypt`, or after a profile switch) stays readable; a
marker whose algorithm is not its key's is refused, so one key is never used with two algorithms.
`encrypt` writes with the profile's current key. The `context` (`id_number`, `phone`, `otp` ...)
is bound into both the AEAD (associated data: a phone's ciphertext copied into an ID-number column
does not decrypt) and the blind index (a prefix of the HMAC input: equal strings in two roles have
unrelated indexes).

A blind index is a keyed HMAC (HMAC-SHA256, or HMAC-SM3 under the national profile; one key,
`ESTATE_BLIND_INDEX_KEY`), not a hash: a phone has about 10^10 possible values and an ID number
about 10^9 plausible ones, so an unkeyed hash of either is reversed by enumeration in minutes.
Without the key an index says nothing; with it (an attacker holding the keys) it is as good as the
value, which is the threat docs/decisions/0002-personal-data-at-rest.md leaves out. Unlike a
ciphertext an index cannot carry a marker (look-ups compare it for equality), so a database holds
indexes of one profile only: `python -m api crypto switch-profile` recomputes them all
(services/crypto, docs/decisions/0006-national-cryptography.md).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

from standards.crypto_profile import INTERNATIONAL, NATIONAL, AeadInvalid, ProfileName, aead, keyed_index

ID_NUMBER = "id_number"
PHONE = "phone"
AES256GCM = "aes256gcm"
SM4GCM = "sm4gcm"
# Key versions: which setting holds the key and which algorithm it is for. A new key (a rotation)
# gets the next version; a version is never reused for another key.
AES_KEY_VERSION = 1
SM4_KEY_VERSION = 2
_PROFILE_OF = {AES256GCM: INTERNATIONAL, SM4GCM: NATIONAL}
_CURRENT_VERSION = {INTERNATIONAL: AES_KEY_VERSION, NATIONAL: SM4_KEY_VERSION}
_NONCE = 12


class PiiKeyMissing(ValueError):
    """A ciphertext (or the profile) needs a key the settings do not hold."""


@dataclass(frozen=True)
class _Key:
    version: int
    algorithm: str  # aes256gcm | sm4gcm
    aead: Any

    @property
    def marker(self) -> str:
        return "v1." if self.version == AES_KEY_VERSION else f"v{self.version}.{self.algorithm}."


class PiiVault:
    def __init__(
        self,
        *,
        key_b64: str,
        blind_index_key: str,
        sm4_key_b64: str | None = None,
        profile: ProfileName = INTERNATIONAL,
    ) -> None:
        keys = {AES_KEY_VERSION: _Key(AES_KEY_VERSION, AES256GCM, _aead(INTERNATIONAL, key_b64, "PII"))}
        if sm4_key_b64:
            keys[SM4_KEY_VERSION] = _Key(SM4_KEY_VERSION, SM4GCM, _aead(NATIONAL, sm4_key_b64, "PII SM4"))
        if _CURRENT_VERSION[profile] not in keys:
            raise PiiKeyMissing(
                f"the {profile} profile encrypts with key version {_CURRENT_VERSION[profile]}: "
                "set ESTATE_PII_SM4_KEY (base64, 16 bytes)"
            )
        self._keys = keys
        self._current = keys[_CURRENT_VERSION[profile]]
        self._index_key = blind_index_key.encode()
        self.profile: ProfileName = profile

    @classmethod
    def from_settings(cls, settings: Any, *, profile: ProfileName | None = None) -> PiiVault:
        """The vault of `settings` (of another profile with `profile=`: the switch command's)."""
        sm4 = getattr(settings, "pii_sm4_key", None)
        return cls(
            key_b64=settings.pii_key.get_secret_value(),
            blind_index_key=settings.blind_index_key.get_secret_value(),
            sm4_key_b64=sm4.get_secret_value() if sm4 is not None else None,
            profile=profile or settings.crypto_profile,
        )

    def with_profile(self, profile: ProfileName) -> PiiVault:
        """The same keys, encrypting and indexing under `profile`."""
        clone = PiiVault.__new__(PiiVault)
        clone.__dict__.update(self.__dict__)
        if _CURRENT_VERSION[profile] not in self._keys:
            raise PiiKeyMissing(f"no key for the {profile} profile: set ESTATE_PII_SM4_KEY")
        clone._current = self._keys[_CURRENT_VERSION[profile]]
        clone.profile = profile
        return clone

    # --- sealing -------------------------------------------------------------------------------------

    def encrypt(self, plaintext: str, *, context: str = ID_NUMBER) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._current.aead.encrypt(nonce, plaintext.encode(), context.encode())
        return self._current.marker + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str, *, context: str = ID_NUMBER) -> str:
        key, body = self._key_of(token)
        raw = base64.urlsafe_b64decode(body)
        try:
            return str(key.aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode()).decode())
        except AeadInvalid as e:
            raise ValueError("ciphertext altered, or sealed for another context") from e

    def is_current(self, token: str) -> bool:
        """Whether `token` is sealed with the key this vault encrypts with (re-encryption skips it)."""
        return token.startswith(self._current.marker) and self._key_of(token)[0] is self._current

    def reencrypt(self, token: str, *, context: str = ID_NUMBER) -> str:
        """`token` sealed with the current key: itself if it is already."""
        return (
            token
            if self.is_current(token)
            else self.encrypt(self.decrypt(token, context=context), context=context)
        )

    def _key_of(self, token: str) -> tuple[_Key, str]:
        head, _, rest = token.partition(".")
        if not head.startswith("v") or not head[1:].isdigit() or not rest:
            raise ValueError("unknown ciphertext version")
        version = int(head[1:])
        if version == AES_KEY_VERSION and not rest.startswith(f"{AES256GCM}."):
            algorithm, body = AES256GCM, rest  # the `v1.` form of migration 0005
        else:
            algorithm, _, body = rest.partition(".")
        if algorithm not in _PROFILE_OF:
            raise ValueError(f"unknown ciphertext algorithm {algorithm!r}")
        key = self._keys.get(version)
        if key is None:
            raise PiiKeyMissing(f"no PII key of version {version} ({algorithm}) is configured")
        if key.algorithm != algorithm:
            raise ValueError(f"ciphertext names {algorithm} but key version {version} is {key.algorithm}")
        return key, body

    # --- blind indexes ---------------------------------------------------------------------------

    def blind_index(self, value: str, *, context: str = ID_NUMBER, profile: ProfileName | None = None) -> str:
        """HMAC of `context:value` under this vault's profile (or `profile`: the switch command
        computes both sides)."""
        data = f"{context}:{value}".encode()
        return keyed_index(profile or self.profile, self._index_key, data).hex()

    # --- phones (normalised first: services.identifiers.normalise_phone) ---------------------------

    def encrypt_phone(self, phone: str) -> str:
        return self.encrypt(phone, context=PHONE)

    def decrypt_phone(self, token: str) -> str:
        return self.decrypt(token, context=PHONE)

    def phone_index(self, phone: str) -> str:
        """The look-up key of a phone: `Person.phone_index`, OTP challenges, rate-limit keys."""
        return self.blind_index(phone, context=PHONE)


def _aead(profile: ProfileName, key_b64: str, name: str) -> Any:
    key = base64.b64decode(key_b64)
    try:
        return aead(profile, key)
    except ValueError as e:
        raise ValueError(
            f"the {name} key must be {32 if profile == INTERNATIONAL else 16} bytes (base64)"
        ) from e
