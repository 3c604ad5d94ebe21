"""Outbox topics of the certificates domain (delivered through the e-licence library)."""

ELICENSE_STORE = "elicense.store_license"
ELICENSE_REVOKE = "elicense.revoke_license"
