"""Certificate tokens, keyrings and the offline verifier (certificates/): pure, no I/O but tmp_path."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certificates.__main__ import main as certificates_cli
from certificates.keys import CertificateKeyring, KeyringError
from certificates.links import token_from_scan, verification_url
from certificates.offline import OfflineVerifier
from certificates.qr import qr_svg
from certificates.tokens import CertificateClaims, PresentationClaims, TokenInvalid

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
BASE = "https://estate.example.gov.cn"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def claims(serial: str = "NH2026120300001", **overrides: object) -> CertificateClaims:
    fields: dict[str, object] = {
        "serial": serial,
        "cert_type": "no_housing",
        "purpose": "house_purchase",
        "holder": "张*",
        "issued_at": NOW,
        "valid_until": NOW + timedelta(days=30),
        "as_of": NOW - timedelta(hours=1),
    }
    fields.update(overrides)
    return CertificateClaims(**fields)  # type: ignore[arg-type]


def presentation(serial: str = "NH2026120300001") -> PresentationClaims:
    return PresentationClaims(
        serial=serial, issued_at=NOW, expires_at=NOW + timedelta(seconds=60), nonce="q1w2e3"
    )


@pytest.fixture
def keyring(tmp_path: Path) -> CertificateKeyring:
    return CertificateKeyring.ensure(tmp_path / "keys")


# --- tokens ----------------------------------------------------------------------------------------


def test_certificate_round_trip(keyring: CertificateKeyring) -> None:
    original = claims(holder="张𠀀*")
    assert keyring.verify_certificate(keyring.sign_certificate(original)) == original
    assert keyring.verify_any(keyring.sign_certificate(original)) == original


def test_presentation_and_revocations_round_trip(keyring: CertificateKeyring) -> None:
    assert keyring.verify_presentation(keyring.sign_presentation(presentation())) == presentation()
    assert keyring.verify_any(keyring.sign_presentation(presentation())) == presentation()
    crl = keyring.verify_revocations(keyring.sign_revocations(["b", "a"], NOW))
    assert (crl.issued_at, crl.serials, crl.kid) == (NOW, frozenset({"a", "b"}), keyring.signing_kid)


def test_times_are_integer_epoch_seconds_and_expired_tokens_still_verify(keyring: CertificateKeyring) -> None:
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)
    old = claims(issued_at=long_ago, valid_until=long_ago + timedelta(days=1), as_of=long_ago)
    token = keyring.sign_certificate(old)
    assert keyring.verify_certificate(token) == old  # no exp/iat check anywhere
    with pytest.raises(ValueError, match="aware"):
        keyring.sign_certificate(claims(issued_at=datetime(2026, 1, 1)))


def test_a_flipped_character_anywhere_is_rejected(keyring: CertificateKeyring) -> None:
    token = keyring.sign_certificate(claims())
    for i, char in enumerate(token):
        replacements = [c for c in ALPHABET if c != char] if char != "." else ["A"]
        # every position; at the last one of each segment, every letter (padding bits)
        for other in replacements if i + 1 == len(token) or token[i + 1] == "." else replacements[:1]:
            forged = token[:i] + other + token[i + 1 :]
            with pytest.raises(TokenInvalid) as caught:
                keyring.verify_certificate(forged)
            assert caught.value.reason in {"malformed", "bad_signature", "unknown_key", "wrong_kind"}


def test_a_token_signed_by_another_keyring_has_an_unknown_key(
    keyring: CertificateKeyring, tmp_path: Path
) -> None:
    stranger = CertificateKeyring.ensure(tmp_path / "stranger")
    with pytest.raises(TokenInvalid) as caught:
        keyring.verify_certificate(stranger.sign_certificate(claims()))
    assert caught.value.reason == "unknown_key"


@pytest.mark.parametrize(
    "garbage", ["", "abc", "a.b", "a.b.c", "a.b.c.d", "..", "a b.c.d", "é.b.c", "x" * 5000]
)
def test_garbage_is_malformed(keyring: CertificateKeyring, garbage: str) -> None:
    with pytest.raises(TokenInvalid) as caught:
        keyring.verify_any(garbage)
    assert caught.value.reason == "malformed"


def test_no_kind_can_be_replayed_as_another(keyring: CertificateKeyring) -> None:
    certificate = keyring.sign_certificate(claims())
    shown = keyring.sign_presentation(presentation())
    crl = keyring.sign_revocations(["x"], NOW)
    for verify, token in [
        (keyring.verify_certificate, shown),
        (keyring.verify_certificate, crl),
        (keyring.verify_presentation, certificate),
        (keyring.verify_presentation, crl),
        (keyring.verify_revocations, certificate),
        (keyring.verify_revocations, shown),
        (keyring.verify_any, crl),
    ]:
        with pytest.raises(TokenInvalid) as caught:
            verify(token)
        assert caught.value.reason == "wrong_kind"


# --- keys ------------------------------------------------------------------------------------------


def test_ensure_creates_private_files_and_directory(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    keyring = CertificateKeyring.ensure(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    (private,) = directory.glob("*.key.pem")
    assert private.name == f"{keyring.signing_kid}.key.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert CertificateKeyring.ensure(directory).signing_kid == keyring.signing_kid  # not a new key


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_kid(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    before = CertificateKeyring.ensure(directory)
    old_token = before.sign_certificate(claims())
    new_kid = CertificateKeyring.rotate(directory)
    assert new_kid != before.signing_kid
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [f"{before.signing_kid}.pub.pem", f"{new_kid}.key.pem"]
    )  # the retired private key is gone
    after = CertificateKeyring.load(directory)
    assert after.signing_kid == new_kid
    assert after.verify_certificate(old_token) == claims()
    new_token = after.sign_certificate(claims("NH2"))
    assert json.loads(_header(new_token))["kid"] == new_kid
    statuses = {k["kid"]: k["status"] for k in after.jwks()["keys"]}
    assert statuses == {new_kid: "current", before.signing_kid: "retired"}


def _header(token: str) -> bytes:
    import base64

    segment = token.split(".")[0]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_jwks_is_an_rfc7517_set_and_from_jwks_verifies_but_cannot_sign(keyring: CertificateKeyring) -> None:
    jwks = json.loads(json.dumps(keyring.jwks()))
    (key,) = jwks["keys"]
    assert {k: key[k] for k in ("kty", "crv", "alg", "use", "status")} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "status": "current",
    }
    assert key["kid"] == keyring.signing_kid and len(key["x"]) == 43 and "d" not in key
    published = CertificateKeyring.from_jwks(jwks)
    assert published.verify_certificate(keyring.sign_certificate(claims())) == claims()
    assert not published.can_sign
    with pytest.raises(KeyringError, match="verify"):
        published.sign_certificate(claims())
    with pytest.raises(KeyringError):
        published.signing_kid
    wrong_kid = {"keys": [{**key, "kid": "AAAAAAAAAAA"}]}
    with pytest.raises(KeyringError, match="kid"):
        CertificateKeyring.from_jwks(wrong_kid)


def test_load_refuses_a_world_readable_private_key(keyring: CertificateKeyring, tmp_path: Path) -> None:
    (private,) = (tmp_path / "keys").glob("*.key.pem")
    private.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        CertificateKeyring.load(tmp_path / "keys")
    private.chmod(0o640)  # a group-mounted secret
    assert CertificateKeyring.load(tmp_path / "keys").signing_kid == keyring.signing_kid


def test_load_refuses_empty_and_ambiguous_directories(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KeyringError, match="no keys"):
        CertificateKeyring.load(empty)
    with pytest.raises(KeyringError, match="does not exist"):
        CertificateKeyring.load(tmp_path / "missing")
    two = tmp_path / "two"
    CertificateKeyring.ensure(two)
    other = CertificateKeyring.ensure(tmp_path / "other")
    (other_private,) = (tmp_path / "other").glob("*.key.pem")
    (two / other_private.name).write_bytes(other_private.read_bytes())
    os.chmod(two / other_private.name, 0o600)
    with pytest.raises(KeyringError, match="2 current signing keys"):
        CertificateKeyring.load(two)
    assert other.signing_kid


def test_load_refuses_a_key_file_not_named_by_its_kid(keyring: CertificateKeyring, tmp_path: Path) -> None:
    (private,) = (tmp_path / "keys").glob("*.key.pem")
    private.rename(private.with_name("renamed.key.pem"))
    with pytest.raises(KeyringError, match="must be named"):
        CertificateKeyring.load(tmp_path / "keys")


# --- links -----------------------------------------------------------------------------------------


def test_token_from_scan(keyring: CertificateKeyring) -> None:
    token = keyring.sign_certificate(claims())
    url = verification_url(BASE + "/", token)
    assert url == f"{BASE}/v#{token}"
    assert token_from_scan(url) == token
    assert token_from_scan(token) == token
    assert token_from_scan(f"  {url[:40]}\r\n{url[40:]}\n") == token  # scanner line breaks
    for garbage in [
        "",
        "hello",
        "https://evil.example/x#" + token,
        "ftp://h/v#" + token,
        f"{BASE}/v#",
        "a.b",
    ]:
        assert token_from_scan(garbage) is None, garbage
    assert token_from_scan(token + "A" * 3000) is None  # over the 2 KiB cap


def test_qr_svg_is_self_contained() -> None:
    svg = qr_svg(f"{BASE}/v#abc.def.ghi")
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "<path" in svg
    assert "href" not in svg and "<script" not in svg


# --- offline verifier ------------------------------------------------------------------------------


def test_offline_verdicts(keyring: CertificateKeyring, tmp_path: Path) -> None:
    listed_at = NOW + timedelta(hours=1)
    verifier = OfflineVerifier(keyring.jwks(), keyring.sign_revocations(["REVOKED"], listed_at))
    good = verification_url(BASE, keyring.sign_certificate(claims()))
    later = listed_at + timedelta(hours=2)

    verdict = verifier.verify(good, later)
    assert (verdict.verdict, verdict.claims) == ("valid", claims())
    assert verdict.revocations_issued_at == listed_at
    assert verdict.revocations_age == timedelta(hours=2) and not verdict.stale

    revoked = keyring.sign_certificate(claims("REVOKED"))
    assert verifier.verify(revoked, later).verdict == "revoked"
    assert verifier.verify(keyring.sign_presentation(presentation("REVOKED")), later).verdict == "revoked"

    after_expiry = NOW + timedelta(days=31)
    expired = verifier.verify(good, after_expiry)
    assert expired.verdict == "expired" and expired.claims == claims()
    assert expired.stale and expired.revocations_age == after_expiry - listed_at

    shown = keyring.sign_presentation(presentation())
    assert verifier.verify(shown, NOW + timedelta(seconds=30)).verdict == "valid"
    assert verifier.verify(shown, NOW + timedelta(seconds=61)).verdict == "expired"  # a stale screenshot

    stranger = CertificateKeyring.ensure(tmp_path / "stranger")
    forged = verifier.verify(stranger.sign_certificate(claims()), later)
    assert (forged.verdict, forged.claims, forged.reason) == ("forged", None, "unknown_key")
    assert verifier.verify("not a certificate", later).reason == "not_a_token"
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    assert verifier.verify(tampered, later).verdict == "forged"

    strict = OfflineVerifier(keyring.jwks(), keyring.sign_revocations([], NOW), max_age=timedelta(minutes=30))
    assert strict.verify(good, NOW + timedelta(minutes=31)).stale
    assert not strict.verify(good, NOW + timedelta(minutes=29)).stale


def test_offline_verifier_refuses_a_forged_revocation_list(
    keyring: CertificateKeyring, tmp_path: Path
) -> None:
    stranger = CertificateKeyring.ensure(tmp_path / "stranger")
    with pytest.raises(TokenInvalid):
        OfflineVerifier(keyring.jwks(), stranger.sign_revocations([], NOW))
    with pytest.raises(TokenInvalid):
        OfflineVerifier(keyring.jwks(), keyring.sign_certificate(claims()))


def test_cli_prints_the_verdict_as_json(
    keyring: CertificateKeyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys, crl = tmp_path / "jwks.json", tmp_path / "crl.jws"
    keys.write_text(json.dumps(keyring.jwks()))
    crl.write_text(keyring.sign_revocations([], NOW) + "\n")
    url = verification_url(BASE, keyring.sign_certificate(claims()))
    now = (NOW + timedelta(hours=1)).isoformat()
    code = certificates_cli(["verify", "--keys", str(keys), "--revocations", str(crl), "--now", now, url])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["verdict"] == "valid" and out["claims"]["holder"] == "张*" and out["stale"] is False
    assert out["revocations_age_seconds"] == 3600
    code = certificates_cli(["verify", "--keys", str(keys), "--revocations", str(crl), "--now", now, "junk"])
    assert code == 1 and json.loads(capsys.readouterr().out)["verdict"] == "forged"


def test_pyjwt_accepts_our_tokens_and_we_reject_what_it_would_not_sign(keyring: CertificateKeyring) -> None:
    """Our parser (certificates.tokens.verify) is stricter than PyJWS, never looser."""
    import jwt

    token = keyring.sign_certificate(claims())
    key = CertificateKeyring.from_jwks(keyring.jwks())._verifying[keyring.signing_kid].key  # type: ignore[attr-defined]
    decoded = jwt.api_jws.PyJWS().decode_complete(token, key, algorithms=["EdDSA"])
    assert decoded["header"] == {"alg": "EdDSA", "kid": keyring.signing_kid, "typ": "nhc"}
    assert json.loads(decoded["payload"])["s"] == claims().serial
    padded = token + "=="  # PyJWS tolerates trailing padding; one certificate, one token string
    with pytest.raises(TokenInvalid) as caught:
        keyring.verify_certificate(padded)
    assert caught.value.reason == "malformed"


def test_dark_runs_cover_exactly_the_dark_modules() -> None:
    from certificates.qr import dark_runs, qr_matrix

    matrix = qr_matrix(f"{BASE}/v#" + "x" * 300)
    rebuilt = [[False] * len(row) for row in matrix]
    for row, column, length in dark_runs(matrix):
        assert length > 0 and not any(rebuilt[row][column : column + length])
        rebuilt[row][column : column + length] = [True] * length
    assert rebuilt == matrix
