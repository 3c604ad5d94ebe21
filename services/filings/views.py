"""The shapes bank filings and participating banks are answered in: one description of each, used
by the API for validation and documentation (`api/openapi.py`) and by the callbacks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field

FilingType = Literal["create", "change", "cancel"]
FilingStatus = Literal["validating", "rejected", "accepted", "clerk_review", "registered"]
CallbackMac = Literal["hmac-sha256", "hmac-sm3"]  # integrations/banks/base.py CALLBACK_MACS


@dataclass(frozen=True, slots=True)
class Issue:
    """A blocking error or a warning found by validation; `code` is stable (docs/filings.md)."""

    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class FilingView:
    id: int
    ref: Annotated[str, Field(description="our reference, named in callbacks", examples=["MF-42"])]
    type: FilingType
    status: FilingStatus
    contract_number: str
    submitted_by: str
    unit_number: str | None
    case_number: str | None
    priority_at: Annotated[datetime | None, Field(description="受理时间: the mortgage's priority")]
    certificate_number: Annotated[str | None, Field(description="不动产登记证明号, once registered")]
    errors: tuple[Issue, ...]
    warnings: tuple[Issue, ...]
    reason: str | None
    filed_on: date
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BankView:
    code: str
    name: str
    credit_code: str
    branches: tuple[str, ...]
    filing_types: tuple[FilingType, ...]
    daily_quota: int
    callback_url: str
    adapter: str
    callback_mac: Annotated[
        CallbackMac | None,
        Field(description="the MAC our callbacks are signed with; null: the cryptography profile's"),
    ]
    status: Literal["active", "suspended"]
    client_id: Annotated[str | None, Field(description="null until credentials are issued")]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    """Shown once: only the argon2 hash of the secret is kept."""

    client_id: str
    client_secret: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AttachmentView:
    id: int
    name: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime
