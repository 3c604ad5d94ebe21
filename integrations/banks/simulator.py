"""A bank's callback receiver: verifies the signature, records every delivery, dedupes by key.

Serves `POST /<bank code>/callback` for each configured bank; lists what it received at
`GET /_sim/callbacks?bank=<code>` (newest last) and through `sim.received(bank_code)`.
Filing references listed in `sim.unknown_filings` are answered with business code 1001.

A bank that signed up for `signed-json-v2` checks the timestamp too: a callback signed more than
`window_s` from the simulator's clock is refused (401 STALE_TIMESTAMP), as a real bank refuses a
replay. A bank registered with us at run time is added here with `add_bank` (or
`POST /_sim/banks`), as the real bank would configure the secret agreed with us.

Each bank checks the one MAC it is configured for (`callback_mac`, else the simulator's
`default_mac`, the cryptography profile's when the composition root passes it): HMAC-SHA256 or
HMAC-SM3 (integrations/banks/http.py). A callback signed with another is refused, 401 WRONG_MAC.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from integrations.banks.base import HMAC_SHA256, SIGNATURE_HEADER, TIMESTAMP_HEADER
from integrations.banks.config import BankConfig
from integrations.banks.http import MACS, REPLAY_WINDOW_S, verify_v1, verify_v2
from integrations.simulator import Reply, SimRejection, Simulator


class BankCallbackSimulator(Simulator):
    name = "banks"

    def __init__(
        self, banks: Iterable[BankConfig] = (), *, default_mac: str = HMAC_SHA256, **kwargs: Any
    ) -> None:
        banks = list(banks)
        self.default_mac = default_mac
        self.secrets = {bank.code: bank.callback_secret for bank in banks}
        self.versions = {bank.code: bank.adapter for bank in banks}
        self.macs = {bank.code: bank.callback_mac or default_mac for bank in banks}
        self.window_s: float = REPLAY_WINDOW_S
        self.deliveries: list[dict[str, Any]] = []
        self.unknown_filings: set[str] = set()
        super().__init__(**kwargs)

    def add_bank(
        self, code: str, secret: str, adapter: str = "signed-json-v2", mac: str | None = None
    ) -> None:
        if mac is not None and mac not in MACS:
            raise ValueError(f"unknown callback MAC {mac!r}")
        self.secrets[code] = secret
        self.versions[code] = adapter
        self.macs[code] = mac or self.default_mac

    def _reset_effects(self) -> None:
        self.deliveries.clear()

    def _extra_state(self) -> dict[str, Any]:
        return {"deliveries": len(self.deliveries)}

    def received(self, bank_code: str | None = None, *, valid_only: bool = True) -> list[dict[str, Any]]:
        return [
            d
            for d in self.deliveries
            if (bank_code is None or d["bank_code"] == bank_code) and (d["signature_valid"] or not valid_only)
        ]

    def _setup_routes(self) -> None:
        self.route("POST", "/{bank}/callback", "receive_callback", self._receive, effectful=True)
        self.app.router.add_get("/_sim/callbacks", self._admin_callbacks)
        self.app.router.add_post("/_sim/banks", self._admin_add_bank)

    async def _receive(self, request: web.Request) -> Reply:
        bank = request.match_info["bank"]
        secret = self.secrets.get(bank)
        if secret is None:
            raise SimRejection(404, "UNKNOWN_BANK", f"no bank {bank} here")
        raw = await request.read()
        mac = self.macs.get(bank, self.default_mac)
        if self.versions.get(bank) == "signed-json-v2":
            refusal = verify_v2(
                secret,
                raw,
                timestamp=request.headers.get(TIMESTAMP_HEADER),
                signature=request.headers.get(SIGNATURE_HEADER),
                now=self.clock().timestamp(),
                window_s=self.window_s,
                mac=mac,
            )
        else:
            refusal = verify_v1(secret, raw, request.headers.get(SIGNATURE_HEADER), mac)
        valid = refusal is None
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        self.deliveries.append(
            {
                "bank_code": bank,
                "signature_valid": valid,
                "refusal": refusal,
                "mac": mac,
                "idempotency_key": request.headers.get("Idempotency-Key"),
                "payload": payload,
                "received_at": self.clock().isoformat(),
            }
        )
        if refusal is not None:
            raise SimRejection(
                401, refusal, f"signature is not this bank's {mac} of the body, or is not fresh"
            )
        if not isinstance(payload, dict):
            raise SimRejection(400, "BAD_REQUEST", "body is not a JSON object")
        if payload.get("filing_ref") in self.unknown_filings:
            return Reply(200, {"code": "1001", "message": "未找到该抵押备案"})
        receipt_no = f"{bank.upper()}-{len(self.deliveries):08d}"
        return Reply(200, {"code": "0000", "message": "成功", "receipt_no": receipt_no})

    async def _admin_callbacks(self, request: web.Request) -> web.Response:
        bank = request.query.get("bank")
        return Reply(200, self.received(bank, valid_only=False)).to_response()

    async def _admin_add_bank(self, request: web.Request) -> web.Response:
        body = await request.json()
        mac = body.get("mac")
        self.add_bank(
            str(body["code"]),
            str(body["secret"]),
            str(body.get("adapter", "signed-json-v2")),
            str(mac) if mac is not None else None,
        )
        return Reply(200, {"code": "0000"}).to_response()
