"""SM2 signing hashes Z || data here and signs the digest (standards/sm2.py): Z must be the one
GmSSL's own message-level verification computes, for the default signer ID and for any other."""

from __future__ import annotations

import gmssl_pyx
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from standards.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey, signer_digest


def _der(signature: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))


def test_our_signature_verifies_with_gmssls_message_api_under_the_default_id() -> None:
    key = SM2PrivateKey.generate()
    point = key.public_key().x + key.public_key().y
    data = "不动产登记 certificate token".encode()
    signature = key.sign(data)
    assert gmssl_pyx.sm2_verify(point, data, _der(signature), signer_id=DEFAULT_SIGNER_ID)
    assert not gmssl_pyx.sm2_verify(point, data + b".", _der(signature), signer_id=DEFAULT_SIGNER_ID)
    assert not gmssl_pyx.sm2_verify(point, data, _der(signature), signer_id=b"8765432187654321")


@pytest.mark.parametrize("signer_id", [b"ALICE123@YAHOO.COM", b"x", DEFAULT_SIGNER_ID * 4])
def test_z_is_gmssls_for_any_signer_id(signer_id: bytes) -> None:
    """A digest signed over SM3(Z || m) with our Z verifies where GmSSL computes Z itself."""
    from cryptography.hazmat.primitives import hashes

    point, private = gmssl_pyx.sm2_key_generate()
    data = b"message digest"
    h = hashes.Hash(hashes.SM3())
    h.update(signer_digest(point, signer_id) + data)
    der = gmssl_pyx.sm2_sign_sm3_digest(private, h.finalize())
    assert gmssl_pyx.sm2_verify(point, data, der, signer_id=signer_id)
    assert not gmssl_pyx.sm2_verify(point, data, der, signer_id=signer_id + b"!")


def test_two_signatures_of_the_same_data_differ() -> None:
    """A fresh nonce each time (GmSSL's, from the kernel): equal signatures would leak the key."""
    key = SM2PrivateKey.generate()
    assert key.sign(b"same") != key.sign(b"same")
