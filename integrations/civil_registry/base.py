"""Contract of the civil registry: who a person is, who lives with them, who is their guardian."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from integrations.base import ExternalSystem, mask_id

# Remote refusal codes (RequestRejected.code) that callers may act on.
PERSON_NOT_FOUND = "PERSON_NOT_FOUND"
GUARDIANSHIP_NOT_FOUND = "GUARDIANSHIP_NOT_FOUND"
INVALID_ID_NUMBER = "INVALID_ID_NUMBER"


class Gender(StrEnum):
    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"


class Relation(StrEnum):
    """Relation to the head of the household."""

    HEAD = "head"
    SPOUSE = "spouse"
    CHILD = "child"
    GRANDCHILD = "grandchild"
    PARENT = "parent"
    GRANDPARENT = "grandparent"
    SIBLING = "sibling"
    OTHER = "other"


@dataclass(frozen=True)
class PersonRecord:
    id_number: str = field(repr=False)
    name: str
    birth_date: date
    gender: Gender
    alive: bool


@dataclass(frozen=True)
class HouseholdMember:
    id_number: str = field(repr=False)
    name: str
    relation: Relation


@dataclass(frozen=True)
class GuardianshipCheck:
    verified: bool
    relation: str | None = None  # as recorded, e.g. 母亲
    reason: str | None = None  # why not verified, e.g. WARD_OF_AGE


class CivilRegistry(ExternalSystem):
    system = "civil_registry"

    async def get_person(self, id_number: str) -> PersonRecord:
        """Raises RequestRejected(PERSON_NOT_FOUND) for an unknown person."""
        return await self._call("get_person", lambda: self._get_person(id_number), subject=mask_id(id_number))

    async def get_household(self, id_number: str) -> list[HouseholdMember]:
        """Everyone registered in the person's household (户), the person included."""
        return await self._call(
            "get_household", lambda: self._get_household(id_number), subject=mask_id(id_number)
        )

    async def verify_guardianship(self, guardian_id_number: str, ward_id_number: str) -> GuardianshipCheck:
        """Raises RequestRejected(GUARDIANSHIP_NOT_FOUND) when no guardianship links the two,
        RequestRejected(PERSON_NOT_FOUND) when either is unknown; answers verified=False with a
        reason when a recorded guardianship no longer holds (ward of age, someone deceased)."""
        return await self._call(
            "verify_guardianship",
            lambda: self._verify_guardianship(guardian_id_number, ward_id_number),
            guardian=mask_id(guardian_id_number),
            ward=mask_id(ward_id_number),
        )

    @abstractmethod
    async def _get_person(self, id_number: str) -> PersonRecord: ...

    @abstractmethod
    async def _get_household(self, id_number: str) -> list[HouseholdMember]: ...

    @abstractmethod
    async def _verify_guardianship(
        self, guardian_id_number: str, ward_id_number: str
    ) -> GuardianshipCheck: ...
