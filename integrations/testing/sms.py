"""In-memory SMS gateway: the simulator's templates and number check; every message kept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integrations.sms.base import (
    API_KEY_INVALID,
    PHONE_INVALID,
    TEMPLATE_PARAMS_MISSING,
    TEMPLATE_UNKNOWN,
    SmsGateway,
    SmsReceipt,
)
from integrations.sms.simulator import MOBILE_NUMBER, TEMPLATES_FILE, load_templates, placeholders
from integrations.testing.fake import FakeSystem


@dataclass(frozen=True)
class SentSms:
    message_id: str
    phone: str
    template: str
    params: dict[str, str]
    text: str


class FakeSms(FakeSystem, SmsGateway):
    def __init__(self, templates_file: Path = TEMPLATES_FILE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.signature, self.templates = load_templates(templates_file)
        self.api_key_valid = True  # False: every send is refused as with a wrong key
        self.messages: list[SentSms] = []

    def _reset_effects(self) -> None:
        self.messages.clear()

    def sent_to(self, phone: str | None = None) -> list[SentSms]:
        """Messages, newest first."""
        return [m for m in reversed(self.messages) if phone is None or m.phone == phone]

    async def _send(
        self, phone: str, template_code: str, params: dict[str, str], idempotency_key: str
    ) -> SmsReceipt:
        def apply() -> SmsReceipt:
            if not self.api_key_valid:
                raise self._refuse("send", 401, API_KEY_INVALID)
            self._require_text("send", phone, template_code)
            if not MOBILE_NUMBER.match(phone):
                raise self._refuse("send", 400, PHONE_INVALID)
            text = self.templates.get(template_code)
            if text is None:
                raise self._refuse("send", 400, TEMPLATE_UNKNOWN)
            if placeholders(text) - set(params):
                raise self._refuse("send", 400, TEMPLATE_PARAMS_MISSING)
            message_id = f"SM{len(self.messages) + 1:010d}"
            rendered = self.signature + text.format_map(params)
            self.messages.append(SentSms(message_id, phone, template_code, dict(params), rendered))
            return SmsReceipt(message_id=message_id)

        arguments = (phone, template_code, tuple(sorted(params.items())))
        return await self._effect("send", idempotency_key, arguments, apply)
