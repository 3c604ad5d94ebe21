"""Contract of the electronic licence library."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from integrations.base import ExternalSystem

# Remote refusal codes (RequestRejected.code) that callers may act on.
LICENSE_NOT_FOUND = "LICENSE_NOT_FOUND"
LICENSE_EXISTS = "LICENSE_EXISTS"
DIGEST_MISMATCH = "DIGEST_MISMATCH"
ALREADY_REVOKED = "ALREADY_REVOKED"


class LicenseStatus(StrEnum):
    VALID = "valid"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class StoredLicense:
    license_id: str


@dataclass(frozen=True)
class LicenseRecord:
    license_id: str
    license_type: str
    number: str
    holder_ref: str
    issued_at: datetime
    valid_until: date | None
    pdf_sha256: str
    status: LicenseStatus
    revoked_reason: str | None = None


class ElicenseStore(ExternalSystem):
    system = "elicense"

    async def store_license(
        self,
        idempotency_key: str,
        license_type: str,
        number: str,
        holder_ref: str,
        issued_at: datetime,
        valid_until: date | None,
        pdf_sha256: str,
        pdf_bytes: bytes,
    ) -> StoredLicense:
        if issued_at.tzinfo is None:
            raise ValueError("issued_at must be timezone-aware")
        return await self._call(
            "store_license",
            lambda: self._store_license(
                idempotency_key,
                license_type,
                number,
                holder_ref,
                issued_at,
                valid_until,
                pdf_sha256,
                pdf_bytes,
            ),
            license_type=license_type,
            number=number,
            pdf_bytes=len(pdf_bytes),
        )

    async def get_license(self, license_id: str) -> LicenseRecord:
        return await self._call("get_license", lambda: self._get_license(license_id), license_id=license_id)

    async def revoke_license(self, idempotency_key: str, license_id: str, reason: str) -> None:
        await self._call(
            "revoke_license",
            lambda: self._revoke_license(idempotency_key, license_id, reason),
            license_id=license_id,
        )

    @abstractmethod
    async def _store_license(
        self,
        idempotency_key: str,
        license_type: str,
        number: str,
        holder_ref: str,
        issued_at: datetime,
        valid_until: date | None,
        pdf_sha256: str,
        pdf_bytes: bytes,
    ) -> StoredLicense: ...

    @abstractmethod
    async def _get_license(self, license_id: str) -> LicenseRecord: ...

    @abstractmethod
    async def _revoke_license(self, idempotency_key: str, license_id: str, reason: str) -> None: ...
