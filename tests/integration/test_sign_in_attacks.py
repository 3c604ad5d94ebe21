"""The attacks of issue 8 on sign-in and tokens, replayed over real HTTP against the real database.

Each test failed on the code before the fix: parallel guesses passed the staff lockout, the bank
client lockout (there was none) and the SMS-code limit; a token signed with the key derived from
the source's secret was accepted; logout without a body left the refresh token alive;
revocations were forgotten on restart; a ten-year token, non-ASCII digits and text/plain JSON
were accepted; an oversized header got 413; q-values were ignored; clerks had no limit.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import stat
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.settings import DEV_SECRET
from services.errors import AuthenticationFailed, RateLimited, TokenInvalid
from services.identity.install_keys import JWT_KEY_FILES
from services.identity.models import OtpChallenge
from services.identity.tokens import TokenSigner
from services.kv import MemoryStore
from services.ratelimit import RateLimiter
from standards.crypto_profile import signature_algorithm
from tests.factories import (
    DEFAULT_STAFF_PASSWORD,
    create_api_client,
    create_organisation,
    create_person,
    create_staff,
    id_number_of,
    make_phone,
)
from tests.integration.citizen_support import auth_service, request_code

PARALLEL = 100
STAFF = "/api/v1/auth/staff-tokens"
CLIENT = "/api/v1/auth/client-tokens"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _parallel(client: httpx.AsyncClient, n: int, path: str, **kwargs) -> list[httpx.Response]:
    return list(await asyncio.gather(*(client.post(path, **kwargs) for _ in range(n))))


# --- item 1: lockouts under parallel guesses ------------------------------------------------------


async def test_parallel_wrong_passwords_check_at_most_the_limit_then_lock(client, app):
    staff = await create_staff(role="admin", office_code=None)
    limit = app.services.settings.staff_login_max_failures
    wrong = {"username": staff.username, "password": "not-the-password"}

    answers = await _parallel(client, PARALLEL, STAFF, json=wrong)

    checked = [r for r in answers if r.status_code == 401]
    assert len(checked) <= limit, f"{len(checked)} passwords were checked; the limit is {limit}"
    assert {r.status_code for r in answers} <= {401, 423}
    assert sum(r.status_code == 423 for r in answers) >= PARALLEL - limit
    right = await client.post(STAFF, json={"username": staff.username, "password": DEFAULT_STAFF_PASSWORD})
    assert right.status_code == 423 and right.json()["code"] == "ACCOUNT_LOCKED"


async def test_the_lock_lifts_after_its_time_and_the_right_password_then_works(client, app, clock):
    staff = await create_staff()
    limit = app.services.settings.staff_login_max_failures
    for _ in range(limit):
        await client.post(STAFF, json={"username": staff.username, "password": "wrong"})
    good = {"username": staff.username, "password": DEFAULT_STAFF_PASSWORD}
    assert (await client.post(STAFF, json=good)).status_code == 423
    clock.advance(seconds=app.services.settings.staff_lock_s + 1)
    assert (await client.post(STAFF, json=good)).status_code == 200


async def test_parallel_wrong_client_secrets_lock_the_bank_client(client, app):
    organisation = await create_organisation(kind="bank")
    bank = await create_api_client(organisation=organisation, client_secret="right-1")
    limit = app.services.settings.staff_login_max_failures
    form = {"grant_type": "client_credentials", "client_id": bank.client_id}

    answers = await _parallel(client, PARALLEL, CLIENT, data={**form, "client_secret": "wrong"})

    assert sum(r.status_code == 401 for r in answers) <= limit
    right = await client.post(CLIENT, data={**form, "client_secret": "right-1"})
    assert right.status_code == 423 and right.json()["code"] == "ACCOUNT_LOCKED"


async def test_an_unknown_username_locks_like_a_real_one(client, app):
    """423 must not tell real usernames from unknown ones."""
    limit = app.services.settings.staff_login_max_failures
    statuses = {}
    for name in (f"ghost-{os.urandom(4).hex()}", (await create_staff()).username):
        answers = [
            (await client.post(STAFF, json={"username": name, "password": "wrong"})).status_code
            for _ in range(limit + 1)
        ]
        statuses[name] = answers
    first, second = statuses.values()
    assert first == second == [401] * limit + [423]


async def test_each_address_has_an_hourly_cap_over_all_accounts(app):
    services = app.services
    limiter = RateLimiter.from_url(services.settings.redis_url, prefix=f"cap-{os.urandom(4).hex()}:")
    auth = auth_service(app, limiter=limiter, password_hourly_cap_per_ip=3)
    try:
        for _ in range(3):  # three accounts, one guess each
            staff = await create_staff()
            with pytest.raises(AuthenticationFailed):
                await auth.sign_in_staff(username=staff.username, password="wrong", client_ip="192.0.2.7")
        with pytest.raises(RateLimited):
            name = (await create_staff()).username
            await auth.sign_in_staff(username=name, password="x", client_ip="192.0.2.7")
    finally:
        await limiter.close()


# --- item 2: SMS codes under parallel guesses -----------------------------------------------------


async def test_parallel_wrong_codes_compare_at_most_the_limit(client, app, vault):
    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    code = await request_code(client, app, phone)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    limit = app.services.settings.otp_max_attempts

    guess = {"phone": phone, "code": wrong}
    answers = await _parallel(client, 2 * PARALLEL, "/api/v1/auth/tokens", json=guess)

    # A compared wrong code answers with the attempts left (or, for the last, exceeded); a guess
    # that was not counted, or came after the code closed, is refused without a comparison.
    compared = [r for r in answers if "attempts_left" in r.json()]
    assert len(compared) <= limit - 1, f"{len(compared)} wrong codes were compared; the limit is {limit}"
    challenge = await OtpChallenge.filter(phone_index=vault.blind_index(phone, context="phone")).first()
    assert challenge is not None and challenge.attempts == limit and challenge.consumed_at is not None
    assert {r.json()["code"] for r in answers} <= {"OTP_INVALID", "OTP_ATTEMPTS_EXCEEDED"}
    r = await client.post("/api/v1/auth/tokens", json={"phone": phone, "code": code})
    assert r.status_code == 401, "the right code must not work after the limit"


# --- item 5: no key derived from the source -------------------------------------------------------


def _source_derived_key(secret: str) -> Ed25519PrivateKey:
    """The key the embedded profile used to derive (services/tokens.py before issue 8)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"jwt-dev-key:" + secret.encode()).digest())


