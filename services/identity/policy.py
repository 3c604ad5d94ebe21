"""Sign-in policy (the limits, from the settings), the token pair a sign-in returns, and password
hashing (argon2, checked off the event loop). The use cases are in auth.py."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the user does not exist, so both paths cost one argon2 verification.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    otp_ttl_s: int
    otp_max_attempts: int
    otp_cooldown_s: int
    otp_daily_cap_per_phone: int
    otp_hourly_cap_per_ip: int
    refresh_ttl_s: int
    staff_max_failures: int
    staff_lock_s: int = 900
    password_hourly_cap_per_ip: int = 60

    @classmethod
    def from_settings(cls, settings: Any) -> AuthPolicy:
        return cls(
            otp_ttl_s=settings.otp_ttl_s,
            otp_max_attempts=settings.otp_max_attempts,
            otp_cooldown_s=settings.otp_cooldown_s,
            otp_daily_cap_per_phone=settings.otp_daily_cap_per_phone,
            otp_hourly_cap_per_ip=settings.otp_hourly_cap_per_ip,
            refresh_ttl_s=settings.refresh_token_ttl_s,
            staff_max_failures=settings.staff_login_max_failures,
            staff_lock_s=settings.staff_lock_s,
            password_hourly_cap_per_ip=settings.password_signin_hourly_cap_per_ip,
        )


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str | None
    role: str
    scope: str | None = None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def _password_matches(stored_hash: str, password: str) -> bool:
    """argon2 off the event loop: a check takes tens of milliseconds of CPU."""
    return await asyncio.to_thread(_verify_password, stored_hash, password)
