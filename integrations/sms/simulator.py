"""SMS gateway simulator: checks the API key, renders the template, keeps every message.

`GET /messages?phone=13800000000` lists what was sent (newest first), so a person trying the demo
can read their sign-in code there.
"""

from __future__ import annotations

import re
import string
import tomllib
from pathlib import Path
from typing import Any

from aiohttp import web

from integrations.simulator import Reply, SimRejection, Simulator, json_object, required

TEMPLATES_FILE = Path(__file__).with_name("templates.toml")
MOBILE_NUMBER = re.compile(r"^1[3-9]\d{9}$")


def load_templates(path: Path = TEMPLATES_FILE) -> tuple[str, dict[str, str]]:
    """(signature, template code -> text)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return str(data.get("signature", "")), {code: str(t["text"]) for code, t in data["templates"].items()}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


class SmsGatewaySimulator(Simulator):
    name = "sms"

    def __init__(
        self, api_key: str = "sim-sms-key", templates_file: Path = TEMPLATES_FILE, **kwargs: Any
    ) -> None:
        self.api_key = api_key
        self.signature, self.templates = load_templates(templates_file)
        self.messages: list[dict[str, Any]] = []
        super().__init__(**kwargs)

    def _reset_effects(self) -> None:
        self.messages.clear()

    def _extra_state(self) -> dict[str, Any]:
        return {"messages": len(self.messages)}

    def sent_to(self, phone: str | None = None) -> list[dict[str, Any]]:
        """Messages, newest first."""
        return [m for m in reversed(self.messages) if phone is None or m["phone"] == phone]

    def _setup_routes(self) -> None:
        self.route("POST", "/v1/messages", "send", self._send, effectful=True)
        self.app.router.add_get("/messages", self._list)

    async def _send(self, request: web.Request) -> Reply:
        if request.headers.get("X-Api-Key") != self.api_key:
            raise SimRejection(401, "isv.INVALID_API_KEY", "API key missing or wrong")
        body = await json_object(request)
        phone, template = required(body, "phone"), required(body, "template_code")
        params = body.get("params") or {}
        if not MOBILE_NUMBER.match(phone):
            raise SimRejection(400, "isv.MOBILE_NUMBER_ILLEGAL", "not a mainland mobile number")
        text = self.templates.get(template)
        if text is None:
            raise SimRejection(400, "isv.SMS_TEMPLATE_ILLEGAL", f"no template {template}")
        if not isinstance(params, dict) or placeholders(text) - set(params):
            raise SimRejection(400, "isv.TEMPLATE_MISSING_PARAMETERS", "template parameters are missing")
        message_id = f"SM{len(self.messages) + 1:010d}"
        self.messages.append(
            {
                "message_id": message_id,
                "phone": phone,
                "template": template,
                "params": {k: str(v) for k, v in params.items()},
                "text": self.signature + text.format_map({k: str(v) for k, v in params.items()}),
                "sent_at": self.clock().isoformat(),
            }
        )
        return Reply(200, {"code": "OK", "message": "OK", "message_id": message_id})

    async def _list(self, request: web.Request) -> web.Response:
        return Reply(200, self.sent_to(request.query.get("phone"))).to_response()
