"""Contract of the civil registry: who a person is, who lives with them, who is their guardian,
and a feed of guardianship changes so that a withdrawn guardianship is noticed before the next read.

The feed is read with an opaque cursor: `guardianship_changes(after=None)` starts at the
beginning, each answer's `cursor` is where the next call continues. A change names the pair it
touched (guardian, ward) and what happened; it does not say whether the guardianship now holds:
that is what `verify_guardianship` is for, so a consumer re-verifies every pair it sees.
"""

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
INVALID_CURSOR = "INVALID_CURSOR"


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


class GuardianshipChangeKind(StrEnum):
    ADDED = "added"
    WITHDRAWN = "withdrawn"  # a court or the registry ended the guardianship
    CHANGED = "changed"  # the relation or terms changed
    PERSON_CHANGED = "person_changed"  # a party's record changed (deceased, birth date corrected)


@dataclass(frozen=True)
class GuardianshipChange:
    guardian_id_number: str = field(repr=False)
    ward_id_number: str = field(repr=False)
    kind: GuardianshipChangeKind


@dataclass(frozen=True)
class GuardianshipChanges:
    changes: list[GuardianshipChange]
    cursor: str  # pass as `after` to continue; unchanged when there was nothing new


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

    async def guardianship_changes(self, after: str | None, limit: int) -> GuardianshipChanges:
        """At most `limit` changes recorded after the cursor `after` (None: from the beginning),
        oldest first. Raises RequestRejected(INVALID_CURSOR) for a cursor the registry does not know."""
        return await self._call(
            "guardianship_changes",
            lambda: self._guardianship_changes(after, limit),
            after=after,
            limit=limit,
        )

    @abstractmethod
    async def _get_person(self, id_number: str) -> PersonRecord: ...

    @abstractmethod
    async def _get_household(self, id_number: str) -> list[HouseholdMember]: ...

    @abstractmethod
    async def _verify_guardianship(
        self, guardian_id_number: str, ward_id_number: str
    ) -> GuardianshipCheck: ...

    @abstractmethod
    async def _guardianship_changes(self, after: str | None, limit: int) -> GuardianshipChanges: ...
