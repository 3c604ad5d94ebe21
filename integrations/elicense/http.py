"""Electronic licence library over HTTP/JSON ("http-json-v1"); the PDF travels base64-encoded."""

from __future__ import annotations

import base64
from datetime import date, datetime
from urllib.parse import quote

from integrations.base import HttpAdapter
from integrations.elicense.base import ElicenseStore, LicenseRecord, LicenseStatus, StoredLicense

# Licence status codes (证照状态). Source: the interface description the simulator implements
# (illustrative until the library's specification arrives).
LICENSE_STATES: dict[str, LicenseStatus] = {
    "1": LicenseStatus.VALID,  # 有效
    "2": LicenseStatus.REVOKED,  # 已注销
    "3": LicenseStatus.EXPIRED,  # 已过期
}


class HttpElicenseStore(HttpAdapter, ElicenseStore):
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
        body = await self._request(
            "store_license",
            "POST",
            "/v1/licenses",
            json_body={
                "license_type": license_type,
                "number": number,
                "holder_ref": holder_ref,
                "issued_at": issued_at.isoformat(),
                "valid_until": valid_until.isoformat() if valid_until else None,
                "pdf_sha256": pdf_sha256,
                "pdf_base64": base64.b64encode(pdf_bytes).decode("ascii"),
            },
            idempotency_key=idempotency_key,
        )
        with self._parsing("store_license"):
            return StoredLicense(license_id=str(body["license_id"]))

    async def _get_license(self, license_id: str) -> LicenseRecord:
        body = await self._request(
            "get_license", "GET", f"/v1/licenses/{quote(license_id, safe='')}", idempotent=True
        )
        with self._parsing("get_license"):
            return LicenseRecord(
                license_id=str(body["license_id"]),
                license_type=str(body["license_type"]),
                number=str(body["number"]),
                holder_ref=str(body["holder_ref"]),
                issued_at=datetime.fromisoformat(body["issued_at"]),
                valid_until=date.fromisoformat(body["valid_until"]) if body.get("valid_until") else None,
                pdf_sha256=str(body["pdf_sha256"]),
                status=LICENSE_STATES[str(body["status_code"])],
                revoked_reason=body.get("revoked_reason"),
            )

    async def _revoke_license(self, idempotency_key: str, license_id: str, reason: str) -> None:
        await self._request(
            "revoke_license",
            "POST",
            f"/v1/licenses/{quote(license_id, safe='')}/revoke",
            json_body={"reason": reason},
            idempotency_key=idempotency_key,
        )
