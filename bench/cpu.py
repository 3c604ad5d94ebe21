"""CPU scenarios: code measured in this process with `time.process_time`, no server.

`certificates`: issuing a no-housing certificate (sign + verification URL + QR + PDF) and
verifying certificate tokens offline, on one core.
Targets (docs/certificates.md#benchmark): median issue under 10 ms of CPU; at least 5,000
offline signature verifications a second. The signing key is of the settings' cryptography
profile (`ESTATE_CRYPTO_PROFILE=national`: SM2), named in the result as `profile`.

`primitives`: each profile's primitives side by side on one core (docs/decisions/0006): signature
sign/verify (Ed25519 vs SM2), hash (SHA-256 vs SM3), keyed index (HMAC-SHA256 vs HMAC-SM3), AEAD
seal/open (AES-256-GCM vs SM4-GCM) of an ID number and of 4 KiB, and the PII vault's
encrypt/decrypt/blind index as the service calls them.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ISSUE_TARGET_MS = 10.0
VERIFY_TARGET_PER_S = 5000.0
BASE_URL = "https://estate.example.gov.cn"


@dataclass
class CpuOptions:
    iterations: int  # certificates issued per name
    duration_s: float  # CPU seconds per verification loop
    warmup: int


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3)

    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def _cpu_times(op: Callable[[int], object], n: int, warmup: int) -> list[float]:
    for i in range(warmup):
        op(i)
    samples = []
    for i in range(n):
        started = time.process_time()
        op(i)
        samples.append(time.process_time() - started)
    return samples


def _rate(op: Callable[[int], object], duration_s: float) -> dict[str, float]:
    done, started = 0, time.process_time()
    while (elapsed := time.process_time() - started) < duration_s:
        for _ in range(200):
            op(done)
            done += 1
    return {"n": done, "cpu_s": round(elapsed, 3), "per_s": round(done / elapsed, 1)}


def certificates(opts: CpuOptions) -> dict[str, Any]:
    """Issue (sign + QR + PDF) CPU per certificate; offline verifications per second."""
    from certificates.keys import CertificateKeyring
    from certificates.links import verification_url
    from certificates.offline import OfflineVerifier
    from certificates.pdf import CertificateFonts, NoHousingDocument, render_no_housing_pdf
    from certificates.qr import qr_matrix
    from certificates.tokens import CertificateClaims
    from config.settings import load_settings
    from standards.crypto_profile import signature_algorithm

    profile = load_settings().crypto_profile
    started = time.process_time()
    fonts = CertificateFonts.load()
    fonts_s = time.process_time() - started
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as directory:
        keyring = CertificateKeyring.ensure(Path(directory) / "keys", signature_algorithm(profile))

    def claims(i: int) -> CertificateClaims:
        return CertificateClaims(
            serial=f"NH{now:%Y%m%d}{i:07d}",
            cert_type="no_housing",
            purpose="house_purchase",
            holder="张*",
            issued_at=now,
            valid_until=now + timedelta(days=30),
            as_of=now - timedelta(minutes=1),
        )

    def document(i: int, name: str, qr_text: str) -> NoHousingDocument:
        c = claims(i)
        return NoHousingDocument(
            serial=c.serial,
            holder_name=name,
            holder_id_masked="1101**********1239",
            result_text="经查询，截至查询截止时间，申请人在本市不动产登记簿中无住房登记记录。",
            purpose_label="购房",
            as_of=c.as_of,
            valid_from=c.issued_at,
            valid_until=c.valid_until,
            authority="上海市不动产登记事务中心",
            qr_text=qr_text,
        )

    def issuer(name: str) -> Callable[[int], bytes]:
        def issue(i: int) -> bytes:
            url = verification_url(BASE_URL, keyring.sign_certificate(claims(i)))
            return render_no_housing_pdf(document(i, name, url), fonts)

        return issue

    url = verification_url(BASE_URL, keyring.sign_certificate(claims(0)))
    pdf_bytes = len(issuer("张三")(0))
    n, warm = opts.iterations, opts.warmup
    issue_common = _cpu_times(issuer("张三"), n, warm)
    issue_rare = _cpu_times(issuer("张𠀀"), n, warm)
    parts = {
        "sign": _ms(_cpu_times(lambda i: keyring.sign_certificate(claims(i)), n, warm)),
        "qr_matrix": _ms(_cpu_times(lambda i: qr_matrix(url), n, warm)),
        "render_pdf": _ms(
            _cpu_times(lambda i: render_no_housing_pdf(document(i, "张三", url), fonts), n, warm)
        ),
    }

    published = CertificateKeyring.from_jwks(keyring.jwks())
    tokens = [keyring.sign_certificate(claims(i)) for i in range(256)]
    urls = [verification_url(BASE_URL, t) for t in tokens]
    offline = OfflineVerifier(keyring.jwks(), keyring.sign_revocations([f"R{i}" for i in range(1000)], now))
    verify_token = _rate(lambda i: published.verify_certificate(tokens[i & 255]), opts.duration_s)
    verify_offline = _rate(lambda i: offline.verify(urls[i & 255], now), opts.duration_s)

    common = _ms(issue_common)
    ceiling = _openssl_sm2_speed() if signature_algorithm(profile) == "SM2SM3" else None
    return {
        "description": (certificates.__doc__ or "").strip(),
        "profile": profile,
        "signature_algorithm": signature_algorithm(profile),
        "setup": {
            "fonts_registration_cpu_s": round(fonts_s, 3),
            "fonts": list(fonts.names),
            "qr_text_chars": len(url),
            "qr_modules": len(qr_matrix(url)),
            "pdf_bytes": pdf_bytes,
        },
        "issue": {"name 张三 (text font only)": common, "name 张𠀀 (adds a HanaMin subset)": _ms(issue_rare)},
        "issue_parts": parts,
        "verify": {
            "keyring.verify_certificate": verify_token,
            "OfflineVerifier.verify (URL, 1000 revoked serials)": verify_offline,
        },
        "verify_ceiling": ceiling,
        "targets": {
            "issue_median_ms_below": ISSUE_TARGET_MS,
            "issue_met": common["median_ms"] < ISSUE_TARGET_MS,
            "verify_per_s_at_least": VERIFY_TARGET_PER_S,
            "verify_met": verify_token["per_s"] >= VERIFY_TARGET_PER_S,
        },
    }


def _openssl_sm2_speed(seconds: int = 2) -> dict[str, Any]:
    """The ceiling of SM2 on this CPU, in the same run: OpenSSL's own C (`openssl speed sm2`, one
    core), which no Python binding measured (docs/decisions/0006) outruns."""
    command = ["openssl", "speed", "-seconds", str(seconds), "-mr", "sm2"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    # machine-readable line: +F7:<n>:256:CurveSM2:<sign/s>:<verify/s>
    fields = next(line for line in out.splitlines() if line.startswith("+F7:")).split(":")
    return {
        "command": " ".join(command),
        "sign_per_s": round(float(fields[4]), 1),
        "verify_per_s": round(float(fields[5]), 1),
    }


def primitives(opts: CpuOptions) -> dict[str, Any]:
    """Each profile's primitives, same message sizes, one core: operations per CPU second."""
    from standards.crypto_profile import EDDSA, INTERNATIONAL, NATIONAL, SM2SM3

    return {
        "description": (primitives.__doc__ or "").strip(),
        "per_profile": {
            INTERNATIONAL: _primitive_rates(INTERNATIONAL, EDDSA, 32, opts.duration_s),
            NATIONAL: _primitive_rates(NATIONAL, SM2SM3, 16, opts.duration_s),
        },
    }


def _primitive_rates(profile: Any, algorithm: Any, key_len: int, duration_s: float) -> dict[str, Any]:
    import base64
    import os

    from services.pii import PiiVault
    from standards.crypto_profile import aead, generate_signing_key, hash_bytes, keyed_index

    message, page, id_number = os.urandom(300), os.urandom(4096), b"310115199001011234"
    nonce, index_key = os.urandom(12), os.urandom(32)
    vault = PiiVault(
        key_b64=base64.b64encode(os.urandom(32)).decode(),
        blind_index_key="bench-index-key",
        sm4_key_b64=base64.b64encode(os.urandom(16)).decode(),
    ).with_profile(profile)
    signer = generate_signing_key(algorithm)
    verifier = signer.public_key()
    signature = signer.sign(message)
    cipher = aead(profile, os.urandom(key_len))
    sealed, sealed_page = cipher.encrypt(nonce, id_number, b"id_number"), cipher.encrypt(nonce, page, b"")
    token = vault.encrypt("310115199001011234")
    ops: dict[str, Callable[[int], object]] = {
        f"{algorithm} sign (300 B)": lambda i: signer.sign(message),
        f"{algorithm} verify (300 B)": lambda i: verifier.verify(signature, message),
        "hash (300 B)": lambda i: hash_bytes(profile, message),
        "hash (4 KiB)": lambda i: hash_bytes(profile, page),
        "keyed index (18 B)": lambda i: keyed_index(profile, index_key, id_number),
        "AEAD seal (18 B)": lambda i: cipher.encrypt(nonce, id_number, b"id_number"),
        "AEAD open (18 B)": lambda i: cipher.decrypt(nonce, sealed, b"id_number"),
        "AEAD seal (4 KiB)": lambda i: cipher.encrypt(nonce, page, b""),
        "AEAD open (4 KiB)": lambda i: cipher.decrypt(nonce, sealed_page, b""),
        "PiiVault.encrypt": lambda i: vault.encrypt("310115199001011234"),
        "PiiVault.decrypt": lambda i: vault.decrypt(token),
        "PiiVault.blind_index": lambda i: vault.blind_index("310115199001011234"),
    }
    return {name: _rate(op, duration_s) for name, op in ops.items()}


CPU_SCENARIOS: dict[str, Callable[[CpuOptions], dict[str, Any]]] = {
    "certificates": certificates,
    "primitives": primitives,
}
