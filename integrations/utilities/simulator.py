"""Utilities simulator: serves many providers at once, each under the path prefix `/<provider name>`,
in both styles: the JSON API (`/<name>/v1/...`) and the staff portal (`/<name>/portal/...`).

What it models, so the demo and the tests meet the cases the real providers present:

* accounts: every unit has an account at every provider, numbered `account_number(provider, unit)`
  (10 digits, stable across runs), so a look-up always works in the demo;
  `sim.remove_account(provider, unit)` makes that look-up 404, `sim.set_arrears(provider, account,
  fen)` makes a transfer of that account refused with ARREARS (422, nothing applied);
* deduplication: a provider named in `non_deduping` files every request it receives (the
  framework's `_dedupes` hook), as a staff portal that never checks the external reference would;
  `sim.applied_by_key()` (and `sim.applied(key=K)`) then show a resent key applied twice;
* status by our key: every transfer records the key it came with (the Idempotency-Key header for
  the API, the form's `external_ref` for the portal), and can be found by it;
* progress: a transfer completes `processing_s` after it was created (0: already in the answer to
  the POST); every answer computes the status from the clock. A completed transfer carries the final
  meter reading (`meter_value(provider, ref)`, m3 for water and gas, kWh for electricity, none for
  cable TV) read at completion. `sim.set_transfer_status(ref, status)` overrides, as a clerk would.

`reset()` forgets transfers, removed accounts and arrears, besides the framework's faults and keys.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from integrations.simulator import IDEMPOTENCY_HEADER, Reply, SimRejection, Simulator, json_object, required
from integrations.utilities.base import (
    ACCOUNT_NOT_FOUND,
    ARREARS,
    INVALID_ACCOUNT,
    TRANSFER_NOT_FOUND,
    TransferStatus,
    UtilityKind,
)

ACCOUNT_NUMBER = re.compile(r"^\d{6,20}$")
# The meter a kind of provider reads at hand-over; cable TV has none.
METER_UNITS: dict[UtilityKind, str] = {
    UtilityKind.WATER: "m3",
    UtilityKind.GAS: "m3",
    UtilityKind.ELECTRICITY: "kWh",
}
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
_PORTAL_UNITS = {"m3": "立方米", "kWh": "千瓦时"}
_PORTAL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # local time, no offset, as the portal shows it
_PORTAL_TIMEZONE = ZoneInfo("Asia/Shanghai")
_PORTAL_FIELDS = ("account_no", "old_holder", "new_holder", "unit_number", "address", "effective_date")
DEFAULT_REJECTION_REASON = "资料不全，请补正后重新提交"


def account_number(provider: str, unit_number: str) -> str:
    """The simulated account of a unit at a provider: 10 digits from a SHA-256, stable across runs."""
    digest = hashlib.sha256(f"{provider}\n{unit_number}".encode()).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**10:010d}"


def meter_value(provider: str, ref: str) -> str:
    """A deterministic final reading with one decimal, e.g. "48213.7"."""
    digest = hashlib.sha256(f"{provider}\n{ref}".encode()).digest()
    return str(Decimal(int.from_bytes(digest[:4], "big") % 1_000_000) / 10)


def kind_of(provider: str) -> UtilityKind | None:
    """Provider names start with their kind (`water.pudong`); None for a name that does not."""
    try:
        return UtilityKind(provider.split(".", 1)[0])
    except ValueError:
        return None


class UtilitiesSimulator(Simulator):
    name = "utilities"

    def __init__(
        self,
        providers: Iterable[str] | None = None,
        *,
        non_deduping: Iterable[str] = (),
        processing_s: float = 0.0,
        **kwargs: Any,
    ) -> None:
        """`providers`: the names served (None = any name); `non_deduping`: those that apply every
        request; `kwargs`: the framework's `clock` and `seed`."""
        if processing_s < 0:
            raise ValueError("processing_s must not be negative")
        self.known = frozenset(providers) if providers is not None else None
        self.non_deduping = frozenset(non_deduping)
        self.processing_s = processing_s
        self.transfers: dict[str, dict[str, Any]] = {}
        self.removed_accounts: set[tuple[str, str]] = set()
        self.arrears: dict[tuple[str, str], int] = {}  # (provider, account_no) -> fen owed
        super().__init__(**kwargs)

    # --- Python API for tests -------------------------------------------------------------------

    def _reset_effects(self) -> None:
        self.transfers.clear()
        self.removed_accounts.clear()
        self.arrears.clear()

    def _extra_state(self) -> dict[str, Any]:
        return {
            "transfers": dict(Counter(t["provider"] for t in self.transfers.values())),
            "non_deduping": sorted(self.non_deduping),
            "processing_s": self.processing_s,
            "removed_accounts": len(self.removed_accounts),
            "arrears": len(self.arrears),
        }

    def transfers_of(self, provider: str) -> list[dict[str, Any]]:
        return [t for t in self.transfers.values() if t["provider"] == provider]

    def applied_by_key(self, provider: str | None = None) -> dict[str, int]:
        """Our key -> how many transfers it created (at `provider`, or anywhere): 1 is exactly once."""
        return dict(
            Counter(
                t["idempotency_key"]
                for t in self.transfers.values()
                if t["idempotency_key"] and provider in (None, t["provider"])
            )
        )

    def set_transfer_status(
        self, ref: str, status: TransferStatus | str, *, reason: str | None = None
    ) -> None:
        """Move a transfer on as the provider's clerks would; this wins over `processing_s`."""
        transfer = self.transfers[ref]
        transfer["status_set"] = TransferStatus(status)
        transfer["status_set_at"] = self.clock()
        rejected = transfer["status_set"] is TransferStatus.REJECTED
        transfer["reason"] = (reason or DEFAULT_REJECTION_REASON) if rejected else reason

    def status_of(self, ref: str) -> TransferStatus:
        return self._progress(self.transfers[ref])[0]

    def remove_account(self, provider: str, unit_number: str) -> None:
        """The unit has no account at this provider any more: a look-up answers 404."""
        self.removed_accounts.add((provider, unit_number))

    def set_arrears(self, provider: str, account_no: str, amount_fen: int) -> None:
        """Bills unpaid on the account: its transfers are refused (ARREARS). 0 settles them."""
        if amount_fen > 0:
            self.arrears[(provider, account_no)] = amount_fen
        else:
            self.arrears.pop((provider, account_no), None)

    # --- routes ---------------------------------------------------------------------------------

    def _setup_routes(self) -> None:
        self.route("POST", "/{provider}/v1/transfers", "transfer_account", self._api_transfer, effectful=True)
        self.route("GET", "/{provider}/v1/transfers", "find_transfer", self._api_find, effectful=False)
        self.route("GET", "/{provider}/v1/transfers/{ref}", "get_transfer", self._api_get, effectful=False)
        self.route("GET", "/{provider}/v1/accounts", "lookup_account", self._api_account, effectful=False)
        self.route("POST", "/{provider}/portal/tasks", "portal_file_task", self._portal_file, effectful=True)
        self.route("GET", "/{provider}/portal/tasks", "portal_find_tasks", self._portal_find, effectful=False)
        self.route(
            "GET", "/{provider}/portal/tasks/{ref}", "portal_get_task", self._portal_get, effectful=False
        )
        self.route(
            "GET",
            "/{provider}/portal/accounts",
            "portal_lookup_account",
            self._portal_account,
            effectful=False,
        )

    def _dedupes(self, request: web.Request) -> bool:
        return request.match_info.get("provider") not in self.non_deduping

    # --- the model --------------------------------------------------------------------------------

    def _provider(self, request: web.Request, portal: bool) -> str:
        provider = request.match_info["provider"]
        if self.known is not None and provider not in self.known:
            raise _refusal(portal, 404, "E0404", "UNKNOWN_PROVIDER", f"no provider {provider} here")
        return provider

    def _create(
        self, provider: str, style: str, key: str, fields: dict[str, str], portal: bool
    ) -> dict[str, Any]:
        if not ACCOUNT_NUMBER.match(fields["account_no"]):
            raise _refusal(portal, 422, "E1001", INVALID_ACCOUNT, "户号不存在或格式错误")
        try:
            date.fromisoformat(fields["effective_date"])
        except ValueError as exc:
            raise _refusal(portal, 400, "E1002", "BAD_REQUEST", "effective_date is not a date") from exc
        owed = self.arrears.get((provider, fields["account_no"]))
        if owed is not None:
            yuan = Decimal(owed) / 100
            raise _refusal(portal, 422, "E1003", ARREARS, f"账户欠费 {yuan:.2f} 元，结清后方可过户")
        ref = f"{'RW' if portal else 'UT'}{len(self.transfers) + 1:08d}"
        self.transfers[ref] = {
            "ref": ref,
            "provider": provider,
            "style": style,
            "idempotency_key": key,
            "created_at": self.clock(),
            "status_set": None,
            "status_set_at": None,
            "reason": None,
            **fields,
        }
        return self.transfers[ref]

    def _progress(self, transfer: dict[str, Any]) -> tuple[TransferStatus, datetime | None]:
        """The status now, and when it was completed (None unless COMPLETED)."""
        status: TransferStatus | None = transfer["status_set"]
        if status is not None:
            return status, transfer["status_set_at"] if status is TransferStatus.COMPLETED else None
        done_at: datetime = transfer["created_at"] + timedelta(seconds=self.processing_s)
        if self.clock() >= done_at:
            return TransferStatus.COMPLETED, done_at
        return TransferStatus.SUBMITTED, None

    def _reading(self, transfer: dict[str, Any]) -> tuple[str, str, datetime] | None:
        status, completed_at = self._progress(transfer)
        kind = kind_of(transfer["provider"])
        unit = METER_UNITS.get(kind) if kind is not None else None
        if status is not TransferStatus.COMPLETED or unit is None or completed_at is None:
            return None
        return meter_value(transfer["provider"], transfer["ref"]), unit, completed_at

    def _find(self, request: web.Request, provider: str, portal: bool) -> dict[str, Any]:
        transfer = self.transfers.get(request.match_info["ref"])
        if transfer is None or transfer["provider"] != provider:
            raise _refusal(portal, 404, "E1004", TRANSFER_NOT_FOUND, "工单不存在")
        return transfer

    def _by_key(self, provider: str, key: str) -> list[dict[str, Any]]:
        """Transfers filed under our key, oldest first."""
        return [
            t for t in self.transfers.values() if t["provider"] == provider and t["idempotency_key"] == key
        ]

    def _account(self, request: web.Request, provider: str, portal: bool) -> str:
        unit_number = request.query.get("unit_number", "").strip()
        if not unit_number:
            raise _refusal(portal, 400, "E1000", "BAD_REQUEST", "unit_number is required")
        if (provider, unit_number) in self.removed_accounts:
            raise _refusal(portal, 404, "E1005", ACCOUNT_NOT_FOUND, "该房屋无此户号")
        return account_number(provider, unit_number)

    # --- the JSON API ---------------------------------------------------------------------------

    def _api_body(self, transfer: dict[str, Any]) -> dict[str, Any]:
        status, _ = self._progress(transfer)
        reading = self._reading(transfer)
        return {
            "transfer_id": transfer["ref"],
            "status": _JSON_STATUS[status],
            "reason": transfer["reason"] if status is TransferStatus.REJECTED else None,
            "final_reading": {"value": reading[0], "unit": reading[1], "read_at": reading[2].isoformat()}
            if reading is not None
            else None,
        }

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
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        transfer = self._create(provider, "http-json-v1", key, fields, portal=False)
        return Reply(201, self._api_body(transfer))

    async def _api_get(self, request: web.Request) -> Reply:
        transfer = self._find(request, self._provider(request, portal=False), portal=False)
        return Reply(200, self._api_body(transfer))

    async def _api_find(self, request: web.Request) -> Reply:
        provider = self._provider(request, portal=False)
        key = request.query.get("idempotency_key", "").strip()
        if not key:
            raise SimRejection(400, "BAD_REQUEST", "idempotency_key is required")
        found = self._by_key(provider, key)
        if not found:
            raise SimRejection(404, TRANSFER_NOT_FOUND, "no transfer for this idempotency key")
        return Reply(200, self._api_body(found[0]))

    async def _api_account(self, request: web.Request) -> Reply:
        provider = self._provider(request, portal=False)
        account_no = self._account(request, provider, portal=False)
        return Reply(200, {"account_no": account_no, "unit_number": request.query["unit_number"].strip()})

    # --- the staff portal -----------------------------------------------------------------------

    def _portal_body(self, transfer: dict[str, Any]) -> dict[str, Any]:
        status, _ = self._progress(transfer)
        reading = self._reading(transfer)
        return {
            "task_no": transfer["ref"],
            "external_ref": transfer["idempotency_key"],
            "state": _PORTAL_STATE[status],
            "remark": (transfer["reason"] or "") if status is TransferStatus.REJECTED else "",
            "meter_reading": reading[0] if reading else "",
            "meter_unit": _PORTAL_UNITS[reading[1]] if reading else "",
            "read_time": reading[2].astimezone(_PORTAL_TIMEZONE).strftime(_PORTAL_TIME_FORMAT)
            if reading
            else "",
        }

    async def _portal_file(self, request: web.Request) -> Reply:
        provider = self._provider(request, portal=True)
        form = await request.post()
        fields = {name: str(form.get(name, "")).strip() for name in _PORTAL_FIELDS}
        missing = [name for name, value in fields.items() if not value]
        if form.get("task_type") != "account_transfer" or missing:
            raise _refusal(True, 400, "E1000", "BAD_REQUEST", f"表单不完整: {missing or 'task_type'}")
        # The portal never checks external_ref for duplicates: a deduping one is deduplicated by
        # the framework on the Idempotency-Key header (our adapter sends the same value).
        key = str(form.get("external_ref", "")).strip()
        transfer = self._create(provider, "staff-portal", key, fields, portal=True)
        return Reply(201, self._portal_body(transfer))

    async def _portal_get(self, request: web.Request) -> Reply:
        transfer = self._find(request, self._provider(request, portal=True), portal=True)
        return Reply(200, self._portal_body(transfer))

    async def _portal_find(self, request: web.Request) -> Reply:
        provider = self._provider(request, portal=True)
        key = request.query.get("external_ref", "").strip()
        if not key:
            raise _refusal(True, 400, "E1000", "BAD_REQUEST", "external_ref is required")
        rows = [self._portal_body(t) for t in self._by_key(provider, key)]
        return Reply(200, {"total": len(rows), "rows": rows})

    async def _portal_account(self, request: web.Request) -> Reply:
        provider = self._provider(request, portal=True)
        return Reply(200, {"account_no": self._account(request, provider, portal=True)})


def _refusal(portal: bool, status: int, errcode: str, code: str, message: str) -> SimRejection:
    rejection = SimRejection(status, code, message)
    if portal:
        rejection.reply = Reply(status, {"errcode": errcode, "errmsg": message})
    return rejection
