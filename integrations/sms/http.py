"""SMS gateway SDK on httpx (`SmsGatewayClient`, adapter "http-json-v1").

httpx exceptions are mapped following httpx's own hierarchy: TimeoutException -> SystemTimeout;
UnsupportedProtocol and InvalidURL (a configuration mistake) -> AdapterNotConfigured; any other
TransportError -> SystemUnavailable; DecodingError and TooManyRedirects -> MalformedResponse.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from integrations.base import (
    IDEMPOTENCY_HEADER,
    RETRYABLE_4XX,
    IntegrationMetrics,
    RetryPolicy,
    run_with_retries,
)
from integrations.errors import (
    AdapterNotConfigured,
    MalformedResponse,
    RequestRejected,
    SystemTimeout,
    SystemUnavailable,
)
from integrations.sms.base import (
    API_KEY_INVALID,
    PHONE_INVALID,
    RATE_LIMITED,
    TEMPLATE_PARAMS_MISSING,
    TEMPLATE_UNKNOWN,
    SmsGateway,
    SmsReceipt,
)

API_KEY_HEADER = "X-Api-Key"

# Gateway response codes -> (our refusal code, retryable). Source: the gateway's interface, which
# uses response codes in the style of Alibaba Cloud SMS ("OK", "isv.*" for caller errors, "isp.*"
# for the gateway's own); the simulator implements the same table.
GATEWAY_CODES: dict[str, tuple[str | None, bool]] = {
    "OK": (None, False),
    "isv.MOBILE_NUMBER_ILLEGAL": (PHONE_INVALID, False),
    "isv.SMS_TEMPLATE_ILLEGAL": (TEMPLATE_UNKNOWN, False),
    "isv.TEMPLATE_MISSING_PARAMETERS": (TEMPLATE_PARAMS_MISSING, False),
    "isv.BUSINESS_LIMIT_CONTROL": (RATE_LIMITED, False),
    "isv.INVALID_API_KEY": (API_KEY_INVALID, False),
    "isp.SYSTEM_ERROR": (None, True),
}


class SmsGatewayClient(SmsGateway):
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        client: httpx.AsyncClient,
        timeout_s: float,
        retry: RetryPolicy,
        metrics: IntegrationMetrics | None = None,
    ) -> None:
        super().__init__(metrics=metrics)
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._client = client
        self._timeout = httpx.Timeout(timeout_s)
        self._retry = retry

    async def _send(
        self, phone: str, template_code: str, params: dict[str, str], idempotency_key: str
    ) -> SmsReceipt:
        body = json.dumps(
            {"phone": phone, "template_code": template_code, "params": params}, ensure_ascii=False
        )
        headers = {
            API_KEY_HEADER: self._api_key,
            IDEMPOTENCY_HEADER: idempotency_key,
            "Content-Type": "application/json",
        }

        async def attempt() -> SmsReceipt:
            return self._receipt(await self._post("/v1/messages", body.encode(), headers))

        return await run_with_retries(self._retry, attempt, may_retry=True)

    async def _post(self, path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            response = await self._client.post(
                self.base_url + path, content=content, headers=headers, timeout=self._timeout
            )
            response.read()
            return response
        except httpx.TimeoutException as exc:
            raise SystemTimeout("no answer in time", system=self.system, operation="send") from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise AdapterNotConfigured(
                "SMS gateway URL is not usable", system=self.system, operation="send"
            ) from exc
        except httpx.TransportError as exc:
            raise SystemUnavailable(type(exc).__name__, system=self.system, operation="send") from exc
        except (httpx.DecodingError, httpx.TooManyRedirects) as exc:
            raise MalformedResponse(type(exc).__name__, system=self.system, operation="send") from exc
        except httpx.HTTPError as exc:
            raise SystemUnavailable(type(exc).__name__, system=self.system, operation="send") from exc

    def _receipt(self, response: httpx.Response) -> SmsReceipt:
        try:
            body: Any = response.json()
            code = str(body["code"])
        except (ValueError, KeyError, TypeError) as exc:
            if response.status_code >= 500:
                raise SystemUnavailable(
                    f"HTTP {response.status_code}",
                    system=self.system,
                    operation="send",
                    status=response.status_code,
                ) from exc
            raise MalformedResponse(
                f"HTTP {response.status_code} without a gateway code", system=self.system, operation="send"
            ) from exc
        refusal, retryable = GATEWAY_CODES.get(code, (code, False))
        status = response.status_code
        if retryable or status >= 500 or status in RETRYABLE_4XX:
            raise SystemUnavailable(
                f"HTTP {status} {code}", system=self.system, operation="send", status=status
            )
        if refusal is not None or not response.is_success:
            raise RequestRejected(
                str(body.get("message", "")) or code,
                system=self.system,
                operation="send",
                code=refusal or f"HTTP_{status}",
                status=status,
            )
        try:
            return SmsReceipt(message_id=str(body["message_id"]))
        except KeyError as exc:
            raise MalformedResponse("OK without message_id", system=self.system, operation="send") from exc


ADAPTERS: dict[str, type[SmsGatewayClient]] = {"http-json-v1": SmsGatewayClient}
