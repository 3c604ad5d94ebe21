"""Utilities simulator: serves many providers at once, each under the path prefix `/<provider name>`,
in both styles: the JSON API (`/<name>/v1/transfers`) and the staff portal (`/<name>/portal/tasks`).

A transfer starts submitted; `sim.set_transfer_status(ref, status)` moves it on as the provider's
clerks would (status values as in `TransferStatus`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from aiohttp import web

from integrations.simulator import Reply, SimRejection, Simulator, json_object, required
from integrations.utilities.base import INVALID_ACCOUNT, TRANSFER_NOT_FOUND, TransferStatus

ACCOUNT_NUMBER = re.compile(r"^\d{6,20}$")
_JSON_STATUS = {
    TransferStatus.SUBMITTED: "ACCEPTED",
    TransferStatus.IN_PROGRESS: "PROCESSING",
    TransferStatus.COMPLETED: "DONE",
    TransferStatus.REJECTED: "REJECTED",
}
_PORTAL_STATE = {
    TransferStatus.SUBMITTED: "待受理",
    TransferStatus.IN_PROGRESS: "处理中",
    TransferStatus.COMPLETED: "已办结",
    TransferStatus.REJECTED: "已退回",
}
_PORTAL_FIELDS = ("account_no", "old_holder", "new_holder", "unit_number", "address", "effective_date")


class UtilitiesSimulator(Simulator):
    name = "utilities"

    def __init__(self, providers: Iterable[str] | None = None, **kwargs: Any) -> None:
        """`providers`: the names served (None = any name)."""
        self.known = frozenset(providers) if providers is not None else None
        self.transfers: dict[str, dict[str, Any]] = {}
        super().__init__(**kwargs)

    def _reset_effects(self) -> None:
        self.transfers.clear()

    def _extra_state(self) -> dict[str, Any]:
        per_provider: dict[str, int] = {}
        for transfer in self.transfers.values():
            per_provider[transfer["provider"]] = per_provider.get(transfer["provider"], 0) + 1
        return {"transfers": per_provider}

    def transfers_of(self, provider: str) -> list[dict[str, Any]]:
        return [t for t in self.transfers.values() if t["provider"] == provider]

    def set_transfer_status(self, ref: str, status: TransferStatus | str) -> None:
        self.transfers[ref]["status"] = TransferStatus(status)

    def _setup_routes(self) -> None:
        self.route("POST", "/{provider}/v1/transfers", "transfer_account", self._api_transfer, effectful=True)
        self.route("GET", "/{provider}/v1/transfers/{ref}", "get_transfer", self._api_get, effectful=False)
        self.route("POST", "/{provider}/portal/tasks", "portal_file_task", self._portal_file, effectful=True)
        self.route(
            "GET", "/{provider}/portal/tasks/{ref}", "portal_get_task", self._portal_get, effectful=False
        )

    def _provider(self, request: web.Request, portal: bool) -> str:
        provider = request.match_info["provider"]
        if self.known is not None and provider not in self.known:
            raise _refusal(portal, 404, "E0404", "UNKNOWN_PROVIDER", f"no provider {provider} here")
        return provider

    def _create(self, provider: str, style: str, fields: dict[str, str], portal: bool) -> dict[str, Any]:
        if not ACCOUNT_NUMBER.match(fields["account_no"]):
            raise _refusal(portal, 422, "E1001", INVALID_ACCOUNT, "户号不存在或格式错误")
        try:
            date.fromisoformat(fields["effective_date"])
        except ValueError as exc:
            raise _refusal(portal, 400, "E1002", "BAD_REQUEST", "effective_date is not a date") from exc
        ref = f"{'RW' if portal else 'UT'}{len(self.transfers) + 1:08d}"
        self.transfers[ref] = {
            "ref": ref,
            "provider": provider,
            "style": style,
            "status": TransferStatus.SUBMITTED,
            **fields,
        }
        return self.transfers[ref]

    def _find(self, request: web.Request, provider: str, portal: bool) -> dict[str, Any]:
        transfer = self.transfers.get(request.match_info["ref"])
        if transfer is None or transfer["provider"] != provider:
            raise _refusal(portal, 404, "E1004", TRANSFER_NOT_FOUND, "工单不存在")
        return transfer

    async def _api_transfer(self, request: web.Request) -> Reply:
        provider = self._provider(request, portal=False)
        body = await json_object(request)
        fields = {
            "account_no": required(body, "account_no"),
            "old_holder": required(body, "from_holder_ref"),
            "new_holder": required(body, "to_holder_ref"),
            "unit_number": required(body, "unit_number"),
            "address": required(body, "address"),
            "effective_date": required(body, "effective_date"),
        }
        transfer = self._create(provider, "http-json-v1", fields, portal=False)
        return Reply(201, {"transfer_id": transfer["ref"], "status": _JSON_STATUS[transfer["status"]]})

    async def _api_get(self, request: web.Request) -> Reply:
        transfer = self._find(request, self._provider(request, portal=False), portal=False)
        return Reply(200, {"transfer_id": transfer["ref"], "status": _JSON_STATUS[transfer["status"]]})

    async def _portal_file(self, request: web.Request) -> Reply:
        provider = self._provider(request, portal=True)
        form = await request.post()
        fields = {name: str(form.get(name, "")).strip() for name in _PORTAL_FIELDS}
        missing = [name for name, value in fields.items() if not value]
        if form.get("task_type") != "account_transfer" or missing:
            raise _refusal(True, 400, "E1000", "BAD_REQUEST", f"表单不完整: {missing or 'task_type'}")
        fields["external_ref"] = str(form.get("external_ref", ""))
        transfer = self._create(provider, "staff-portal", fields, portal=True)
        return Reply(201, {"task_no": transfer["ref"], "state": _PORTAL_STATE[transfer["status"]]})

    async def _portal_get(self, request: web.Request) -> Reply:
        transfer = self._find(request, self._provider(request, portal=True), portal=True)
        return Reply(200, {"task_no": transfer["ref"], "state": _PORTAL_STATE[transfer["status"]]})


def _refusal(portal: bool, status: int, errcode: str, code: str, message: str) -> SimRejection:
    rejection = SimRejection(status, code, message)
    if portal:
        rejection.reply = Reply(status, {"errcode": errcode, "errmsg": message})
    return rejection
