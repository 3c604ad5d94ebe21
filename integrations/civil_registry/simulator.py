"""Civil registry simulator. It starts empty: the composition root or a test loads the people.

Load with `sim.load(people=[...], guardianships=[(guardian_id, ward_id, relation)])` (merges) or
`PUT /_sim/data` with `{"people": [...], "guardianships": [{"guardian_id_number", "ward_id_number",
"relation"}]}` (replaces). A person is `{"id_number", "name"}` plus optional `birth_date`
(YYYY-MM-DD) and `gender` (male/female; both default to what the ID number encodes), `alive`
(default true), `household_id` (default: a household of their own) and `relation` to the household
head (head, spouse, child, grandchild, parent, grandparent, sibling, other; default head).

Guardianship change feed (`GET /v1/guardianships/changes?after=<cursor>&limit=<n>`): every data
change records one entry per (guardian, ward) pair it touches: a guardianship added, withdrawn or
with another relation, and, when a person's record changes in a way that decides a guardianship
(alive, birth date), every guardianship they are in. `load` diffs what it merges, `PUT /_sim/data`
diffs the old data against the new, and `withdraw(guardian, ward)` / `POST
/_sim/guardianships/withdraw {"guardian_id_number", "ward_id_number"}` ends one guardianship the
way a court order does. The feed survives `reset` (it describes reference data, which stays).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from aiohttp import web

from integrations.civil_registry.base import (
    GUARDIANSHIP_NOT_FOUND,
    INVALID_CURSOR,
    INVALID_ID_NUMBER,
    PERSON_NOT_FOUND,
    Gender,
    GuardianshipChangeKind,
    Relation,
)
from integrations.simulator import Reply, SimRejection, Simulator, json_object, required
from standards import gb11643

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
# The feed's wire codes, as the adapter's GUARDIANSHIP_CHANGE_CODES reads them.
_CHANGE_CODE = {
    GuardianshipChangeKind.ADDED: "01",
    GuardianshipChangeKind.WITHDRAWN: "02",
    GuardianshipChangeKind.CHANGED: "03",
    GuardianshipChangeKind.PERSON_CHANGED: "09",
}
ADULT_AGE = 18
FEED_MAX_LIMIT = 1000

Pair = tuple[str, str]  # (guardian ID number, ward ID number)


def id_number_valid(value: str) -> bool:
    """GB 11643-1999 (`standards.gb11643`): ASCII digits, a check character, a real birth date.
    No "not in the future" check: the simulator holds whatever reference data a test loads, and
    the service applies that part of the rule with its own clock before it asks."""
    return gb11643.is_valid(value.upper(), today=None)


def _encoded_gender(id_number: str) -> Gender:
    return Gender.MALE if gb11643.is_male(id_number) else Gender.FEMALE


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
                else gb11643.birth_date(id_number)
            ),
            gender=Gender(gender) if gender else _encoded_gender(id_number),
            alive=bool(data.get("alive", True)),
            household_id=str(data["household_id"]) if data.get("household_id") else None,
            relation=Relation(data.get("relation") or Relation.HEAD),
        )

    @property
    def household(self) -> str:
        return self.household_id or f"own:{self.id_number}"

    @property
    def decides_guardianship(self) -> tuple[bool, date]:
        """The part of the record a guardianship check reads: a change here is a feed entry."""
        return self.alive, self.birth_date


# --- the registry's rules, shared with the in-memory fake (integrations/testing/civil_registry.py) ---


def touched_pairs(
    old_people: Mapping[str, SimPerson],
    old_guardianships: Mapping[Pair, str],
    people: Mapping[str, SimPerson],
    guardianships: Mapping[Pair, str],
) -> dict[Pair, GuardianshipChangeKind]:
    """The feed entries a data change records: one per (guardian, ward) pair whose answer may differ."""
    touched: dict[Pair, GuardianshipChangeKind] = {}
    for pair in old_guardianships.keys() - guardianships.keys():
        touched[pair] = GuardianshipChangeKind.WITHDRAWN
    for pair, relation in guardianships.items():
        before = old_guardianships.get(pair)
        if before is None:
            touched[pair] = GuardianshipChangeKind.ADDED
        elif before != relation:
            touched[pair] = GuardianshipChangeKind.CHANGED
    changed_people = {
        id_number
        for id_number in old_people.keys() | people.keys()
        if _decides(old_people.get(id_number)) != _decides(people.get(id_number))
    }
    for pair in old_guardianships.keys() | guardianships.keys():
        if pair not in touched and (pair[0] in changed_people or pair[1] in changed_people):
            touched[pair] = GuardianshipChangeKind.PERSON_CHANGED
    return touched


def guardianship_result(guardian: SimPerson, ward: SimPerson, today: date) -> str:
    """MATCH, or why a recorded guardianship no longer holds (the wire's result codes)."""
    if not ward.alive:
        return "WARD_DECEASED"
    if _age(ward.birth_date, today) >= ADULT_AGE:
        return "WARD_OF_AGE"
    if not guardian.alive:
        return "GUARDIAN_DECEASED"
    return "MATCH"


def household_of(person: SimPerson, people: Iterable[SimPerson]) -> list[SimPerson]:
    """The person's household, head first, then by birth date."""
    return sorted(
        (p for p in people if p.household == person.household),
        key=lambda p: (p.relation is not Relation.HEAD, p.birth_date, p.id_number),
    )


@dataclass(frozen=True)
class FeedEntry:
    seq: int
    guardian_id_number: str
    ward_id_number: str
    kind: GuardianshipChangeKind
    changed_at: datetime


class RegistryData:
    """The registry's reference data and its change feed, kept alike by the simulator and the
    in-memory fake (integrations/testing/civil_registry.py): one `load`, `withdraw` and
    `clear_data`, and one rule (`touched_pairs`) for what enters the feed. Needs `self.clock`."""

    clock: Callable[[], datetime]

    def _init_data(self) -> None:
        self._people: dict[str, SimPerson] = {}
        self._guardianships: dict[Pair, str] = {}
        self._feed: list[FeedEntry] = []
        self._verifications: Counter[Pair] = Counter()

    def load(
        self,
        people: Iterable[SimPerson | Mapping[str, Any]] = (),
        guardianships: Iterable[tuple[str, str, str]] = (),
    ) -> None:
        """Add or replace people (by ID number) and guardianships (guardian, ward, relation)."""
        new_people = dict(self._people)
        for person in people:
            record = person if isinstance(person, SimPerson) else SimPerson.from_mapping(person)
            new_people[record.id_number] = record
        new_guardianships = dict(self._guardianships)
        for guardian, ward, relation in guardianships:
            new_guardianships[(guardian.upper(), ward.upper())] = relation
        self._replace(new_people, new_guardianships)

    def withdraw(self, guardian_id_number: str, ward_id_number: str) -> bool:
        """End one guardianship (a court order); False when there was none."""
        pair = (guardian_id_number.upper(), ward_id_number.upper())
        if pair not in self._guardianships:
            return False
        self._replace(self._people, {p: r for p, r in self._guardianships.items() if p != pair})
        return True

    def clear_data(self) -> None:
        self._replace({}, {})

    def changes(self) -> list[FeedEntry]:
        return list(self._feed)

    def verifications(self, guardian_id_number: str, ward_id_number: str) -> int:
        """How many times this pair was asked about (requests naming two valid ID numbers)."""
        return self._verifications[(guardian_id_number.upper(), ward_id_number.upper())]

    def _replace(self, people: dict[str, SimPerson], guardianships: dict[Pair, str]) -> None:
        """Swap in new data and record a feed entry for every pair whose answer may differ."""
        touched = touched_pairs(self._people, self._guardianships, people, guardianships)
        self._people = dict(people)
        self._guardianships = dict(guardianships)
        now = self.clock()
        for (guardian, ward), kind in sorted(touched.items()):
            self._feed.append(FeedEntry(len(self._feed) + 1, guardian, ward, kind, now))


class CivilRegistrySimulator(RegistryData, Simulator):
    name = "civil_registry"

    def __init__(self, **kwargs: Any) -> None:
        self._init_data()
        super().__init__(**kwargs)

    def _extra_state(self) -> dict[str, Any]:
        return {
            "people": len(self._people),
            "guardianships": len(self._guardianships),
            "guardianship_changes": len(self._feed),
        }

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
        self.route(
            "GET",
            "/v1/guardianships/changes",
            "guardianship_changes",
            self._guardianship_changes,
            effectful=False,
        )
        self.app.router.add_put("/_sim/data", self._admin_put_data)
        self.app.router.add_post("/_sim/guardianships/withdraw", self._admin_withdraw)

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
        members = household_of(person, self._people.values())
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
        asked = (body.get("guardian_id_number"), body.get("ward_id_number"))
        if all(isinstance(i, str) and id_number_valid(i) for i in asked):
            self._verifications[(str(asked[0]).upper(), str(asked[1]).upper())] += 1
        guardian = self._person(body.get("guardian_id_number"), "guardian")
        ward = self._person(body.get("ward_id_number"), "ward")
        relation = self._guardianships.get((guardian.id_number, ward.id_number))
        if relation is None:
            raise SimRejection(404, GUARDIANSHIP_NOT_FOUND, "no guardianship on record between these persons")
        result = guardianship_result(guardian, ward, self.clock().date())
        return Reply(200, {"result": result, "relation": relation})

    async def _guardianship_changes(self, request: web.Request) -> Reply:
        after_text = request.query.get("after", "")
        limit_text = request.query.get("limit", "100")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= FEED_MAX_LIMIT:
            raise SimRejection(400, "BAD_REQUEST", f"limit must be 1..{FEED_MAX_LIMIT}")
        if after_text and (not after_text.isdigit() or int(after_text) > len(self._feed)):
            raise SimRejection(400, INVALID_CURSOR, "unknown cursor")
        after = int(after_text or 0)
        page = self._feed[after : after + int(limit_text)]
        return Reply(
            200,
            {
                "changes": [
                    {
                        "seq": e.seq,
                        "guardian_id_number": e.guardian_id_number,
                        "ward_id_number": e.ward_id_number,
                        "change_code": _CHANGE_CODE[e.kind],
                        "changed_at": e.changed_at.isoformat(),
                    }
                    for e in page
                ],
                "cursor": str(page[-1].seq if page else after),
            },
        )

    async def _admin_withdraw(self, request: web.Request) -> web.Response:
        try:
            body = await json_object(request)
            withdrawn = self.withdraw(
                str(required(body, "guardian_id_number")), str(required(body, "ward_id_number"))
            )
        except SimRejection as rejection:
            return rejection.reply.to_response()
        if not withdrawn:
            return Reply(
                404, {"code": GUARDIANSHIP_NOT_FOUND, "message": "no guardianship on record"}
            ).to_response()
        return Reply(200, {"withdrawn": True, **self._extra_state()}).to_response()

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
        self._replace(
            {p.id_number: p for p in people},
            {(g.upper(), w.upper()): relation for g, w, relation in guardianships},
        )
        return Reply(
            200, {"people": len(self._people), "guardianships": len(self._guardianships)}
        ).to_response()


def _decides(person: SimPerson | None) -> tuple[bool, date] | None:
    return person.decides_guardianship if person is not None else None


def _relation_code(person: SimPerson) -> str:
    if person.relation is Relation.CHILD:
        return "20" if person.gender is Gender.MALE else "30"
    return _RELATION_CODE[person.relation]


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
