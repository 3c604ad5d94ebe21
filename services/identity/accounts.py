"""Who am I: the profile of the signed-in principal, masked as the caller sees it.

A citizen sees their own ID number and phone masked. Neither is stored in clear nor masked
(services/registry/models.py says why), so both are decrypted here and masked for the response;
the full values never leave this function.
"""

from __future__ import annotations

from typing import Any

from services.errors import NotFound
from services.identifiers import mask_id_number, mask_phone
from services.identity.models import ApiClient, StaffUser
from services.identity.tokens import Principal
from services.pii import PiiVault
from services.registry.models import Organisation, Person


async def profile(principal: Principal, *, vault: PiiVault) -> dict[str, Any]:
    base: dict[str, Any] = {"subject": principal.subject, "role": principal.role}
    if principal.role == "citizen":
        person = await Person.get_or_none(id=principal.person_id)
        if person is None:
            raise NotFound()
        return {
            **base,
            "name": person.name,
            "id_number": mask_id_number(vault.decrypt(person.id_number_enc)),
            "phone": mask_phone(vault.decrypt_phone(person.phone_enc)) if person.phone_enc else None,
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
