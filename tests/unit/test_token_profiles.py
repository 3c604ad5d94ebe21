"""Access tokens under both cryptography profiles (issue 16): the profile's algorithm signs, a
token's `alg` must be the algorithm of the key its `kid` names, keys of the other algorithm keep
verifying after a switch, and nothing but EdDSA and SM2SM3 is accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.settings import ConfigurationError, Settings
from services.clock import FrozenClock
from services.errors import TokenInvalid
from services.identity.install_keys import JWT_KEY_FILES
from services.identity.tokens import TokenSigner, access_token_jws, kid_of
from standards.crypto_profile import (
    EDDSA,
    SM2SM3,
    SigningKey,
    generate_signing_key,
    signature_algorithm,
    verifying_key_from_jwk,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
PROFILES = ["international", "national"]


def _settings(tmp_path: Path, profile: str, **overrides: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        crypto_profile=profile,
        key_dir=tmp_path / "keys",
        **overrides,
    )


def _signer(key: SigningKey, *previous: SigningKey) -> TokenSigner:
    return TokenSigner(
        private_key=key,
        issuer="https://estate.test",
        audience="estate-api",
        ttl_s=900,
        clock=FrozenClock(NOW),
        previous_public_keys=[p.public_key() for p in previous],
    )


def _claims() -> dict[str, Any]:
    now = int(NOW.timestamp())
    return {
        "iss": "https://estate.test",
        "aud": "estate-api",
        "sub": "person:1",
        "role": "citizen",
        "iat": now,
        "exp": now + 600,
        "jti": "j1",
    }


def _forge(key: SigningKey, *, alg: str, kid: str) -> str:
    """A token signed by `key` whose header says `alg` and `kid`, whatever they are."""
    jws = access_token_jws()
    body = json.dumps(_claims(), separators=(",", ":")).encode()
    return jws.encode(body, key, algorithm=alg, headers={"kid": kid})  # type: ignore[arg-type]


def _reason(signer: TokenSigner, token: str) -> str:
    with pytest.raises(TokenInvalid) as caught:
        signer.verify(token)
    return str(caught.value.fields["reason"])


@pytest.mark.parametrize("profile", PROFILES)
def test_the_profile_chooses_the_algorithm_that_signs(tmp_path: Path, profile: str) -> None:
    signer = TokenSigner.from_settings(_settings(tmp_path, profile), FrozenClock(NOW))
    algorithm = signature_algorithm(profile)  # type: ignore[arg-type]
    assert signer.algorithm == algorithm
    token, _ = signer.issue(subject="person:1", role="citizen", claims={"pid": 1})
    header = jwt.get_unverified_header(token)
    assert header == {"alg": algorithm, "kid": signer.kid, "typ": "JWT"}
    assert signer.verify(token).person_id == 1
    key_file = tmp_path / "keys" / JWT_KEY_FILES[algorithm]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    (jwk,) = signer.jwks()["keys"]
    assert jwk["alg"] == algorithm and jwk["kid"] == signer.kid and jwk["use"] == "sig"


def test_eddsa_tokens_are_the_bytes_pyjwt_makes() -> None:
    raw = Ed25519PrivateKey.generate()
    signer = TokenSigner(private_key=raw, issuer="i", audience="a", ttl_s=60, clock=FrozenClock(NOW))
    assert signer._encode(_claims()) == jwt.encode(
        _claims(), raw, algorithm="EdDSA", headers={"kid": signer.kid}
    )


@pytest.mark.parametrize(("current", "other"), [(SM2SM3, EDDSA), (EDDSA, SM2SM3)])
def test_a_header_alg_that_is_not_its_keys_algorithm_is_refused(current: str, other: str) -> None:
    key, previous = generate_signing_key(current), generate_signing_key(other)  # type: ignore[arg-type]
    signer = _signer(key, previous)
    key_kid, previous_kid = kid_of(key.public_key()), kid_of(previous.public_key())
    # Signed by the other algorithm's key, but naming this algorithm's kid: and the reverse.
    assert _reason(signer, _forge(previous, alg=other, kid=key_kid)) == "algorithm"
    assert _reason(signer, _forge(key, alg=current, kid=previous_kid)) == "algorithm"
    # Both genuine combinations verify.
    assert signer.verify(_forge(key, alg=current, kid=key_kid)).subject == "person:1"
    assert signer.verify(_forge(previous, alg=other, kid=previous_kid)).subject == "person:1"


def test_the_key_of_one_algorithm_is_never_used_with_the_other() -> None:
    jws = access_token_jws()
    sm2 = generate_signing_key(SM2SM3)
    with pytest.raises(jwt.InvalidKeyError):
        jws.encode(b"{}", sm2, algorithm=EDDSA)  # type: ignore[arg-type]
    token = jws.encode(b"{}", sm2, algorithm=SM2SM3)  # type: ignore[arg-type]
    with pytest.raises(jwt.InvalidAlgorithmError):
        jws.decode(token, sm2.public_key(), algorithms=[EDDSA])  # type: ignore[arg-type]


@pytest.mark.parametrize("profile", PROFILES)
def test_none_and_hmac_tokens_are_refused(profile: str) -> None:
    key = generate_signing_key(signature_algorithm(profile))  # type: ignore[arg-type]
    signer = _signer(key)
    public_pem = key.public_key().pem()
    assert (
        _reason(signer, jwt.encode(_claims(), None, algorithm="none", headers={"kid": signer.kid}))
        == "algorithm"
    )
    assert (
        _reason(
            signer,
            jwt.encode(
                _claims(),
                "an-hmac-secret-of-thirty-two-bytes!",
                algorithm="HS256",
                headers={"kid": signer.kid},
            ),
        )
        == "algorithm"
    )
    # The classic confusion: the public key used as an HMAC secret.
    header = _b64(json.dumps({"alg": "HS256", "kid": signer.kid, "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(_claims()).encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert _reason(signer, f"{signing_input}.{_b64(mac)}") == "algorithm"
    # And a token naming SM2SM3 or EdDSA with the public key as an HMAC "signature" fails as invalid.
    forged = f"{_b64(json.dumps({'alg': signer.algorithm, 'kid': signer.kid}).encode())}.{_b64(b'{}')}"
    tag = hmac.new(public_pem, forged.encode(), hashlib.sha256).digest() * 2
    assert _reason(signer, f"{forged}.{_b64(tag)}") == "invalid"


def test_a_header_alg_that_is_not_a_string_is_refused() -> None:
    signer = _signer(generate_signing_key(SM2SM3))
    good = signer._encode(_claims())
    for alg in (["SM2SM3"], {"x": 1}, None, 5):
        header = _b64(json.dumps({"alg": alg, "kid": signer.kid, "typ": "JWT"}).encode())
        assert _reason(signer, header + good[good.index(".") :]) == "algorithm"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_sm2sm3_is_not_registered_with_pyjwt_globally() -> None:
    assert "SM2SM3" not in jwt.api_jws._jws_global_obj.get_algorithms()
    token = _signer(generate_signing_key(SM2SM3))._encode(_claims())
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(token, "anything", algorithms=["SM2SM3"])


def test_a_profile_switch_retires_the_embedded_key_and_old_tokens_stay_valid(tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    before = TokenSigner.from_settings(_settings(tmp_path, "international"), clock)
    old_token, _ = before.issue(subject="person:7", role="citizen")
    keys = tmp_path / "keys"

    after = TokenSigner.from_settings(_settings(tmp_path, "national"), clock)
    assert after.algorithm == SM2SM3 and after.kid != before.kid
    assert not (keys / JWT_KEY_FILES[EDDSA]).exists(), "the retired key can sign no more"
    assert (keys / "jwt-ed25519.pub.pem").exists()
    assert after.verify(old_token).subject == "person:7"
    new_token, _ = after.issue(subject="person:8", role="citizen")
    assert jwt.get_unverified_header(new_token)["alg"] == SM2SM3
    listed = {k["kid"]: k["alg"] for k in after.jwks()["keys"]}
    assert listed == {after.kid: SM2SM3, before.kid: EDDSA}
    assert after.jwks()["keys"][0]["kid"] == after.kid, "the current key first"
    for entry in after.jwks()["keys"]:
        assert kid_of(verifying_key_from_jwk(entry)) == entry["kid"]

    again = TokenSigner.from_settings(_settings(tmp_path, "national"), clock)
    assert again.kid == after.kid, "a restart under the same profile keeps the key"

    back = TokenSigner.from_settings(_settings(tmp_path, "international"), clock)
    assert back.algorithm == EDDSA and back.kid not in (before.kid, after.kid)
    assert not (keys / JWT_KEY_FILES[SM2SM3]).exists()
    assert back.verify(new_token).subject == "person:8"
    assert back.verify(old_token).subject == "person:7"


def test_an_interrupted_retirement_is_finished_at_the_next_start(tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    first = TokenSigner.from_settings(_settings(tmp_path, "national"), clock)
    # As if a start under international had made its key and stopped before retiring the SM2 one.
    ed = generate_signing_key(EDDSA)
    path = tmp_path / "keys" / JWT_KEY_FILES[EDDSA]
    path.write_bytes(ed.pem())
    path.chmod(0o600)
    signer = TokenSigner.from_settings(_settings(tmp_path, "international"), clock)
    assert signer.kid == kid_of(ed.public_key())
    assert not (tmp_path / "keys" / JWT_KEY_FILES[SM2SM3]).exists()
    assert first.kid in {k["kid"] for k in signer.jwks()["keys"]}


def _pem_file(path: Path, key: SigningKey) -> Path:
    path.write_bytes(key.pem())
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(("profile", "wrong"), [("national", EDDSA), ("international", SM2SM3)])
def test_a_configured_key_of_the_other_algorithm_is_refused_at_start(
    tmp_path: Path, profile: str, wrong: str
) -> None:
    key_file = _pem_file(tmp_path / "jwt.pem", generate_signing_key(wrong))  # type: ignore[arg-type]
    settings = _settings(tmp_path, profile, jwt_private_key_file=key_file)
    with pytest.raises(ConfigurationError, match=f"is {wrong}, but ESTATE_CRYPTO_PROFILE={profile}"):
        TokenSigner.from_settings(settings, FrozenClock(NOW))


def test_a_configured_switch_keeps_the_old_public_key_verifying(tmp_path: Path) -> None:
    ed = generate_signing_key(EDDSA)
    sm2 = generate_signing_key(SM2SM3)
    old_pub = tmp_path / "old.pub.pem"
    old_pub.write_bytes(ed.public_key().pem())
    clock = FrozenClock(NOW)
    before = TokenSigner.from_settings(
        _settings(tmp_path, "international", jwt_private_key_file=_pem_file(tmp_path / "ed.pem", ed)), clock
    )
    token, _ = before.issue(subject="person:3", role="citizen")
    after = TokenSigner.from_settings(
        _settings(
            tmp_path,
            "national",
            jwt_private_key_file=_pem_file(tmp_path / "sm2.pem", sm2),
            jwt_previous_public_key_files=[old_pub],
        ),
        clock,
    )
    assert after.algorithm == SM2SM3
    assert after.verify(token).subject == "person:3"
    assert {k["alg"] for k in after.jwks()["keys"]} == {EDDSA, SM2SM3}


def test_a_previous_key_that_is_neither_ed25519_nor_sm2_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    path = tmp_path / "p256.pub.pem"
    path.write_bytes(
        p256.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigurationError, match="Ed25519 or SM2"):
        TokenSigner.from_settings(
            _settings(tmp_path, "national", jwt_previous_public_key_files=[path]), FrozenClock(NOW)
        )


@pytest.mark.parametrize("algorithm", [EDDSA, SM2SM3])
def test_a_tampered_or_foreign_token_is_refused_and_the_cache_keeps_time_checks(algorithm: str) -> None:
    key = generate_signing_key(algorithm)  # type: ignore[arg-type]
    clock = FrozenClock(NOW)
    signer = TokenSigner(
        private_key=key, issuer="https://estate.test", audience="estate-api", ttl_s=900, clock=clock
    )
    token, _ = signer.issue(subject="person:1", role="citizen")
    head, _, signature = token.split(".")
    other = signer._encode({**_claims(), "sub": "person:2"}).split(".")[1]
    assert _reason(signer, f"{head}.{other}.{signature}") == "invalid"
    stranger = _signer(generate_signing_key(algorithm))  # type: ignore[arg-type]
    assert _reason(stranger, token) == "unknown_kid"
    assert signer.verify(token).subject == "person:1"
    assert signer.verify(token).subject == "person:1"  # from the cache
    clock.advance(seconds=900 + 10)  # past exp and the 5 s leeway
    assert _reason(signer, token) == "expired"
