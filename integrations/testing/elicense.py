"""In-memory electronic licence library: checks the PDF digest, one licence per type and number."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from integrations.elicense.base import (
    ALREADY_REVOKED,
    DIGEST_MISMATCH,
    LICENSE_EXISTS,
    LICENSE_NOT_FOUND,
    ElicenseStore,
    LicenseRecord,
    LicenseStatus,
    StoredLicense,
)
from integrations.testing.fake import FakeSystem


class FakeElicense(FakeSystem, ElicenseStore):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.licenses: dict[str, LicenseRecord] = {}
        self.pdfs: dict[str, bytes] = {}

    def _reset_effects(self) -> None:
        self.licenses.clear()
        self.pdfs.clear()

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
    ) -> StoredLicense:
        operation = "store_license"

        def apply() -> StoredLicense:
            self._require_text(operation, license_type, number, holder_ref, pdf_sha256)
            if hashlib.sha256(pdf_bytes).hexdigest() != pdf_sha256.lower():
                raise self._refuse(operation, 422, DIGEST_MISMATCH)
            if any(
                lic.license_type == license_type and lic.number == number for lic in self.licenses.values()
            ):
                raise self._refuse(operation, 409, LICENSE_EXISTS)
            license_id = f"EL{len(self.licenses) + 1:010d}"
            self.licenses[license_id] = LicenseRecord(
                license_id=license_id,
                license_type=license_type,
                number=number,
                holder_ref=holder_ref,
                issued_at=issued_at,
                valid_until=valid_until,
                pdf_sha256=pdf_sha256.lower(),
                status=LicenseStatus.VALID,
            )
            self.pdfs[license_id] = pdf_bytes
            return StoredLicense(license_id=license_id)

        arguments = (
            license_type,
            number,
            holder_ref,
            issued_at.isoformat(),
            valid_until,
            pdf_sha256,
            pdf_bytes,
        )
        return await self._effect(operation, idempotency_key, arguments, apply)

    async def _get_license(self, license_id: str) -> LicenseRecord:
        def read() -> LicenseRecord:
            found = self._license("get_license", license_id)
            if (
                found.status is LicenseStatus.VALID
                and found.valid_until
                and found.valid_until < self.clock().date()
            ):
                return replace(found, status=LicenseStatus.EXPIRED)
            return found

        return await self._read("get_license", read)

    async def _revoke_license(self, idempotency_key: str, license_id: str, reason: str) -> None:
        operation = "revoke_license"

        def apply() -> None:
            found = self._license(operation, license_id)
            self._require_text(operation, reason)
            if found.status is LicenseStatus.REVOKED:
                raise self._refuse(operation, 409, ALREADY_REVOKED)
            self.licenses[license_id] = replace(found, status=LicenseStatus.REVOKED, revoked_reason=reason)

        await self._effect(operation, idempotency_key, (license_id, reason), apply)

    def _license(self, operation: str, license_id: str) -> LicenseRecord:
        found = self.licenses.get(license_id)
        if found is None:
            raise self._refuse(operation, 404, LICENSE_NOT_FOUND)
        return found
