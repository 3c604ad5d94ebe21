"""The database's cryptography profile: re-encrypting personal data and switching profiles
(services/crypto/switch.py). Imports nothing at package level, so services.audit may use its models."""