async def test_a_token_signed_with_the_old_source_derived_key_is_refused(client, app, vault):
    person = await create_person(vault=vault)
    settings = app.services.settings
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "staff:1",
        "role": "admin",
        "pid": person.id,
        "iat": now,
        "exp": now + 600,
        "jti": "forged",
    }
    for secret in (DEV_SECRET, settings.secret_key.get_secret_value()):
        key = _source_derived_key(secret)
        for kid in (app.services.signer.kid, None):
            headers = {"kid": kid} if kid else {}
            forged = jwt.encode(claims, key, algorithm="EdDSA", headers=headers)
            r = await client.get("/api/v1/admin/outbox", headers=bearer(forged))
            assert r.status_code == 401 and r.json()["code"] == "TOKEN_INVALID"


def test_an_embedded_install_makes_its_own_owner_only_key_once(settings, tmp_path):
    from services.clock import SystemClock

    local = settings.model_copy(update={"key_dir": tmp_path / "keys", "jwt_private_key_file": None})
    first = TokenSigner.from_settings(local, SystemClock())
    again = TokenSigner.from_settings(local, SystemClock())
    other = TokenSigner.from_settings(local.model_copy(update={"key_dir": tmp_path / "other"}), SystemClock())
    key_file = tmp_path / "keys" / JWT_KEY_FILES[signature_algorithm(local.crypto_profile)]
    assert first.kid == again.kid != other.kid
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert first.kid != TokenSigner(
        private_key=_source_derived_key(DEV_SECRET), issuer="i", audience="a", ttl_s=1, clock=SystemClock()
    ).kid

    key_file.chmod(0o644)
    with pytest.raises(RuntimeError, match="chmod 600"):
        TokenSigner.from_settings(local, SystemClock())


def test_embedded_secrets_left_at_the_default_are_made_per_install(tmp_path):
    from config.settings import DEV_PII_KEY, Settings
    from services.identity.install_keys import with_install_secrets

    base = Settings(_env_file=None, database_url=f"sqlite://{tmp_path}/new.sqlite3")  # type: ignore[call-arg]
    one = with_install_secrets(base.model_copy(update={"key_dir": tmp_path / "a"}))
    two = with_install_secrets(base.model_copy(update={"key_dir": tmp_path / "b"}))
    for name in ("secret_key", "pii_key", "blind_index_key"):
        assert getattr(one, name).get_secret_value() != getattr(two, name).get_secret_value()
    assert one.pii_key.get_secret_value() != DEV_PII_KEY
    assert len(base64.b64decode(one.pii_key.get_secret_value())) == 32
    again = with_install_secrets(base.model_copy(update={"key_dir": tmp_path / "a"}))
    assert again.pii_key == one.pii_key, "the same install keeps its keys"


# --- items 6 and 8: logout ends the sign-in, and a restart forgets no revocation -----------------


async def test_logout_without_a_body_ends_the_refresh_family(client, app, vault):
    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    first = await _sign_in(client, app, phone)
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    second = r.json()

    r = await client.post("/api/v1/auth/logout", headers=bearer(second["access_token"]))
    assert r.status_code == 204

    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 401
    # The earlier access token of the same sign-in is ended too.
    assert (await client.get("/api/v1/me", headers=bearer(first["access_token"]))).status_code == 401


