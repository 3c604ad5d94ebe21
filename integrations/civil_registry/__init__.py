"""Civil registry (公安人口信息): persons, households, guardianships."""

from integrations.civil_registry.base import (
    GUARDIANSHIP_NOT_FOUND,
    INVALID_CURSOR,
    INVALID_ID_NUMBER,
    PERSON_NOT_FOUND,
    CivilRegistry,
    Gender,
    GuardianshipChange,
    GuardianshipChangeKind,
    GuardianshipChanges,
    GuardianshipCheck,
    HouseholdMember,
    PersonRecord,
    Relation,
)

__all__ = [
    "GUARDIANSHIP_NOT_FOUND",
    "INVALID_CURSOR",
    "INVALID_ID_NUMBER",
    "PERSON_NOT_FOUND",
    "CivilRegistry",
    "Gender",
    "GuardianshipChange",
    "GuardianshipChangeKind",
    "GuardianshipChanges",
    "GuardianshipCheck",
    "HouseholdMember",
    "PersonRecord",
    "Relation",
]
