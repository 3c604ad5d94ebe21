"""Who am I: the profile of the signed-in principal, masked as the caller sees it."""

from __future__ import annotations

from typing import Any

from services.errors import NotFound
from services.identifiers import mask_phone
from services.models.accounts import ApiClient, StaffUser
from services.models.registry import Organisation, Person
from services.tokens import Principal


async def profile(principal: Principal) -> dict[str, Any]:
    base: dict[str, Any] = {"subject": principal.subject, "role": principal.role}
    if principal.role == "citizen":
        person = await Person.get_or_none(id=principal.person_id)
        if person is None:
            raise NotFound()
        return {
            **base,
            "name": person.name,
            "id_number": person.id_number_masked,
            "phone": mask_phone(person.phone) if person.phone else None,
        }
    if principal.role in ("clerk", "admin"):
        staff = await StaffUser.get_or_none(id=int(principal.subject.split(":", 1)[1]))
        if staff is None:
            raise NotFound()
        return {
            **base,
            "name": staff.display_name,
            "username": staff.username,
            "office_code": staff.office_code,
        }
    client = await ApiClient.get_or_none(client_id=principal.subject.split(":", 1)[1])
    organisation = await Organisation.get_or_none(id=principal.organisation_id) if client else None
    return {
        **base,
        "name": organisation.name if organisation else None,
        "bank_code": principal.bank_code,
        "scopes": sorted(principal.scopes),
    }
