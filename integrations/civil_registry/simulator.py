"""Civil registry simulator. It starts empty: the composition root or a test loads the people.

Load with `sim.load(people=[...], guardianships=[(guardian_id, ward_id, relation)])` (merges) or
`PUT /_sim/data` with `{"people": [...], "guardianships": [{"guardian_id_number", "ward_id_number",
"relation"}]}` (replaces). A person is `{"id_number", "name"}` plus optional `birth_date`
(YYYY-MM-DD) and `gender` (male/female; both default to what the ID number encodes), `alive`
(default true), `household_id` (default: a household of their own) and `relation` to the household
head (head, spouse, child, grandchild, parent, grandparent, sibling, other; default head).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from aiohttp import web

from integrations.civil_registry.base import (
    GUARDIANSHIP_NOT_FOUND,
    INVALID_ID_NUMBER,
    PERSON_NOT_FOUND,
    Gender,
    Relation,
)
from integrations.simulator import Reply, SimRejection, Simulator, json_object

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"

# The simulator speaks the wire codes the adapter's tables read (GB/T 2261.1, GB/T 4761).
_SEX_CODE = {Gender.MALE: "1", Gender.FEMALE: "2", Gender.UNKNOWN: "0"}
_RELATION_CODE = {
    Relation.HEAD: "02",
    Relation.SPOUSE: "10",
    Relation.GRANDCHILD: "40",
    Relation.PARENT: "50",
    Relation.GRANDPARENT: "60",
    Relation.SIBLING: "70",
    Relation.OTHER: "99",
}
ADULT_AGE = 18


def id_number_valid(value: str) -> bool:
    """GB 11643-1999: 17 digits, a check character, a real birth date."""
    value = value.upper()
    if len(value) != 18 or not value[:17].isdigit():
        return False
    if _CHECK[sum(int(c) * w for c, w in zip(value[:17], _WEIGHTS, strict=True)) % 11] != value[17]:
        return False
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return True


@dataclass
class SimPerson:
    id_number: str
    name: str
    birth_date: date
    gender: Gender
    alive: bool = True
    household_id: str | None = None
    relation: Relation = Relation.HEAD

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SimPerson:
        id_number = str(data["id_number"]).upper()
        if not id_number_valid(id_number):
            raise ValueError("invalid ID number in simulator data")
        birth = data.get("birth_date")
        gender = data.get("gender")
        return cls(
            id_number=id_number,
            name=str(data["name"]),
            birth_date=(
                birth
                if isinstance(birth, date)
                else date.fromisoformat(birth)
                if birth
                else date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
            ),
            gender=Gender(gender) if gender else (Gender.MALE if int(id_number[16]) % 2 else Gender.FEMALE),
            alive=bool(data.get("alive", True)),
            household_id=str(data["household_id"]) if data.get("household_id") else None,
            relation=Relation(data.get("relation") or Relation.HEAD),
        )

    @property
    def household(self) -> str:
        return self.household_id or f"own:{self.id_number}"


class CivilRegistrySimulator(Simulator):
    name = "civil_registry"

    def __init__(self, **kwargs: Any) -> None:
        self._people: dict[str, SimPerson] = {}
        self._guardianships: dict[tuple[str, str], str] = {}
        super().__init__(**kwargs)

    def load(
        self,
        people: Iterable[SimPerson | Mapping[str, Any]] = (),
        guardianships: Iterable[tuple[str, str, str]] = (),
    ) -> None:
        """Add or replace people (by ID number) and guardianships (guardian, ward, relation)."""
        for person in people:
            record = person if isinstance(person, SimPerson) else SimPerson.from_mapping(person)
            self._people[record.id_number] = record
        for guardian, ward, relation in guardianships:
            self._guardianships[(guardian.upper(), ward.upper())] = relation

    def clear_data(self) -> None:
        self._people.clear()
        self._guardianships.clear()

    def _extra_state(self) -> dict[str, Any]:
        return {"people": len(self._people), "guardianships": len(self._guardianships)}

    def _setup_routes(self) -> None:
        self.route("POST", "/v1/persons/query", "get_person", self._get_person, effectful=False)
        self.route("POST", "/v1/households/query", "get_household", self._get_household, effectful=False)
        self.route(
            "POST",
            "/v1/guardianships/verify",
            "verify_guardianship",
            self._verify_guardianship,
            effectful=False,
        )
        self.app.router.add_put("/_sim/data", self._admin_put_data)

    def _person(self, id_number: Any, role: str = "person") -> SimPerson:
        if not isinstance(id_number, str) or not id_number_valid(id_number):
            raise SimRejection(400, INVALID_ID_NUMBER, f"{role} ID number is not a valid GB 11643 number")
        person = self._people.get(id_number.upper())
        if person is None:
            raise SimRejection(404, PERSON_NOT_FOUND, f"no {role} with that ID number")
        return person

    async def _get_person(self, request: web.Request) -> Reply:
        person = self._person((await json_object(request)).get("id_number"))
        return Reply(
            200,
            {
                "id_number": person.id_number,
                "name": person.name,
                "birth_date": person.birth_date.isoformat(),
                "sex_code": _SEX_CODE[person.gender],
                "status_code": "10" if person.alive else "20",
            },
        )

    async def _get_household(self, request: web.Request) -> Reply:
        person = self._person((await json_object(request)).get("id_number"))
        members = sorted(
            (p for p in self._people.values() if p.household == person.household),
            key=lambda p: (p.relation is not Relation.HEAD, p.birth_date, p.id_number),
        )
        return Reply(
            200,
            {
                "household_id": person.household_id,
                "members": [
                    {"id_number": m.id_number, "name": m.name, "relation_code": _relation_code(m)}
                    for m in members
                ],
            },
        )

    async def _verify_guardianship(self, request: web.Request) -> Reply:
        body = await json_object(request)
        guardian = self._person(body.get("guardian_id_number"), "guardian")
        ward = self._person(body.get("ward_id_number"), "ward")
        relation = self._guardianships.get((guardian.id_number, ward.id_number))
        if relation is None:
            raise SimRejection(404, GUARDIANSHIP_NOT_FOUND, "no guardianship on record between these persons")
        if not ward.alive:
            result = "WARD_DECEASED"
        elif _age(ward.birth_date, self.clock().date()) >= ADULT_AGE:
            result = "WARD_OF_AGE"
        elif not guardian.alive:
            result = "GUARDIAN_DECEASED"
        else:
            result = "MATCH"
        return Reply(200, {"result": result, "relation": relation})

    async def _admin_put_data(self, request: web.Request) -> web.Response:
        try:
            body = await json_object(request)
            people = [SimPerson.from_mapping(p) for p in body.get("people", [])]
            guardianships = [
                (str(g["guardian_id_number"]), str(g["ward_id_number"]), str(g["relation"]))
                for g in body.get("guardianships", [])
            ]
        except SimRejection as rejection:
            return rejection.reply.to_response()
        except (KeyError, TypeError, ValueError) as exc:
            return Reply(400, {"code": "BAD_DATA", "message": str(exc)}).to_response()
        self.clear_data()
        self.load(people, guardianships)
        return Reply(200, self._extra_state()).to_response()


def _relation_code(person: SimPerson) -> str:
    if person.relation is Relation.CHILD:
        return "20" if person.gender is Gender.MALE else "30"
    return _RELATION_CODE[person.relation]


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
