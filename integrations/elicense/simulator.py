"""Electronic licence library simulator: checks the PDF digest, keeps licences in memory."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import date
from typing import Any

from aiohttp import web

from integrations.elicense.base import ALREADY_REVOKED, DIGEST_MISMATCH, LICENSE_EXISTS, LICENSE_NOT_FOUND
from integrations.simulator import Reply, SimRejection, Simulator, json_object, parse_aware_datetime, required


class ElicenseSimulator(Simulator):
    name = "elicense"

    def __init__(self, **kwargs: Any) -> None:
        self.licenses: dict[str, dict[str, Any]] = {}
        self.pdfs: dict[str, bytes] = {}
        super().__init__(**kwargs)

    def _reset_effects(self) -> None:
        self.licenses.clear()
        self.pdfs.clear()

    def _extra_state(self) -> dict[str, Any]:
        return {"licenses": len(self.licenses)}

    def _setup_routes(self) -> None:
        self.route("POST", "/v1/licenses", "store_license", self._store, effectful=True)
        self.route("GET", "/v1/licenses/{license_id}", "get_license", self._get, effectful=False)
        self.route("POST", "/v1/licenses/{license_id}/revoke", "revoke_license", self._revoke, effectful=True)

    async def _store(self, request: web.Request) -> Reply:
        body = await json_object(request)
        license_type, number = required(body, "license_type"), required(body, "number")
        holder, digest = required(body, "holder_ref"), required(body, "pdf_sha256")
        issued_at = parse_aware_datetime(required(body, "issued_at"), "issued_at")
        valid_until = body.get("valid_until")
        try:
            pdf = base64.b64decode(required(body, "pdf_base64"), validate=True)
            if valid_until is not None:
                date.fromisoformat(valid_until)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise SimRejection(400, "BAD_REQUEST", "pdf_base64 or valid_until is malformed") from exc
        if hashlib.sha256(pdf).hexdigest() != digest.lower():
            raise SimRejection(422, DIGEST_MISMATCH, "pdf_sha256 does not match the PDF")
        if any(
            lic["license_type"] == license_type and lic["number"] == number for lic in self.licenses.values()
        ):
            raise SimRejection(409, LICENSE_EXISTS, "a licence of this type and number is already filed")
        license_id = f"EL{len(self.licenses) + 1:010d}"
        self.licenses[license_id] = {
            "license_id": license_id,
            "license_type": license_type,
            "number": number,
            "holder_ref": holder,
            "issued_at": issued_at.isoformat(),
            "valid_until": valid_until,
            "pdf_sha256": digest.lower(),
            "status_code": "1",
            "revoked_reason": None,
        }
        self.pdfs[license_id] = pdf
        return Reply(201, {"license_id": license_id})

    def _license(self, request: web.Request) -> dict[str, Any]:
        found = self.licenses.get(request.match_info["license_id"])
        if found is None:
            raise SimRejection(404, LICENSE_NOT_FOUND, "no such licence")
        return found

    async def _get(self, request: web.Request) -> Reply:
        found = dict(self._license(request))
        if (
            found["status_code"] == "1"
            and found["valid_until"]
            and date.fromisoformat(found["valid_until"]) < self.clock().date()
        ):
            found["status_code"] = "3"
        return Reply(200, found)

    async def _revoke(self, request: web.Request) -> Reply:
        found = self._license(request)
        reason = required(await json_object(request), "reason")
        if found["status_code"] == "2":
            raise SimRejection(409, ALREADY_REVOKED, "the licence is already revoked")
        found["status_code"] = "2"
        found["revoked_reason"] = reason
        return Reply(200, {"license_id": found["license_id"], "status_code": "2"})
