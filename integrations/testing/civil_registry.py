"""In-memory civil registry. Loaded like the simulator (`load`, `withdraw`, `clear_data`), and it
applies the simulator's own rules (`touched_pairs`, `guardianship_result`, `household_of`), so the
change feed and the verification answers cannot drift apart."""

from __future__ import annotations

from typing import Any

from integrations.civil_registry.base import (
    GUARDIANSHIP_NOT_FOUND,
    INVALID_CURSOR,
    INVALID_ID_NUMBER,
    PERSON_NOT_FOUND,
    CivilRegistry,
    GuardianshipChange,
    GuardianshipChanges,
    GuardianshipCheck,
    HouseholdMember,
    PersonRecord,
)
from integrations.civil_registry.simulator import (
    FEED_MAX_LIMIT,
    RegistryData,
    SimPerson,
    guardianship_result,
    household_of,
    id_number_valid,
)
from integrations.testing.fake import BAD_REQUEST, FakeSystem


class FakeCivilRegistry(RegistryData, FakeSystem, CivilRegistry):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_data()  # the simulator's reference data and feed (RegistryData)

    # --- the contract -----------------------------------------------------------------------------

    async def _get_person(self, id_number: str) -> PersonRecord:
        def read() -> PersonRecord:
            p = self._person("get_person", id_number)
            return PersonRecord(p.id_number, p.name, p.birth_date, p.gender, p.alive)

        return await self._read("get_person", read)

    async def _get_household(self, id_number: str) -> list[HouseholdMember]:
        def read() -> list[HouseholdMember]:
            person = self._person("get_household", id_number)
            return [
                HouseholdMember(m.id_number, m.name, m.relation)
                for m in household_of(person, self._people.values())
            ]

        return await self._read("get_household", read)

    async def _verify_guardianship(self, guardian_id_number: str, ward_id_number: str) -> GuardianshipCheck:
        operation = "verify_guardianship"

        def read() -> GuardianshipCheck:
            if id_number_valid(guardian_id_number) and id_number_valid(ward_id_number):
                self._verifications[(guardian_id_number.upper(), ward_id_number.upper())] += 1
            guardian = self._person(operation, guardian_id_number, "guardian")
            ward = self._person(operation, ward_id_number, "ward")
            relation = self._guardianships.get((guardian.id_number, ward.id_number))
            if relation is None:
                raise self._refuse(operation, 404, GUARDIANSHIP_NOT_FOUND)
            result = guardianship_result(guardian, ward, self.clock().date())
            verified = result == "MATCH"
            return GuardianshipCheck(
                verified=verified, relation=relation, reason=None if verified else result
            )

        return await self._read(operation, read)

    async def _guardianship_changes(self, after: str | None, limit: int) -> GuardianshipChanges:
        operation = "guardianship_changes"

        def read() -> GuardianshipChanges:
            if not 1 <= limit <= FEED_MAX_LIMIT:
                raise self._refuse(operation, 400, BAD_REQUEST, f"limit must be 1..{FEED_MAX_LIMIT}")
            if after and (not after.isdigit() or int(after) > len(self._feed)):
                raise self._refuse(operation, 400, INVALID_CURSOR)
            start = int(after or 0)
            page = [
                GuardianshipChange(e.guardian_id_number, e.ward_id_number, e.kind)
                for e in self._feed[start : start + limit]
            ]
            return GuardianshipChanges(changes=page, cursor=str(start + len(page)))

        return await self._read(operation, read)

    def _person(self, operation: str, id_number: str, role: str = "person") -> SimPerson:
        if not isinstance(id_number, str) or not id_number_valid(id_number):
            raise self._refuse(operation, 400, INVALID_ID_NUMBER, f"{role} ID number is not valid")
        person = self._people.get(id_number.upper())
        if person is None:
            raise self._refuse(operation, 404, PERSON_NOT_FOUND, f"no {role} with that ID number")
        return person
