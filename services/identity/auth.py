"""Sign-in use cases: SMS one-time codes for citizens, passwords for staff (clerks, admins and
organisations' staff), client credentials for banks and organisations' own systems, and rotating
refresh tokens with reuse detection.

Every guess is counted before it is checked, in one conditional statement whose row count
decides, so parallel guesses cannot pass a limit (issue 8):
- a one-time code: `attempts = attempts + 1 WHERE attempts < max`, then the comparison;
- a staff password or bank client secret: `failed_logins = failed_logins + 1 WHERE
  failed_logins < max` on the account, then the argon2 check; the account is locked as soon as
  the count reaches the limit, and the lock is lifted by time or by the right password; an
  unknown username or client id is locked the same way by the rate limiter, so 423 tells no
  names apart; a per-address limit bounds guesses spread over many accounts.

Asking for a code costs the same whether or not the phone is registered: the request only counts
the limits and writes an outbox message; the worker looks the phone up and sends the code
(`deliver_sms_code`). Phones appear in rate-limit keys and tables only as their blind index.

Revocations (logout, a reused refresh token) are written to the database and copied into the
key-value store that requests read; every process copies the unexpired ones at start
(`restore_revocations`), so a restart, or the embedded in-memory store, forgets none.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from integrations.sms.base import SmsGateway
from services.clock import Clock
from services.errors import (
    AccountLocked,
    AuthenticationFailed,
    OtpAttemptsExceeded,
    OtpInvalid,
    RateLimited,
    RefreshTokenReused,
    TokenInvalid,
)
from services.identifiers import normalise_phone
from services.identity.models import ApiClient, OtpChallenge, RefreshToken, RevokedToken, StaffUser
from services.identity.policy import _DUMMY_HASH, _password_matches
from services.identity.policy import AuthPolicy as AuthPolicy
from services.identity.policy import TokenPair as TokenPair
from services.identity.policy import hash_password as hash_password
from services.identity.tokens import Principal, TokenSigner
from services.identity.topics import OTP_DELIVER as OTP_DELIVER  # its outbox topic
from services.identity.topics import OtpDelivery
from services.kv import KeyValueStore
from services.outbox import enqueue
from services.pii import PiiVault
from services.ratelimit import RateLimiter, per_day, per_hour, per_seconds
from services.registry.models import Person


class AuthService:
    def __init__(
        self,
        *,
        signer: TokenSigner,
        sms: SmsGateway,
        limiter: RateLimiter,
        kv: KeyValueStore,
        vault: PiiVault,
        clock: Clock,
        policy: AuthPolicy,
        otp_secret: str,
    ) -> None:
        self._signer = signer
        self._sms = sms
        self._limiter = limiter
        self._kv = kv
        self._vault = vault
        self._clock = clock
        self._policy = policy
        self._otp_secret = otp_secret.encode()

    # --- citizens: SMS one-time codes ---------------------------------------------------------

    def _code_hash(self, phone: str, code: str) -> str:
        return hmac.new(self._otp_secret, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()

    def _phone_index(self, phone: str) -> str:
        return self._vault.blind_index(phone, context="phone")

    async def request_sms_code(self, *, phone: str, client_ip: str) -> int:
        """Queue a code for the phone. Returns the code's lifetime.

        Whether the phone belongs to a real-name person is decided by the worker, after the
        answer: registered and unregistered phones cost the request the same work (the limits,
        two encryptions, one outbox row), so neither the answer nor its timing tells them apart.
        """
        phone = normalise_phone(phone)
        index = self._phone_index(phone)
        policy = self._policy
        await self._limiter.hit(per_hour(policy.otp_hourly_cap_per_ip), "otp-ip", client_ip)
        await self._limiter.hit(per_seconds(1, policy.otp_cooldown_s), "otp-cooldown", index)
        await self._limiter.hit(per_day(policy.otp_daily_cap_per_phone), "otp-day", index)
        code = f"{secrets.randbelow(1_000_000):06d}"
        await enqueue(
            topic=OTP_DELIVER,
            payload=OtpDelivery(
                phone_enc=self._vault.encrypt(phone, context="phone"),
                code_enc=self._vault.encrypt(code, context="otp"),
                requested_at=self._clock.now(),
            ),
            idempotency_key=f"otp-{secrets.token_urlsafe(18)}",
            clock=self._clock,
        )
        return policy.otp_ttl_s

    async def deliver_sms_code(self, payload: OtpDelivery, key: str) -> dict[str, Any]:
        """Outbox handler of OTP_DELIVER: make the challenge and send the code, once per message.

        A redelivery finds its challenge by the message key and sends again under the same SMS
        idempotency key, so the gateway sends once. A code whose lifetime ran out in the queue,
        or that a newer request replaced, is not sent."""
        phone = self._vault.decrypt(payload.phone_enc, context="phone")
        index = self._phone_index(phone)
        requested_at = payload.requested_at
        expires_at = requested_at + timedelta(seconds=self._policy.otp_ttl_s)
        now = self._clock.now()
        if expires_at <= now:
            return {"sent": False, "reason": "expired"}
        if not await Person.filter(phone_index=index).exists():
            return {"sent": False, "reason": "no_person"}
        code = self._vault.decrypt(payload.code_enc, context="otp")
        async with in_transaction() as conn:
            challenge = await OtpChallenge.get_or_none(request_key=key, using_db=conn)
            if challenge is None:
                newer = OtpChallenge.filter(phone_index=index, created_at__gt=requested_at).using_db(conn)
                if await newer.exists():
                    return {"sent": False, "reason": "superseded"}
                # A new code replaces any earlier one still open.
                await (
                    OtpChallenge.filter(phone_index=index, consumed_at=None)
                    .using_db(conn)
                    .update(consumed_at=now)
                )
                challenge = await OtpChallenge.create(
                    phone_index=index,
                    code_hash=self._code_hash(phone, code),
                    expires_at=expires_at,
                    created_at=requested_at,
                    request_key=key,
                    using_db=conn,
                )
        if challenge.consumed_at is not None:
            return {"sent": False, "reason": "superseded"}
        await self._sms.send(
            phone,
            "login_code",
            {"code": code, "minutes": str(self._policy.otp_ttl_s // 60)},
            idempotency_key=key,
        )
        return {"sent": True}

    async def sign_in_with_code(self, *, phone: str, code: str) -> TokenPair:
        phone = normalise_phone(phone)
        index = self._phone_index(phone)
        now = self._clock.now()
        max_attempts = self._policy.otp_max_attempts
        open_challenges = OtpChallenge.filter(phone_index=index, consumed_at=None)
        challenge = await open_challenges.order_by("-created_at", "-id").first()
        if challenge is None or challenge.expires_at <= now:
            raise OtpInvalid()
        # Counted before the comparison, in one statement: at most `max_attempts` are compared.
        counted = await OtpChallenge.filter(
            id=challenge.id, consumed_at=None, attempts__lt=max_attempts
        ).update(attempts=F("attempts") + 1)
        if not counted:
            raise OtpAttemptsExceeded()
        if not hmac.compare_digest(challenge.code_hash, self._code_hash(phone, code.strip())):
            # The guess that used up the last attempt closes the challenge.
            await OtpChallenge.filter(id=challenge.id, consumed_at=None, attempts__gte=max_attempts).update(
                consumed_at=now
            )
            counted_row = await OtpChallenge.get_or_none(id=challenge.id).only("id", "attempts")
            left = max_attempts - counted_row.attempts if counted_row else 0
            if left <= 0:
                raise OtpAttemptsExceeded()
            raise OtpInvalid(attempts_left=left)
        if not await OtpChallenge.filter(id=challenge.id, consumed_at=None).update(consumed_at=now):
            raise OtpInvalid()
        person = await Person.filter(phone_index=index).only("id").first()
        if person is None:
            raise OtpInvalid()
        return await self._issue_pair(
            subject=f"person:{person.id}", role="citizen", claims={"pid": person.id}
        )

    # --- staff and banks: secrets checked against a counted attempt --------------------------

    async def _check_secret(
        self,
        model: type[StaffUser] | type[ApiClient],
        account: StaffUser | ApiClient | None,
        *,
        name: str,
        secret: str,
        stored_hash: str | None,
        client_ip: str,
    ) -> bool:
        """True if `secret` is right. The attempt is counted against the address, then against
        the account (or, for a name that has no account, against the name in the rate limiter,
        so both lock alike), before argon2 runs. Raises AccountLocked past the limit."""
        policy = self._policy
        now = self._clock.now()
        await self._limiter.hit(per_hour(policy.password_hourly_cap_per_ip), "password-ip", client_ip)
        if account is None:
            window = per_seconds(policy.staff_max_failures, policy.staff_lock_s)
            label = hashlib.sha256(f"{model.__name__}:{name}".encode()).hexdigest()[:32]
            try:
                await self._limiter.hit(window, "password-unknown", label)
            except RateLimited as exc:
                raise AccountLocked(
                    locked_until=(now + timedelta(seconds=exc.retry_after_s)).isoformat()
                ) from None
            await _password_matches(_DUMMY_HASH, secret)
            return False
        lock = timedelta(seconds=policy.staff_lock_s)
        # A lock whose time is over is lifted (and a count left behind by a crash between
        # reserving and locking is cleared once the account has been quiet for a lock period).
        await model.filter(
            Q(id=account.id)
            & (
                Q(locked_until__lte=now)
                | Q(
                    locked_until__isnull=True,
                    failed_logins__gte=policy.staff_max_failures,
                    last_attempt_at__lte=now - lock,
                )
            )
        ).update(failed_logins=0, locked_until=None)
        reserved = await model.filter(id=account.id, failed_logins__lt=policy.staff_max_failures).update(
            failed_logins=F("failed_logins") + 1, last_attempt_at=now
        )
        if not reserved:
            row = await model.get_or_none(id=account.id).only("id", "locked_until")
            until = row.locked_until if row is not None and row.locked_until is not None else now + lock
            raise AccountLocked(locked_until=until.isoformat())
        if stored_hash is not None and await _password_matches(stored_hash, secret):
            await model.filter(id=account.id).update(failed_logins=0, locked_until=None)
            return True
        await model.filter(
            id=account.id, failed_logins__gte=policy.staff_max_failures, locked_until__isnull=True
        ).update(locked_until=now + lock)
        return False

    async def sign_in_staff(self, *, username: str, password: str, client_ip: str) -> TokenPair:
        name = username.strip().lower()
        user = await StaffUser.get_or_none(username=name)
        usable = user if user is not None and user.active else None
        if not await self._check_secret(
            StaffUser,
            usable,
            name=name,
            secret=password,
            stored_hash=usable.password_hash if usable else None,
            client_ip=client_ip,
        ):
            raise AuthenticationFailed()
        assert usable is not None
        claims: dict[str, Any] = {"office": usable.office_code} if usable.office_code else {}
        if usable.organisation_id is not None:  # an organisation's staff act for it
            claims["org"] = usable.organisation_id
        return await self._issue_pair(subject=f"staff:{usable.id}", role=usable.role, claims=claims)

    async def sign_in_client(
        self, *, client_id: str, client_secret: str, scope: str | None, client_ip: str
    ) -> TokenPair:
        client = await ApiClient.get_or_none(client_id=client_id)
        usable = client if client is not None and client.active else None
        if not await self._check_secret(
            ApiClient,
            usable,
            name=client_id,
            secret=client_secret,
            stored_hash=usable.secret_hash if usable else None,
            client_ip=client_ip,
        ):
            raise AuthenticationFailed(reason="invalid_client")
        assert usable is not None
        allowed = set(usable.scopes.split())
        requested = set(scope.split()) if scope else allowed
        if not requested <= allowed:
            raise AuthenticationFailed(
                "请求的权限范围超出该客户端的授权",
                "The requested scope exceeds the client's grant",
                reason="invalid_scope",
            )
        granted = " ".join(sorted(requested))
        claims: dict[str, Any] = {"org": usable.organisation_id, "scope": granted}
        if usable.bank_code is not None:
            claims["bank"] = usable.bank_code
        # `role`: a bank's client, or an organisation's own system (e.g. a developer's).
        token, exp = self._signer.issue(subject=f"client:{usable.client_id}", role=usable.role, claims=claims)
        return TokenPair(token, self._expires_in(exp), None, usable.role, granted)

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
        family_id = family_id or secrets.token_hex(16)
        # `sid` names the refresh family, so logout with the access token alone ends it.
        access, exp = self._signer.issue(subject=subject, role=role, claims={**claims, "sid": family_id})
        refresh = secrets.token_urlsafe(32)
        now = self._clock.now()
        await RefreshToken.create(
            id=hashlib.sha256(refresh.encode()).hexdigest(),
            family_id=family_id,
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
        await self._end_session(row.family_id, subject=row.subject)
        raise RefreshTokenReused()

    async def logout(self, *, principal: Principal, refresh_token: str | None) -> None:
        """Revoke this access token, and end the sign-in it belongs to: its refresh family and
        every access token issued in it. A refresh token in the body ends its family too."""
        await self._revoke(f"jti:{principal.token_id}", until_ts=principal.expires_at)
        families = {principal.session_id} if principal.session_id else set()
        if refresh_token:
            token_id = hashlib.sha256(refresh_token.encode()).hexdigest()
            row = await RefreshToken.get_or_none(id=token_id, subject=principal.subject)
            if row is not None:
                families.add(row.family_id)
        for family_id in families:
            await self._end_session(family_id, subject=principal.subject)

    async def _end_session(self, family_id: str, *, subject: str) -> None:
        now = self._clock.now()
        family = RefreshToken.filter(family_id=family_id, subject=subject, revoked_at=None)
        await family.update(revoked_at=now)
        # Access tokens of the family live at most one access-token lifetime from now.
        await self._revoke(f"sid:{family_id}", until_ts=int(now.timestamp()) + self._signer.ttl_s)

    async def _revoke(self, key: str, *, until_ts: int) -> None:
        ttl = until_ts - int(self._clock.now().timestamp())
        if ttl <= 0:
            return
        until = datetime.fromtimestamp(until_ts, tz=self._clock.now().tzinfo)
        # The database row is the record; the key-value entry is what requests read.
        await RevokedToken.bulk_create([RevokedToken(key=key, expires_at=until)], ignore_conflicts=True)
        await self._kv.set(f"revoked:{key}", b"1", ttl_s=ttl + 5)

    async def restore_revocations(self) -> int:
        """Copy the unexpired revocations into the key-value store (at start) and drop expired
        rows. Returns how many were copied."""
        now = self._clock.now()
        await RevokedToken.filter(expires_at__lte=now).delete()
        copied = 0
        for row in await RevokedToken.filter(expires_at__gt=now):
            ttl = (row.expires_at - now).total_seconds()
            await self._kv.set(f"revoked:{row.key}", b"1", ttl_s=ttl + 5)
            copied += 1
        return copied

    async def authenticate(self, token: str) -> Principal:
        principal = self._signer.verify(token)
        keys = [f"revoked:jti:{principal.token_id}"]
        if principal.session_id:
            keys.append(f"revoked:sid:{principal.session_id}")
        if any(value is not None for value in await self._kv.get_many(keys)):
            raise TokenInvalid(reason="revoked")
        return principal
