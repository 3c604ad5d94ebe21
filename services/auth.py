"""Sign-in use cases: SMS one-time codes for citizens, passwords for staff, client credentials
for banks, and rotating refresh tokens with reuse detection."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.transactions import in_transaction

from integrations.errors import IntegrationError
from integrations.sms.base import SmsGateway
from services.clock import Clock
from services.errors import (
    AccountLocked,
    AuthenticationFailed,
    OtpAttemptsExceeded,
    OtpInvalid,
    RefreshTokenReused,
    TokenInvalid,
    UpstreamUnavailable,
)
from services.identifiers import normalise_phone
from services.kv import KeyValueStore
from services.models.accounts import ApiClient, OtpChallenge, RefreshToken, StaffUser
from services.models.registry import Person
from services.ratelimit import RateLimiter, per_day, per_hour, per_seconds
from services.tokens import Principal, TokenSigner

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


class AuthService:
    def __init__(
        self,
        *,
        signer: TokenSigner,
        sms: SmsGateway,
        limiter: RateLimiter,
        kv: KeyValueStore,
        clock: Clock,
        policy: AuthPolicy,
        otp_secret: str,
    ) -> None:
        self._signer = signer
        self._sms = sms
        self._limiter = limiter
        self._kv = kv
        self._clock = clock
        self._policy = policy
        self._otp_secret = otp_secret.encode()

    # --- citizens: SMS one-time codes ---------------------------------------------------------

    def _code_hash(self, phone: str, code: str) -> str:
        return hmac.new(self._otp_secret, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()

    async def request_sms_code(self, *, phone: str, client_ip: str) -> int:
        """Send a code if the phone belongs to a real-name person. Returns the code's lifetime.

        The answer is the same whether or not the phone is registered, so the endpoint cannot be
        used to find out who is registered; the limits apply either way.
        """
        phone = normalise_phone(phone)
        policy = self._policy
        await self._limiter.hit(per_hour(policy.otp_hourly_cap_per_ip), "otp-ip", client_ip)
        await self._limiter.hit(per_seconds(1, policy.otp_cooldown_s), "otp-cooldown", phone)
        await self._limiter.hit(per_day(policy.otp_daily_cap_per_phone), "otp-day", phone)
        if not await Person.filter(phone=phone).exists():
            return policy.otp_ttl_s
        code = f"{secrets.randbelow(1_000_000):06d}"
        now = self._clock.now()
        async with in_transaction() as conn:
            # A new code replaces any earlier one still open.
            await OtpChallenge.filter(phone=phone, consumed_at=None).using_db(conn).update(consumed_at=now)
            challenge = await OtpChallenge.create(
                phone=phone,
                code_hash=self._code_hash(phone, code),
                expires_at=now + timedelta(seconds=policy.otp_ttl_s),
                created_at=now,
                using_db=conn,
            )
        try:
            await self._sms.send(
                phone,
                "login_code",
                {"code": code, "minutes": str(policy.otp_ttl_s // 60)},
                idempotency_key=f"otp-{challenge.id}",
            )
        except IntegrationError as exc:
            await OtpChallenge.filter(id=challenge.id).update(consumed_at=now)
            await self._limiter.clear(per_seconds(1, policy.otp_cooldown_s), "otp-cooldown", phone)
            raise UpstreamUnavailable(system="sms") from exc
        return policy.otp_ttl_s

    async def sign_in_with_code(self, *, phone: str, code: str) -> TokenPair:
        phone = normalise_phone(phone)
        now = self._clock.now()
        challenge = (
            await OtpChallenge.filter(phone=phone, consumed_at=None).order_by("-created_at", "-id").first()
        )
        if challenge is None or challenge.expires_at <= now:
            raise OtpInvalid()
        # Count the attempt before checking the code: a conditional update, so parallel
        # guesses cannot go past the limit.
        counted = await OtpChallenge.filter(
            id=challenge.id, consumed_at=None, attempts__lt=self._policy.otp_max_attempts
        ).update(attempts=challenge.attempts + 1)
        if not counted:
            raise OtpAttemptsExceeded()
        if not hmac.compare_digest(challenge.code_hash, self._code_hash(phone, code.strip())):
            if challenge.attempts + 1 >= self._policy.otp_max_attempts:
                await OtpChallenge.filter(id=challenge.id).update(consumed_at=now)
                raise OtpAttemptsExceeded()
            raise OtpInvalid(attempts_left=self._policy.otp_max_attempts - challenge.attempts - 1)
        if not await OtpChallenge.filter(id=challenge.id, consumed_at=None).update(consumed_at=now):
            raise OtpInvalid()
        person = await Person.get_or_none(phone=phone)
        if person is None:
            raise OtpInvalid()
        return await self._issue_pair(
            subject=f"person:{person.id}", role="citizen", claims={"pid": person.id}
        )

    # --- staff: username + password --------------------------------------------------------

    async def sign_in_staff(self, *, username: str, password: str) -> TokenPair:
        now = self._clock.now()
        user = await StaffUser.get_or_none(username=username.strip().lower())
        if user is None or not user.active:
            _verify_password(_DUMMY_HASH, password)
            raise AuthenticationFailed()
        if user.locked_until is not None and user.locked_until > now:
            raise AccountLocked(locked_until=user.locked_until.isoformat())
        if not _verify_password(user.password_hash, password):
            failures = user.failed_logins + 1
            lock = now + timedelta(seconds=self._policy.staff_lock_s)
            locked = failures >= self._policy.staff_max_failures
            await StaffUser.filter(id=user.id).update(
                failed_logins=0 if locked else failures, locked_until=lock if locked else user.locked_until
            )
            raise AuthenticationFailed()
        await StaffUser.filter(id=user.id).update(failed_logins=0, locked_until=None)
        claims: dict[str, Any] = {"office": user.office_code} if user.office_code else {}
        return await self._issue_pair(subject=f"staff:{user.id}", role=user.role, claims=claims)

    # --- banks: OAuth2 client credentials ---------------------------------------------------

    async def sign_in_client(self, *, client_id: str, client_secret: str, scope: str | None) -> TokenPair:
        client = await ApiClient.get_or_none(client_id=client_id)
        if client is None or not client.active:
            _verify_password(_DUMMY_HASH, client_secret)
            raise AuthenticationFailed(reason="invalid_client")
        if not _verify_password(client.secret_hash, client_secret):
            raise AuthenticationFailed(reason="invalid_client")
        allowed = set(client.scopes.split())
        requested = set(scope.split()) if scope else allowed
        if not requested <= allowed:
            raise AuthenticationFailed(
                "请求的权限范围超出该客户端的授权",
                "The requested scope exceeds the client's grant",
                reason="invalid_scope",
            )
        granted = " ".join(sorted(requested))
        token, exp = self._signer.issue(
            subject=f"client:{client.client_id}",
            role="bank",
            claims={"org": client.organisation_id, "bank": client.bank_code, "scope": granted},
        )
        return TokenPair(token, self._expires_in(exp), None, "bank", granted)

    # --- tokens -----------------------------------------------------------------------------

    def _expires_in(self, exp: int) -> int:
        return max(0, exp - int(self._clock.now().timestamp()))

    async def _issue_pair(
        self,
        *,
        subject: str,
        role: str,
        claims: dict[str, Any],
        family_id: str | None = None,
        conn: Any = None,
    ) -> TokenPair:
        access, exp = self._signer.issue(subject=subject, role=role, claims=claims)
        refresh = secrets.token_urlsafe(32)
        now = self._clock.now()
        await RefreshToken.create(
            id=hashlib.sha256(refresh.encode()).hexdigest(),
            family_id=family_id or secrets.token_hex(16),
            subject=subject,
            role=role,
            claims=claims,
            expires_at=now + timedelta(seconds=self._policy.refresh_ttl_s),
            created_at=now,
            using_db=conn,
        )
        return TokenPair(access, self._expires_in(exp), refresh, role)

    async def refresh(self, *, refresh_token: str) -> TokenPair:
        """Rotate: each refresh token works once. Presenting a used one revokes the whole family,
        since either the user or a thief holds a copy (OAuth 2.0 Security BCP, section 4.14)."""
        token_id = hashlib.sha256(refresh_token.encode()).hexdigest()
        now = self._clock.now()
        async with in_transaction() as conn:
            row = await RefreshToken.get_or_none(id=token_id, using_db=conn)
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                raise TokenInvalid(reason="refresh_token")
            used = (
                await RefreshToken.filter(id=token_id, used_at=None, revoked_at=None)
                .using_db(conn)
                .update(used_at=now)
            )
            if used:
                return await self._issue_pair(
                    subject=row.subject, role=row.role, claims=row.claims, family_id=row.family_id, conn=conn
                )
        await RefreshToken.filter(family_id=row.family_id, revoked_at=None).update(revoked_at=now)
        raise RefreshTokenReused()

    async def logout(self, *, principal: Principal, refresh_token: str | None) -> None:
        """Revoke this access token now and the refresh family it came from."""
        now = self._clock.now()
        ttl = principal.expires_at - int(now.timestamp())
        if ttl > 0:
            await self._kv.set(f"revoked-jti:{principal.token_id}", b"1", ttl_s=ttl + 5)
        if refresh_token:
            token_id = hashlib.sha256(refresh_token.encode()).hexdigest()
            row = await RefreshToken.get_or_none(id=token_id, subject=principal.subject)
            if row is not None:
                await RefreshToken.filter(family_id=row.family_id, revoked_at=None).update(revoked_at=now)

    async def authenticate(self, token: str) -> Principal:
        principal = self._signer.verify(token)
        if await self._kv.get(f"revoked-jti:{principal.token_id}") is not None:
            raise TokenInvalid(reason="revoked")
        return principal
