"""Utility provider adapters. A provider's `adapter` in config/providers.toml picks one from ADAPTERS.

* "http-json-v1": providers with an API for account transfers (过户).
* "staff-portal": small providers without one; we file a task in their staff portal (a web
  application their clerks work from) and read its state back.

A provider configured with `dedupes = false` would apply a resent transfer twice, so its transfer
is sent once and never retried here (the key still travels, for the provider's records and ours);
reads are retried as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from integrations.base import IDEMPOTENCY_HEADER, HttpAdapter
from integrations.errors import RequestRejected
from integrations.utilities.base import (
    ACCOUNT_NOT_FOUND,
    ARREARS,
    INVALID_ACCOUNT,
    TRANSFER_NOT_FOUND,
    MeterReading,
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
    "E1003": ARREARS,  # 账户欠费，结清后方可过户
    "E1004": TRANSFER_NOT_FOUND,  # 工单不存在
    "E1005": ACCOUNT_NOT_FOUND,  # 该房屋无此户号
}
# Meter units as the portal writes them -> ours. Its reading times are local (Asia/Shanghai) and
# carry no offset: "2026-06-01 10:30:00".
PORTAL_METER_UNITS: dict[str, str] = {"立方米": "m3", "千瓦时": "kWh"}
PORTAL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
PORTAL_TIMEZONE = ZoneInfo("Asia/Shanghai")


def _json_transfer(body: Mapping[str, Any]) -> UtilityTransfer:
    reading = body.get("final_reading")
    return UtilityTransfer(
        ref=str(body["transfer_id"]),
        status=JSON_API_STATUSES[body["status"]],
        reason=str(body["reason"]) if body.get("reason") else None,
        final_reading=MeterReading(
            value=str(reading["value"]), unit=str(reading["unit"]), read_at=_aware(reading["read_at"])
        )
        if reading
        else None,
    )


def _portal_task(body: Mapping[str, Any]) -> UtilityTransfer:
    reading = body.get("meter_reading")
    return UtilityTransfer(
        ref=str(body["task_no"]),
        status=PORTAL_STATES[body["state"]],
        reason=str(body["remark"]) if body.get("remark") else None,
        final_reading=MeterReading(
            value=str(reading),
            unit=PORTAL_METER_UNITS[body["meter_unit"]],
            read_at=datetime.strptime(body["read_time"], PORTAL_TIME_FORMAT).replace(tzinfo=PORTAL_TIMEZONE),
        )
        if reading
        else None,
    )


def _aware(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return parsed


class _TransferSending(HttpAdapter, UtilityProvider):
    """What both styles share: how a transfer is sent, given whether the provider dedupes."""

    async def _send_transfer(
        self, path: str, idempotency_key: str, *, json_body: Any = None, form: Mapping[str, str] | None = None
    ) -> Any:
        if self.dedupes:
            return await self._request(
                "transfer_account",
                "POST",
                path,
                json_body=json_body,
                form=form,
                idempotency_key=idempotency_key,
            )
        # Not `idempotency_key=`: that would let HttpAdapter retry, and this provider applies a retry again.
        return await self._request(
            "transfer_account",
            "POST",
            path,
            json_body=json_body,
            form=form,
            headers={IDEMPOTENCY_HEADER: idempotency_key},
        )

    async def _read_or_none(self, operation: str, path: str, missing: str) -> Any:
        """GET `path`; None when the provider refuses with the code `missing` (our code)."""
        try:
            return await self._request(operation, "GET", path, idempotent=True)
        except RequestRejected as refusal:
            if refusal.code == missing:
                return None
            raise


class JsonApiProvider(_TransferSending):
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
        body = await self._send_transfer(
            "/v1/transfers",
            idempotency_key,
            json_body={
                "account_no": account_no,
                "from_holder_ref": from_holder_ref,
                "to_holder_ref": to_holder_ref,
                "unit_number": unit_number,
                "address": address,
                "effective_date": effective_date.isoformat(),
            },
        )
        with self._parsing("transfer_account"):
            return _json_transfer(body)

    async def _get_transfer(self, ref: str) -> UtilityTransfer:
        body = await self._request(
            "get_transfer", "GET", f"/v1/transfers/{quote(ref, safe='')}", idempotent=True
        )
        with self._parsing("get_transfer"):
            return _json_transfer(body)

    async def _lookup_account(self, unit_number: str) -> str | None:
        path = "/v1/accounts?" + urlencode({"unit_number": unit_number})
        body = await self._read_or_none("lookup_account", path, ACCOUNT_NOT_FOUND)
        with self._parsing("lookup_account"):
            return str(body["account_no"]) if body is not None else None

    async def _find_transfer(self, idempotency_key: str) -> UtilityTransfer | None:
        path = "/v1/transfers?" + urlencode({"idempotency_key": idempotency_key})
        body = await self._read_or_none("find_transfer", path, TRANSFER_NOT_FOUND)
        with self._parsing("find_transfer"):
            return _json_transfer(body) if body is not None else None


class StaffPortalProvider(_TransferSending):
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
        body = await self._send_transfer(
            "/portal/tasks",
            idempotency_key,
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
        )
        with self._parsing("transfer_account"):
            return _portal_task(body)

    async def _get_transfer(self, ref: str) -> UtilityTransfer:
        body = await self._request(
            "get_transfer", "GET", f"/portal/tasks/{quote(ref, safe='')}", idempotent=True
        )
        with self._parsing("get_transfer"):
            return _portal_task(body)

    async def _lookup_account(self, unit_number: str) -> str | None:
        path = "/portal/accounts?" + urlencode({"unit_number": unit_number})
        body = await self._read_or_none("lookup_account", path, ACCOUNT_NOT_FOUND)
        with self._parsing("lookup_account"):
            return str(body["account_no"]) if body is not None else None

    async def _find_transfer(self, idempotency_key: str) -> UtilityTransfer | None:
        """The portal lists every task filed under an external reference, oldest first; a portal
        that does not deduplicate may hold several, and the first is the one that counts."""
        path = "/portal/tasks?" + urlencode({"external_ref": idempotency_key})
        body = await self._request("find_transfer", "GET", path, idempotent=True)
        with self._parsing("find_transfer"):
            rows = body["rows"]
            return _portal_task(rows[0]) if rows else None

    def _error_fields(self, body: Any) -> tuple[str | None, str | None]:
        if isinstance(body, dict) and "errcode" in body:
            errcode = str(body["errcode"])
            return PORTAL_ERRORS.get(errcode, errcode), str(body.get("errmsg", ""))
        return super()._error_fields(body)


ADAPTERS: dict[str, type[JsonApiProvider] | type[StaffPortalProvider]] = {
    "http-json-v1": JsonApiProvider,
    "staff-portal": StaffPortalProvider,
}
