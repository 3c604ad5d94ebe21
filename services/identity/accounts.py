"""Who am I: the profile of the signed-in principal, masked as the caller sees it.

A citizen sees their own ID number and phone masked. Neither is stored in clear nor masked
(services/registry/models.py says why), so both are decrypted here and masked for the response;
the full values never leave this function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from services.errors import NotFound
from services.identifiers import mask_id_number, mask_phone
from services.identity.models import ApiClient, StaffUser
from services.identity.tokens import Principal
from services.pii import PiiVault
from services.registry.models import Organisation, Person


@dataclass(frozen=True, slots=True)
class CitizenProfile:
    subject: str
    role: str
    name: str
    id_number: Annotated[str, Field(description="masked", examples=["3101**********0025"])]
    phone: Annotated[str | None, Field(description="masked")]


@dataclass(frozen=True, slots=True)
class StaffProfile:
    subject: str
    role: str
    name: str
    username: str
    office_code: str | None


@dataclass(frozen=True, slots=True)
class ClientProfile:
    subject: str
    role: str
    name: Annotated[str | None, Field(description="the bank's or organisation's name")]
    bank_code: str | None
    scopes: tuple[str, ...]


Profile = CitizenProfile | StaffProfile | ClientProfile


async def profile(principal: Principal, *, vault: PiiVault) -> Profile:
    base = {"subject": principal.subject, "role": principal.role}
    if principal.role == "citizen":
        person = await Person.get_or_none(id=principal.person_id)
        if person is None:
            raise NotFound()
        return CitizenProfile(
            **base,
            name=person.name,
            id_number=mask_id_number(vault.decrypt(person.id_number_enc)),
            phone=mask_phone(vault.decrypt_phone(person.phone_enc)) if person.phone_enc else None,
        )
    if principal.subject.startswith("staff:"):  # clerks, admins, organisations' staff
        staff = await StaffUser.get_or_none(id=int(principal.subject.split(":", 1)[1]))
        if staff is None:
            raise NotFound()
        return StaffProfile(
            **base, name=staff.display_name, username=staff.username, office_code=staff.office_code
        )
    client = await ApiClient.get_or_none(client_id=principal.subject.split(":", 1)[1])
    organisation = await Organisation.get_or_none(id=principal.organisation_id) if client else None
    return ClientProfile(
        **base,
        name=organisation.name if organisation else None,
        bank_code=principal.bank_code,
        scopes=tuple(sorted(principal.scopes)),
    )
