"""Utility provider adapters. A provider's `adapter` in config/providers.toml picks one from ADAPTERS.

* "http-json-v1": providers with an API for account transfers (过户).
* "staff-portal": small providers without one; we file a task in their staff portal (a web
  application their clerks work from) and read its state back.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

from integrations.base import HttpAdapter
from integrations.utilities.base import (
    INVALID_ACCOUNT,
    TRANSFER_NOT_FOUND,
    TransferStatus,
    UtilityProvider,
    UtilityTransfer,
)

# Transfer statuses of the providers' JSON API. Source: the shared utility-transfer interface the
# simulator implements (illustrative until a provider's specification arrives).
JSON_API_STATUSES: dict[str, TransferStatus] = {
    "ACCEPTED": TransferStatus.SUBMITTED,
    "PROCESSING": TransferStatus.IN_PROGRESS,
    "DONE": TransferStatus.COMPLETED,
    "REJECTED": TransferStatus.REJECTED,
}

# Task states shown by the staff portal (工单状态). Source: as above, the portal the simulator
# implements. Its errors come as {"errcode", "errmsg"}.
PORTAL_STATES: dict[str, TransferStatus] = {
    "待受理": TransferStatus.SUBMITTED,
    "处理中": TransferStatus.IN_PROGRESS,
    "已办结": TransferStatus.COMPLETED,
    "已退回": TransferStatus.REJECTED,
}
PORTAL_TASK_TYPE = "account_transfer"
# Portal error numbers -> our refusal codes; unknown numbers pass through as they are.
PORTAL_ERRORS: dict[str, str] = {
    "E1001": INVALID_ACCOUNT,  # 户号不存在或格式错误
    "E1004": TRANSFER_NOT_FOUND,  # 工单不存在
}


class JsonApiProvider(HttpAdapter, UtilityProvider):
    async def _transfer_account(
        self,
        idempotency_key: str,
        account_no: str,
        from_holder_ref: str,
        to_holder_ref: str,
        unit_number: str,
        address: str,
        effective_date: date,
    ) -> UtilityTransfer:
        body = await self._request(
            "transfer_account",
            "POST",
            "/v1/transfers",
            json_body={
                "account_no": account_no,
                "from_holder_ref": from_holder_ref,
                "to_holder_ref": to_holder_ref,
                "unit_number": unit_number,
                "address": address,
                "effective_date": effective_date.isoformat(),
            },
            idempotency_key=idempotency_key,
        )
        with self._parsing("transfer_account"):
            return UtilityTransfer(ref=str(body["transfer_id"]), status=JSON_API_STATUSES[body["status"]])

    async def _get_transfer(self, ref: str) -> UtilityTransfer:
        body = await self._request(
            "get_transfer", "GET", f"/v1/transfers/{quote(ref, safe='')}", idempotent=True
        )
        with self._parsing("get_transfer"):
            return UtilityTransfer(ref=str(body["transfer_id"]), status=JSON_API_STATUSES[body["status"]])


class StaffPortalProvider(HttpAdapter, UtilityProvider):
    """Files a form to the portal; the idempotency key doubles as our external reference (外部单号)."""

    async def _transfer_account(
        self,
        idempotency_key: str,
        account_no: str,
        from_holder_ref: str,
        to_holder_ref: str,
        unit_number: str,
        address: str,
        effective_date: date,
    ) -> UtilityTransfer:
        body = await self._request(
            "transfer_account",
            "POST",
            "/portal/tasks",
            form={
                "task_type": PORTAL_TASK_TYPE,
                "external_ref": idempotency_key,
                "account_no": account_no,
                "old_holder": from_holder_ref,
                "new_holder": to_holder_ref,
                "unit_number": unit_number,
                "address": address,
                "effective_date": effective_date.isoformat(),
            },
            idempotency_key=idempotency_key,
        )
        with self._parsing("transfer_account"):
            return UtilityTransfer(ref=str(body["task_no"]), status=PORTAL_STATES[body["state"]])

    async def _get_transfer(self, ref: str) -> UtilityTransfer:
        body = await self._request(
            "get_transfer", "GET", f"/portal/tasks/{quote(ref, safe='')}", idempotent=True
        )
        with self._parsing("get_transfer"):
            return UtilityTransfer(ref=str(body["task_no"]), status=PORTAL_STATES[body["state"]])

    def _error_fields(self, body: Any) -> tuple[str | None, str | None]:
        if isinstance(body, dict) and "errcode" in body:
            errcode = str(body["errcode"])
            return PORTAL_ERRORS.get(errcode, errcode), str(body.get("errmsg", ""))
        return super()._error_fields(body)


ADAPTERS: dict[str, type[JsonApiProvider] | type[StaffPortalProvider]] = {
    "http-json-v1": JsonApiProvider,
    "staff-portal": StaffPortalProvider,
}
