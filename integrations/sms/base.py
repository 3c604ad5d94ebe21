"""Contract of the SMS gateway."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from integrations.base import ExternalSystem, mask_phone

# Remote refusal codes (RequestRejected.code) that callers may act on.
PHONE_INVALID = "PHONE_INVALID"
TEMPLATE_UNKNOWN = "TEMPLATE_UNKNOWN"
TEMPLATE_PARAMS_MISSING = "TEMPLATE_PARAMS_MISSING"
RATE_LIMITED = "RATE_LIMITED"
API_KEY_INVALID = "API_KEY_INVALID"


@dataclass(frozen=True)
class SmsReceipt:
    message_id: str


class SmsGateway(ExternalSystem):
    system = "sms"

    async def send(
        self, phone: str, template_code: str, params: Mapping[str, str], idempotency_key: str
    ) -> SmsReceipt:
        """Params are never logged: they hold sign-in codes."""
        return await self._call(
            "send",
            lambda: self._send(phone, template_code, {k: str(v) for k, v in params.items()}, idempotency_key),
            phone=mask_phone(phone),
            template=template_code,
        )

    @abstractmethod
    async def _send(
        self, phone: str, template_code: str, params: dict[str, str], idempotency_key: str
    ) -> SmsReceipt: ...