async def _sign_in(client, app, phone: str) -> dict:
    code = await request_code(client, app, phone)
    r = await client.post("/api/v1/auth/tokens", json={"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_revoked_token_stays_revoked_after_a_restart(client, app):
    """A restarted process starts with an empty key-value store (the embedded profile keeps it in
    memory; a Redis may have been flushed): the revocations come back from the database."""
    staff = await create_staff()
    r = await client.post(STAFF, json={"username": staff.username, "password": DEFAULT_STAFF_PASSWORD})
    token = r.json()["access_token"]
    assert (await client.post("/api/v1/auth/logout", headers=bearer(token))).status_code == 204

    restarted = auth_service(app, kv=MemoryStore())
    assert await restarted.restore_revocations() >= 2  # the token and its sign-in
    with pytest.raises(TokenInvalid):
        await restarted.authenticate(token)


# --- item 10: the smaller ones -------------------------------------------------------------------


async def test_a_token_longer_lived_than_configured_is_refused(client, app, vault):
    person = await create_person(vault=vault)
    signer = app.services.signer
    now = int(app.services.clock.now().timestamp())
    settings = app.services.settings
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": f"person:{person.id}",
        "role": "citizen",
        "pid": person.id,
        "iat": now,
        "exp": now + 10 * 365 * 24 * 3600,
        "jti": f"long-{os.urandom(4).hex()}",
    }
    token = signer._encode(claims)
    r = await client.get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 401 and r.json()["reason"] == "lifetime"


@pytest.mark.parametrize(
    "phone",
    ["13٩٠٠٠٠٠٠٠١", "１３９００００００01", "139000000０1", "+86 13٩00000001"],
)
async def test_phones_take_ascii_digits_only(client, phone):
    r = await client.post("/api/v1/auth/sms-codes", json={"phone": phone})
    assert r.status_code == 422 and r.json()["code"] in ("VALIDATION_FAILED", "INVALID_PHONE")


async def test_district_codes_take_ascii_digits_only(client, app, vault):
    headers = bearer(app.services.signer.issue(subject="person:1", role="citizen", claims={"pid": 1})[0])
    r = await client.get("/api/v1/me/properties", params={"district_code": "３１０１１５"}, headers=headers)
    assert r.status_code == 422
    r = await client.post(
        "/api/v1/clerk/property-queries",
        json={"id_number": "１１０１０５１９９００３０７１２３９", "purpose": "holder_request", "reference": "R"},  # noqa: E501
        headers=bearer(app.services.signer.issue(subject="staff:1", role="clerk", claims={})[0]),
    )
    assert r.status_code == 422


async def test_json_sent_as_text_plain_is_415(client):
    r = await client.post(
        "/api/v1/auth/sms-codes", content=b'{"phone": "13900000001"}', headers={"content-type": "text/plain"}
    )
    assert r.status_code == 415 and r.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.post(
        "/api/v1/auth/sms-codes",
        content=b"phone=13900000001",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415, "forms are taken by the OAuth2 token endpoint only"


async def test_an_oversized_header_is_431(client):
    r = await client.get("/api/v1/me", headers={"Authorization": "Bearer " + "a" * 20_000})
    assert r.status_code == 431


@pytest.mark.parametrize(
    ("header", "english"),
    [
        ("en;q=0, zh;q=1", False),
        ("zh;q=0.1, en", True),
        ("en-GB;q=0.8, zh-CN;q=0.9", False),
        ("fr, en;q=0.5", True),
        ("en;q=0.5, zh;q=0.5", True),
        ("de", False),
        ("en;q=abc", False),
    ],
)
async def test_accept_language_q_values_are_honoured(client, header, english):
    r = await client.get("/api/v1/does-not-exist", headers={"Accept-Language": header})
    assert (r.json()["title"] == "Not found") is english


async def test_clerk_look_ups_are_limited_per_clerk_even_in_parallel(client, app, vault):
    person = await create_person(vault=vault)
    staff = await create_staff(role="clerk")
    r = await client.post(STAFF, json={"username": staff.username, "password": DEFAULT_STAFF_PASSWORD})
    headers = bearer(r.json()["access_token"])
    body = {"id_number": id_number_of(person, vault=vault), "purpose": "holder_request", "reference": "R-1"}
    per_minute = app.services.settings.clerk_lookups_per_minute

    answers = await _parallel(
        client, per_minute + PARALLEL, "/api/v1/clerk/property-queries", json=body, headers=headers
    )

    assert sum(r.status_code == 200 for r in answers) == per_minute
    limited = [r for r in answers if r.status_code == 429]
    assert len(limited) == PARALLEL and all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    other = await create_staff(role="clerk")
    r = await client.post(STAFF, json={"username": other.username, "password": DEFAULT_STAFF_PASSWORD})
    other_headers = bearer(r.json()["access_token"])
    r = await client.post("/api/v1/clerk/property-queries", json=body, headers=other_headers)
    assert r.status_code == 200, "another clerk has a limit of their own"
