"""Sign-in over real HTTP: SMS codes (through the SMS simulator), staff, bank clients, tokens."""

from __future__ import annotations

import asyncio
import base64
import itertools

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.identifiers import mask_id_number
from services.identity.auth import OTP_DELIVER
from services.outbox.store import pending_counts
from services.ratelimit import RateLimiter
from standards.crypto_profile import verifying_key_from_jwk
from tests.factories import (
    DEFAULT_STAFF_PASSWORD,
    create_api_client,
    create_organisation,
    create_person,
    create_staff,
    id_number_of,
    make_phone,
)
from tests.integration.citizen_support import auth_service, login_codes, request_code, wait_for_new_code

_ips = itertools.count(1)


async def sign_in_citizen(client, app, phone: str) -> dict:
    code = await request_code(client, app, phone)
    r = await client.post("/api/v1/auth/tokens", json={"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    return r.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def drain_outbox(app, timeout_s: float = 10.0) -> None:
    """Wait until the in-process worker has handled every sign-in code asked for."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (await pending_counts()).get(OTP_DELIVER.name, 0):
        assert asyncio.get_running_loop().time() < deadline, "the outbox did not drain"
        await asyncio.sleep(0.05)


# --- SMS one-time codes -------------------------------------------------------------------------


async def test_citizen_signs_in_with_sms_code_and_sees_masked_profile(client, app, vault):
    phone = make_phone()
    person = await create_person(vault=vault, phone=phone)
    tokens = await sign_in_citizen(client, app, phone)
    assert tokens["token_type"] == "Bearer" and tokens["role"] == "citizen"
    assert tokens["expires_in"] > 0 and tokens["refresh_token"]

    r = await client.get("/api/v1/me", headers=bearer(tokens["access_token"]))
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == person.name
    assert body["id_number"] == mask_id_number(id_number_of(person, vault=vault))
    assert body["phone"] == phone[:3] + "****" + phone[-4:]


async def test_sms_code_answer_does_not_reveal_unregistered_phone(client, app, vault):
    phone, registered = make_phone(), make_phone()
    await create_person(vault=vault, phone=registered)
    answers = []
    for p in (phone, registered):
        r = await client.post("/api/v1/auth/sms-codes", json={"phone": p})
        answers.append((r.status_code, r.json()))
    assert answers[0] == answers[1] == (202, {"status": "sent", "expires_in": 300})
    await wait_for_new_code(app, registered, seen=0)
    await drain_outbox(app)
    assert await login_codes(app, phone) == []
    r = await client.post("/api/v1/auth/tokens", json={"phone": phone, "code": "123456"})
    assert r.status_code == 401 and r.json()["code"] == "OTP_INVALID"


async def test_expired_code_is_refused(client, app, clock, vault):
    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    code = await request_code(client, app, phone)
    clock.advance(seconds=app.services.settings.otp_ttl_s + 1)
    r = await client.post("/api/v1/auth/tokens", json={"phone": phone, "code": code})
    assert r.status_code == 401 and r.json()["code"] == "OTP_INVALID"


async def test_code_is_single_use(client, app, vault):
    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    code = await request_code(client, app, phone)
    assert (await client.post("/api/v1/auth/tokens", json={"phone": phone, "code": code})).status_code == 200
    r = await client.post("/api/v1/auth/tokens", json={"phone": phone, "code": code})
    assert r.status_code == 401 and r.json()["code"] == "OTP_INVALID"


async def test_attempt_limit_burns_the_code(client, app, vault):
    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    code = await request_code(client, app, phone)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    limit = app.services.settings.otp_max_attempts
    codes = []
    for _ in range(limit):
        r = await client.post("/api/v1/auth/tokens", json={"phone": phone, "code": wrong})
        codes.append(r.json()["code"])
    assert codes[:-1] == ["OTP_INVALID"] * (limit - 1)
    assert codes[-1] == "OTP_ATTEMPTS_EXCEEDED"
    r = await client.post("/api/v1/auth/tokens", json={"phone": phone, "code": code})
    assert r.status_code == 401, "the right code must not work after the attempt limit"


async def test_cooldown_per_phone_gives_429_with_retry_after(client, vault):
    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    assert (await client.post("/api/v1/auth/sms-codes", json={"phone": phone})).status_code == 202
    r = await client.post("/api/v1/auth/sms-codes", json={"phone": phone})
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "RATE_LIMITED" and int(r.headers["Retry-After"]) >= 1


async def test_daily_cap_per_phone_and_hourly_cap_per_ip(app, vault):
    """The caps, with a small policy, through the real SMS simulator and the real limiter store."""
    services = app.services
    limiter = RateLimiter.from_url(services.settings.redis_url, prefix=services.settings.redis_key_prefix)
    auth = auth_service(
        app, limiter=limiter, otp_cooldown_s=1, otp_daily_cap_per_phone=2, otp_hourly_cap_per_ip=3
    )
    from services.errors import RateLimited

    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    n = next(_ips)
    ip = f"10.9.{n // 250}.{n % 250}"
    await auth.request_sms_code(phone=phone, client_ip=ip)
    await asyncio.sleep(1.05)
    await auth.request_sms_code(phone=phone, client_ip=ip)
    await asyncio.sleep(1.05)
    with pytest.raises(RateLimited):  # third of the day for this phone
        await auth.request_sms_code(phone=phone, client_ip=ip)
    with pytest.raises(RateLimited):  # fourth from this IP within the hour, another phone
        await auth.request_sms_code(phone=make_phone(), client_ip=ip)
    await limiter.close()


async def test_sms_gateway_down_delays_the_code_and_loses_nothing(client, app, vault):
    """The code goes out through the outbox: a gateway outage answers 202 like any request, and
    the code arrives, once, when the gateway is back; it still signs in."""
    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    sms = app.services.simulators.sms
    sms.set_fault("error", status=503)
    try:
        r = await client.post("/api/v1/auth/sms-codes", json={"phone": phone})
        assert r.status_code == 202
        await asyncio.sleep(0.3)
        assert await login_codes(app, phone) == []
    finally:
        sms.clear_faults()
    code = await wait_for_new_code(app, phone, seen=0, timeout_s=15)
    r = await client.post("/api/v1/auth/tokens", json={"phone": phone, "code": code})
    assert r.status_code == 200
    assert len(await login_codes(app, phone)) == 1


# --- access tokens ------------------------------------------------------------------------------


async def test_token_rejections(client, app, clock, vault):
    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    good = (await sign_in_citizen(client, app, phone))["access_token"]
    claims = jwt.decode(good, options={"verify_signature": False})
    header = jwt.get_unverified_header(good)

    none_token = jwt.encode(claims, key=None, algorithm="none")
    other_key = Ed25519PrivateKey.generate()
    unknown_kid = jwt.encode(claims, other_key, algorithm="EdDSA", headers={"kid": "0000000000000000"})
    forged_same_kid = jwt.encode(claims, other_key, algorithm="EdDSA", headers={"kid": header["kid"]})
    wrong_aud = jwt.encode(
        {**claims, "aud": "someone-else"}, other_key, algorithm="EdDSA", headers={"kid": header["kid"]}
    )
    hs256 = jwt.encode(claims, "secret", algorithm="HS256", headers={"kid": header["kid"]})
    for token in (none_token, unknown_kid, forged_same_kid, wrong_aud, hs256, good + "x", "not-a-jwt"):
        r = await client.get("/api/v1/me", headers=bearer(token))
        assert r.status_code == 401, token
        assert r.json()["code"] == "TOKEN_INVALID"

    # Correctly signed by us but for another audience: refused.
    signer = app.services.signer
    wrong_aud_signed = signer._encode({**claims, "aud": "other-api"})
    r = await client.get("/api/v1/me", headers=bearer(wrong_aud_signed))
    assert r.status_code == 401
    missing_exp = {k: v for k, v in claims.items() if k != "exp"}
    no_exp = signer._encode(missing_exp)
    assert (await client.get("/api/v1/me", headers=bearer(no_exp))).status_code == 401

    assert (await client.get("/api/v1/me", headers=bearer(good))).status_code == 200
    clock.advance(seconds=app.services.settings.access_token_ttl_s + 60)
    r = await client.get("/api/v1/me", headers=bearer(good))
    assert r.status_code == 401 and r.json()["reason"] == "expired"


async def test_jwks_publishes_the_verifying_key(client, app, vault):
    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    token = (await sign_in_citizen(client, app, phone))["access_token"]
    jwks = (await client.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks["keys"] if k["kid"] == kid)
    assert key["alg"] == jwt.get_unverified_header(token)["alg"] == app.services.signer.algorithm
    public = verifying_key_from_jwk(key)
    signing_input, _, signature = token.rpartition(".")
    raw_signature = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert public.verify(raw_signature, signing_input.encode())
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["role"] == "citizen"


async def test_refresh_rotation_and_reuse_detection(client, app, vault):
    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    first = await sign_in_citizen(client, app, phone)
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]

    # The old token again: reuse, the whole family is revoked, including the new token.
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401 and r.json()["code"] == "REFRESH_TOKEN_REUSED"
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 401 and r.json()["code"] == "TOKEN_INVALID"


async def test_logout_revokes_access_and_refresh(client, app, vault):
    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    tokens = await sign_in_citizen(client, app, phone)
    headers = bearer(tokens["access_token"])
    r = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=headers
    )
    assert r.status_code == 204
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


# --- staff and banks, roles ---------------------------------------------------------------------


async def _staff(role: str, office: str | None = None) -> tuple[str, str]:
    staff = await create_staff(role=role, office_code=office)
    return staff.username, DEFAULT_STAFF_PASSWORD


async def test_staff_sign_in_lockout_and_roles(client, app, vault):
    username, password = await _staff("clerk", "OFF-310115-01")
    r = await client.post("/api/v1/auth/staff-tokens", json={"username": username, "password": "wrong"})
    assert r.status_code == 401 and r.json()["code"] == "AUTHENTICATION_FAILED"
    r = await client.post("/api/v1/auth/staff-tokens", json={"username": "nobody-here", "password": "x"})
    assert r.status_code == 401 and r.json()["code"] == "AUTHENTICATION_FAILED"
    r = await client.post("/api/v1/auth/staff-tokens", json={"username": username, "password": password})
    assert r.status_code == 200 and r.json()["role"] == "clerk"
    clerk = r.json()["access_token"]
    me = (await client.get("/api/v1/me", headers=bearer(clerk))).json()
    assert me["office_code"] == "OFF-310115-01"

    # A clerk is not an admin; a citizen neither.
    r = await client.get("/api/v1/admin/outbox", headers=bearer(clerk))
    assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED"
    phone = make_phone()
    await create_person(vault=vault, phone=phone)
    citizen = (await sign_in_citizen(client, app, phone))["access_token"]
    assert (await client.get("/api/v1/admin/outbox", headers=bearer(citizen))).status_code == 403
    assert (await client.get("/api/v1/admin/outbox")).status_code == 401

    admin_user, admin_pw = await _staff("admin")
    admin = (
        await client.post("/api/v1/auth/staff-tokens", json={"username": admin_user, "password": admin_pw})
    ).json()
    r = await client.get("/api/v1/admin/outbox", headers=bearer(admin["access_token"]))
    assert r.status_code == 200 and "by_status" in r.json()

    # Lockout after the configured number of failures; even the right password is refused.
    for _ in range(app.services.settings.staff_login_max_failures):
        await client.post("/api/v1/auth/staff-tokens", json={"username": username, "password": "wrong"})
    r = await client.post("/api/v1/auth/staff-tokens", json={"username": username, "password": password})
    assert r.status_code == 423 and r.json()["code"] == "ACCOUNT_LOCKED"


async def test_bank_client_credentials(client):
    org = await create_organisation(kind="bank", name="测试银行")
    api_client = await create_api_client(organisation=org, client_secret="s3cret-value")
    client_id = api_client.client_id
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "s3cret-value"}
    r = await client.post("/api/v1/auth/client-tokens", data=form)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["role"] == "bank" and body["scope"] == "mortgage:file mortgage:read"
    assert "refresh_token" not in body
    me = (await client.get("/api/v1/me", headers=bearer(body["access_token"]))).json()
    assert me["bank_code"] == org.bank_code and me["name"] == "测试银行"

    basic = base64.b64encode(f"{client_id}:s3cret-value".encode()).decode()
    r = await client.post(
        "/api/v1/auth/client-tokens",
        data={"grant_type": "client_credentials", "scope": "mortgage:read"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 200 and r.json()["scope"] == "mortgage:read"

    r = await client.post("/api/v1/auth/client-tokens", data={**form, "client_secret": "wrong"})
    assert r.status_code == 401
    r = await client.post("/api/v1/auth/client-tokens", data={**form, "scope": "admin"})
    assert r.status_code == 401 and r.json()["reason"] == "invalid_scope"
    r = await client.post("/api/v1/auth/client-tokens", data={**form, "grant_type": "password"})
    assert r.status_code == 422


# --- problem+json on bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/v1/auth/sms-codes", {"phone": "12345"}, 422, "VALIDATION_FAILED"),
        ("/api/v1/auth/sms-codes", {"phone": "13900000001", "extra": 1}, 422, "VALIDATION_FAILED"),
        ("/api/v1/auth/sms-codes", [], 422, "VALIDATION_FAILED"),
        ("/api/v1/auth/tokens", {"phone": "13900000001", "code": "12ab56"}, 422, "VALIDATION_FAILED"),
        ("/api/v1/auth/staff-tokens", {"username": "", "password": "x"}, 422, "VALIDATION_FAILED"),
        ("/api/v1/auth/refresh", {"refresh_token": 5}, 422, "VALIDATION_FAILED"),
    ],
)
async def test_bad_input_is_problem_json(client, path, body, status, code):
    r = await client.post(path, json=body, headers={"Accept-Language": "en"})
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == code and problem["status"] == status
    assert (
        problem["request_id"]
        and problem["title"]
        and problem["detail"]
        and problem["type"].startswith("https://")
    )
    assert problem["errors"][0]["field"] is not None or body == []


async def test_malformed_json_and_chinese_default(client):
    r = await client.post(
        "/api/v1/auth/sms-codes", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["code"] == "MALFORMED_REQUEST"
    assert r.json()["title"] == "请求格式错误"
    r = await client.get("/api/v1/does-not-exist")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = await client.delete("/api/v1/auth/tokens")
    assert r.status_code == 405 and r.json()["code"] == "METHOD_NOT_ALLOWED"


def test_proxies_count_reaches_sanic(settings):
    from api.app import create_app

    behind = create_app(settings.model_copy(update={"proxies_count": 2}), name="estate_proxies_2")
    direct = create_app(settings, name="estate_proxies_0")
    assert (behind.config.PROXIES_COUNT, direct.config.PROXIES_COUNT) == (2, None)


async def test_behind_a_proxy_each_forwarded_client_has_its_own_sign_in_limit(client, app):
    """With ESTATE_PROXIES_COUNT=1 the address the proxy appended to X-Forwarded-For is the
    client's, so clients behind one load balancer do not share a limit."""
    cap = app.services.settings.otp_hourly_cap_per_ip

    async def ask(forwarded_for: str) -> int:
        r = await client.post(
            "/api/v1/auth/sms-codes", json={"phone": make_phone()}, headers={"X-Forwarded-For": forwarded_for}
        )
        return r.status_code

    def new_address() -> str:
        n = next(_ips)
        return f"198.51.{n // 250}.{n % 250}"

    config = app.app.config
    config.PROXIES_COUNT = 1
    try:
        assert [await ask(new_address()) for _ in range(4)] == [202] * 4, "four clients, one code each"
        one = new_address()
        assert [await ask(one) for _ in range(cap + 1)] == [202] * cap + [429], "that client's own cap"
    finally:
        config.PROXIES_COUNT = None
