"""The national cryptography profile (issue 16): published vectors, OpenSSL interop, SM2 certificate keys.

The OpenSSL tests run the `openssl` 3 command line; they fail (not skip) where it is missing, so a
machine without it cannot pass the suite while claiming interop.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import gmssl_pyx
import jwt.api_jws
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pydantic import ValidationError

from certificates.keys import CertificateKeyring, KeyringError
from certificates.offline import OfflineVerifier
from certificates.tokens import TokenInvalid
from config.settings import Settings
from standards import crypto_profile as cp
from standards.sm2 import DEFAULT_SIGNER_ID, SM2KeyError, SM2PrivateKey, SM2PublicKey
from tests.unit.test_certificate_tokens import NOW, claims

# GB/T 32905-2016 Appendix A (SM3)
SM3_ABC = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
SM3_ABCD_16 = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
# GB/T 32907-2016 Appendix A (SM4): example 1, and example 2 (the same block encrypted 1,000,000 times)
SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
SM4_ONCE = "681edf34d206965e86b3e94f536e4246"
SM4_MILLION = "595298c7c6fd271f0402f804c33d3f66"
# RFC 8998 Appendix A.1 (SM4-GCM)
GCM_IV = bytes.fromhex("00001234567800000000ABCD")
GCM_AAD = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
GCM_PLAIN = bytes.fromhex("".join(c * 16 for c in "ABCDEFEA"))
GCM_CIPHER = (
    "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
    "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
)
GCM_TAG = "83DE3541E4C2B58177E065A9BF7B62EC"
DISTID = "distid:" + DEFAULT_SIGNER_ID.decode()


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("openssl")
    assert binary is not None, (
        "the OpenSSL interop tests need the `openssl` 3 command line (apt-get install openssl)"
    )
    return subprocess.run([binary, *args], input=stdin, capture_output=True, timeout=30, check=False)


def flip(data: bytes, bit: int = 0) -> bytes:
    return data[: bit // 8] + bytes([data[bit // 8] ^ (1 << (bit % 8))]) + data[bit // 8 + 1 :]


# --- SM3, HMAC-SM3 ---------------------------------------------------------------------------------


def test_sm3_matches_gbt_32905_vectors() -> None:
    assert cp.hash_bytes("national", b"abc").hex() == SM3_ABC
    assert cp.hash_bytes("national", b"abcd" * 16).hex() == SM3_ABCD_16
    assert gmssl_pyx.sm3_hash(b"abc").hex() == SM3_ABC  # the SM2 library agrees
    assert cp.hash_bytes("international", b"abc").hex().startswith("ba7816bf")  # SHA-256


def test_hmac_sm3_agrees_with_gmssl_and_differs_from_hmac_sha256() -> None:
    for key, data in [(b"k", b""), (b"key" * 30, b"abc" * 100), (bytes(64), b"x")]:
        assert cp.keyed_index("national", key, data) == gmssl_pyx.sm3_hmac(key, data)
    assert cp.keyed_index("international", b"k", b"abc") != cp.keyed_index("national", b"k", b"abc")
    with pytest.raises(ValueError, match="unknown cryptography profile"):
        cp.keyed_index("nist", b"k", b"abc")  # type: ignore[arg-type]


# --- SM4, SM4-GCM ----------------------------------------------------------------------------------


def test_sm4_matches_gbt_32907_vectors() -> None:
    encryptor = Cipher(algorithms.SM4(SM4_KEY), modes.ECB()).encryptor()
    block = encryptor.update(SM4_KEY)
    assert block.hex() == SM4_ONCE
    for _ in range(999_999):
        block = encryptor.update(block)
    assert block.hex() == SM4_MILLION


def test_sm4_gcm_matches_rfc_8998_and_gmssl() -> None:
    sealed = cp.aead("national", SM4_KEY).encrypt(GCM_IV, GCM_PLAIN, GCM_AAD)
    assert sealed.hex().upper() == GCM_CIPHER + GCM_TAG
    ours = cp.aead("national", SM4_KEY).decrypt(GCM_IV, sealed, GCM_AAD)
    assert ours == GCM_PLAIN
    theirs, tag = gmssl_pyx.sm4_gcm_encrypt(SM4_KEY, GCM_IV, GCM_AAD, GCM_PLAIN)
    assert theirs + tag == sealed


def test_sm4_gcm_round_trip_and_every_tamper_fails() -> None:
    key = bytes(range(16))
    box = cp.aead("national", key)
    nonce, aad, plain = bytes(12), b"id_number", b"310101199001011234"
    sealed = box.encrypt(nonce, plain, aad)
    assert box.decrypt(nonce, sealed, aad) == plain and len(sealed) == len(plain) + 16
    for bit in (0, 8 * len(plain) - 1, 8 * len(sealed) - 1):  # first and last ciphertext bit, the tag
        with pytest.raises(cp.AeadInvalid):
            box.decrypt(nonce, flip(sealed, bit), aad)
    with pytest.raises(cp.AeadInvalid):
        box.decrypt(nonce, sealed, b"phone")
    with pytest.raises(cp.AeadInvalid):
        box.decrypt(flip(nonce), sealed, aad)
    with pytest.raises(cp.AeadInvalid):
        cp.aead("national", bytes(16)).decrypt(nonce, sealed, aad)
    with pytest.raises(cp.AeadInvalid):
        box.decrypt(nonce, sealed[:10], aad)
    with pytest.raises(ValueError, match="16-byte"):
        cp.aead("national", bytes(32))
    aes = cp.aead("international", bytes(32))
    with pytest.raises(cp.AeadInvalid):
        aes.decrypt(nonce, flip(aes.encrypt(nonce, plain, aad)), aad)


# --- SM2 and OpenSSL -------------------------------------------------------------------------------


def test_openssl_verifies_an_sm2_signature_made_here_and_not_a_flipped_one(tmp_path: Path) -> None:
    key = SM2PrivateKey.generate()
    message = "无房证明 NH2026120300001".encode()
    (tmp_path / "pub.pem").write_bytes(key.public_key().pem())
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "bad.msg").write_bytes(flip(message))
    signature = key.sign(message)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    (tmp_path / "sig").write_bytes(encode_dss_signature(r, s))
    (tmp_path / "bad.sig").write_bytes(encode_dss_signature(r, s ^ 1))

    def verify(msg: str, sig: str, *options: str) -> bool:
        args = [
            "pkeyutl",
            "-verify",
            "-rawin",
            "-digest",
            "sm3",
            "-pubin",
            "-inkey",
            str(tmp_path / "pub.pem"),
        ]
        done = openssl(*args, "-in", str(tmp_path / msg), "-sigfile", str(tmp_path / sig), *options)
        return done.returncode == 0 and b"Signature Verified Successfully" in done.stdout

    assert verify("msg", "sig", "-pkeyopt", DISTID)
    assert not verify("bad.msg", "sig", "-pkeyopt", DISTID)
    assert not verify("msg", "bad.sig", "-pkeyopt", DISTID)
    assert not verify("msg", "sig")  # OpenSSL 3's default ID is empty, not GM/T 0009's


def test_an_sm2_signature_made_by_openssl_verifies_here_and_not_a_flipped_one(tmp_path: Path) -> None:
    made = openssl("genpkey", "-algorithm", "SM2", "-out", str(tmp_path / "key.pem"))
    assert made.returncode == 0, made.stderr
    message = b"estate.sm2 interop"
    (tmp_path / "msg").write_bytes(message)
    signed = openssl(
        *("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", str(tmp_path / "key.pem")),
        *("-in", str(tmp_path / "msg"), "-pkeyopt", DISTID),
    )
    assert signed.returncode == 0, signed.stderr
    r, s = decode_dss_signature(signed.stdout)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    private = SM2PrivateKey.from_pem((tmp_path / "key.pem").read_bytes())  # OpenSSL's PKCS#8 reads here
    public = private.public_key()
    assert public.verify(signature, message)
    assert not public.verify(signature, flip(message))
    assert not public.verify(flip(signature, 7), message)
    assert not public.verify(signature[:63], message)
    exported = openssl("pkey", "-pubin", "-in", "/dev/stdin", "-pubout", stdin=public.pem())
    assert exported.returncode == 0 and SM2PublicKey.from_pem(exported.stdout) == public


def test_openssl_reads_our_sm2_private_key_and_signs_for_it(tmp_path: Path) -> None:
    key = SM2PrivateKey.generate()
    (tmp_path / "key.pem").write_bytes(key.pem())
    text = openssl("pkey", "-in", str(tmp_path / "key.pem"), "-text", "-noout")
    assert text.returncode == 0 and b"ASN1 OID: SM2" in text.stdout, text.stderr
    assert SM2PrivateKey.from_pem(key.pem()).public_key() == key.public_key()


def test_sm2_keys_are_refused_unless_well_formed() -> None:
    key = SM2PrivateKey.generate()
    der = key.der()
    with pytest.raises(SM2KeyError):
        SM2PrivateKey.from_der(der[:-1])
    with pytest.raises(SM2KeyError, match="does not match"):  # a public half of another key
        SM2PrivateKey.from_der(der[:-64] + SM2PrivateKey.generate().public_key().der()[-64:])
    with pytest.raises(SM2KeyError, match="curve"):
        SM2PublicKey(bytes(64))
    with pytest.raises(SM2KeyError):
        SM2PublicKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    assert repr(key) == "SM2PrivateKey(...)"


# --- certificate keys and tokens under each profile -----------------------------------------------


def test_a_national_keyring_signs_sm2sm3_tokens_and_publishes_an_ec_sm2_jwk(tmp_path: Path) -> None:
    keyring = CertificateKeyring.ensure(tmp_path / "keys", cp.SM2SM3)
    assert keyring.signing_algorithm == "SM2SM3"
    token = keyring.sign_certificate(claims())
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "SM2SM3", "kid": keyring.signing_kid, "typ": "nhc"}
    assert keyring.verify_certificate(token) == claims()
    (jwk,) = keyring.jwks()["keys"]
    assert {k: jwk[k] for k in ("kty", "crv", "alg", "use", "status")} == {
        "kty": "EC",
        "crv": "SM2",
        "alg": "SM2SM3",
        "use": "sig",
        "status": "current",
    }
    published = CertificateKeyring.from_jwks(json.loads(json.dumps(keyring.jwks())))
    assert published.verify_certificate(token) == claims()
    assert CertificateKeyring.load(tmp_path / "keys").signing_kid == keyring.signing_kid
    with pytest.raises(TokenInvalid) as caught:
        published.verify_certificate(token[:-2] + ("AA" if token[-2:] != "AA" else "BA"))
    assert caught.value.reason in {"bad_signature", "malformed"}


def test_rotating_from_one_profile_to_the_other_keeps_old_tokens_verifiable(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    old = CertificateKeyring.ensure(directory)  # international
    old_token = old.sign_certificate(claims("NH-OLD"))
    new = CertificateKeyring.ensure(directory, cp.SM2SM3)  # the profile changed: rotated
    assert new.signing_algorithm == "SM2SM3" and old.signing_kid in new.kids
    new_token = new.sign_certificate(claims("NH-NEW"))
    jwks = new.jwks()
    assert [(k["alg"], k["status"]) for k in jwks["keys"]] == [("SM2SM3", "current"), ("EdDSA", "retired")]
    crl = new.sign_revocations(["NH-REVOKED"], NOW)
    verifier = OfflineVerifier(json.loads(json.dumps(jwks)), crl)
    at = NOW + timedelta(hours=1)
    assert verifier.verify(old_token, at).verdict == "valid"
    assert verifier.verify(new_token, at).verdict == "valid"
    back = CertificateKeyring.ensure(directory)  # and back again
    assert back.signing_algorithm == "EdDSA" and {old.signing_kid, new.signing_kid} <= back.kids
    assert back.verify_certificate(new_token).serial == "NH-NEW"


def test_production_load_refuses_a_current_key_of_the_other_profile(tmp_path: Path) -> None:
    CertificateKeyring.ensure(tmp_path / "keys")
    with pytest.raises(KeyringError, match="certificate-keys rotate"):
        CertificateKeyring.load(tmp_path / "keys", cp.SM2SM3)
    CertificateKeyring.rotate(tmp_path / "keys", cp.SM2SM3)
    assert CertificateKeyring.load(tmp_path / "keys", cp.SM2SM3).signing_algorithm == "SM2SM3"


def test_a_header_naming_the_other_algorithm_is_refused(tmp_path: Path) -> None:
    keyring = CertificateKeyring.ensure(tmp_path / "keys", cp.SM2SM3)
    header, payload, signature = keyring.sign_certificate(claims()).split(".")
    lying = {"alg": "EdDSA", "kid": keyring.signing_kid, "typ": "nhc"}
    forged_header = base64.urlsafe_b64encode(json.dumps(lying, separators=(",", ":")).encode()).rstrip(b"=")
    with pytest.raises(TokenInvalid) as caught:
        keyring.verify_certificate(f"{forged_header.decode()}.{payload}.{signature}")
    assert caught.value.reason == "malformed" and header != forged_header.decode()


def test_jwks_entries_must_be_one_of_the_two_key_types(tmp_path: Path) -> None:
    (jwk,) = CertificateKeyring.ensure(tmp_path / "keys", cp.SM2SM3).jwks()["keys"]
    for bad in (
        {**jwk, "alg": "EdDSA"},
        {**jwk, "crv": "P-256"},
        {**jwk, "y": jwk["x"]},
        {**jwk, "use": "enc"},
    ):
        with pytest.raises(KeyringError):
            CertificateKeyring.from_jwks({"keys": [bad]})


def test_ed25519_tokens_are_byte_for_byte_what_pyjws_would_make(tmp_path: Path) -> None:
    keyring = CertificateKeyring.ensure(tmp_path / "keys")
    token = keyring.sign_certificate(claims())
    private = keyring._signer()[1].key  # type: ignore[attr-defined]
    payload = base64.urlsafe_b64decode(token.split(".")[1] + "==")
    pyjws = jwt.api_jws.PyJWS(algorithms=["EdDSA"])
    assert (
        pyjws.encode(payload, private, algorithm="EdDSA", headers={"kid": keyring.signing_kid, "typ": "nhc"})
        == token
    )


# --- settings --------------------------------------------------------------------------------------


def test_the_profile_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESTATE_CRYPTO_PROFILE", raising=False)  # the suite may run under national
    assert Settings(_env_file=None).crypto_profile == "international"  # type: ignore[call-arg]
    monkeypatch.setenv("ESTATE_CRYPTO_PROFILE", "national")
    assert Settings(_env_file=None).crypto_profile == "national"  # type: ignore[call-arg]
    monkeypatch.setenv("ESTATE_CRYPTO_PROFILE", "sm")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert (
        cp.signature_algorithm("national") == "SM2SM3" and cp.signature_algorithm("international") == "EdDSA"
    )
