"""Organisations on record (a developer, a company, a bank): who may hold rights and apply for
registrations as an organisation. Identified by the unified social credit code, checked by the one
rule (standards/gb32100.py through services.identifiers) before anything is stored."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.exceptions import IntegrityError

from services.errors import OrganisationExists, ValidationFailed
from services.identifiers import normalise_credit_code
from services.registry.models import Organisation

KINDS = ("developer", "company", "authority")  # banks are onboarded from config/banks.toml


@dataclass(frozen=True, slots=True)
class OrganisationView:
    organisation_id: int
    name: str
    credit_code: str
    kind: str


async def add_organisation(*, name: str, credit_code: str, kind: str) -> OrganisationView:
    code = normalise_credit_code(credit_code)
    if kind not in KINDS:
        raise ValidationFailed("单位类型不合法", "Unknown kind of organisation", field="kind")
    try:
        row = await Organisation.create(name=name.strip(), credit_code=code, kind=kind)
    except IntegrityError:
        raise OrganisationExists(field="credit_code") from None
    return OrganisationView(row.id, row.name, row.credit_code, row.kind)
