"""signed-json-v2: the HMAC covers the timestamp and the body; the receiver's check refuses a
tampered body, a forged or missing signature, and a timestamp outside its window."""

from __future__ import annotations

from integrations.banks.base import BAD_SIGNATURE, STALE_TIMESTAMP, CallbackEndpoint
from integrations.banks.http import ADAPTERS, SignedJsonCallbackV2, sign, sign_v2, verify_v2

SECRET = "a-callback-secret-of-the-bank"
BODY = b'{"filing_ref":"MF-1","status":"registered"}'
NOW = 1_800_000_000


def test_a_fresh_genuine_callback_passes() -> None:
    assert (
        verify_v2(SECRET, BODY, timestamp=str(NOW), signature=sign_v2(SECRET, NOW, BODY), now=NOW + 299)
        is None
    )


def test_a_stale_or_future_timestamp_is_refused_even_when_signed() -> None:
    for ts in (NOW - 301, NOW + 301):
        assert (
            verify_v2(SECRET, BODY, timestamp=str(ts), signature=sign_v2(SECRET, ts, BODY), now=NOW)
            == STALE_TIMESTAMP
        )


def test_tampering_with_body_timestamp_or_secret_is_refused() -> None:
    good = sign_v2(SECRET, NOW, BODY)
    assert verify_v2(SECRET, BODY + b" ", timestamp=str(NOW), signature=good, now=NOW) == BAD_SIGNATURE
    assert verify_v2(SECRET, BODY, timestamp=str(NOW + 1), signature=good, now=NOW) == BAD_SIGNATURE
    assert (
        verify_v2("another-secret-entirely", BODY, timestamp=str(NOW), signature=good, now=NOW)
        == BAD_SIGNATURE
    )
    assert verify_v2(SECRET, BODY, timestamp=None, signature=good, now=NOW) == BAD_SIGNATURE
    assert verify_v2(SECRET, BODY, timestamp="-5", signature=good, now=NOW) == BAD_SIGNATURE
    # A v1 signature (body only) is not a v2 one: no downgrade.
    assert verify_v2(SECRET, BODY, timestamp=str(NOW), signature=sign(SECRET, BODY), now=NOW) == BAD_SIGNATURE


def test_both_versions_are_configurable_adapters() -> None:
    assert set(ADAPTERS) == {"signed-json-v1", "signed-json-v2"}
    assert ADAPTERS["signed-json-v2"] is SignedJsonCallbackV2
    assert SECRET not in repr(CallbackEndpoint("b", "", SECRET, "signed-json-v2"))
