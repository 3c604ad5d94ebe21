"""The generated people, household by household, and the civil registry's view of all the demo's
people: households, and minors with their parents as guardians.

Persons come from a `random.Random` stream of their own, so the civil-registry dataset rebuilds
exactly the seeded people without a database. ID numbers and phones come from counters, never from
"draw and retry against a set"."""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from demo.identities import FIXED_BY_KEY, FIXED_PERSONS, GUARDIANSHIPS
from demo.places import (
    AS_OF,
    COMPOUND_SURNAMES,
    DISTRICTS,
    PEOPLE_CUM,
    SURNAME_CUM,
    SURNAME_POOL,
    given_name,
)
from services.identifiers import id_check_char
from services.pii import PiiVault
from services.registry.models import Person

_FIRST_BIRTH = date(1940, 1, 1)
_LAST_BIRTH = date(2020, 12, 31)
_BIRTH_DAYS = (_LAST_BIRTH - _FIRST_BIRTH).days + 1


class _IdNumbers:
    """Unique GB 11643 numbers without remembering them: a counter per (district, birth day, sex)
    hands out sequences 000-799 (odd for men) in a scrambled order."""

    SLOTS = 400

    def __init__(self) -> None:
        self._taken = array("H", bytes(2 * 2 * len(DISTRICTS) * _BIRTH_DAYS))

    def take(self, district: int, born: date, male: bool) -> str | None:
        cell = (district * _BIRTH_DAYS + (born - _FIRST_BIRTH).days) * 2 + male
        n = self._taken[cell]
        if n >= self.SLOTS:
            return None
        self._taken[cell] = n + 1
        sequence = 2 * ((n * 157 + cell) % self.SLOTS) + male  # 157 is prime to 400: a permutation
        first17 = f"{DISTRICTS[district].code}{born.year}{born.month:02d}{born.day:02d}{sequence:03d}"
        return first17 + id_check_char(first17)


# 139 belongs to the fixed identities, 170 to tests/factories.py.
# fmt: off
_PHONE_PREFIXES = ("138", "137", "136", "135", "159", "158", "150", "151", "152", "186", "185", "188",
                   "187", "189", "181", "180", "133", "153", "177", "199")
# fmt: on


class _Phones:
    """The n-th phone is n through an affine permutation of every (prefix, 8 digits) pair: unique by
    construction, and neighbours look unrelated. The multiplier is prime to 2 and 5, hence to the size."""

    SIZE = len(_PHONE_PREFIXES) * 10**8

    def __init__(self, rng: random.Random) -> None:
        self._n = 0
        self._offset = rng.randrange(self.SIZE)

    def take(self) -> str:
        n, self._n = self._n, self._n + 1
        prefix, line = divmod((n * 1_234_567_891 + self._offset) % self.SIZE, 10**8)
        return f"{_PHONE_PREFIXES[prefix]}{line:08d}"


# --- generated people, household by household ------------------------------------------------------


@dataclass(slots=True)
class Member:
    name: str
    id_number: str
    birth_date: date
    male: bool
    phone: str | None
    alive: bool
    household_id: str
    relation: str  # head | spouse | child
    pk: int = 0  # set when written


def years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # from 29 February to 1 March, as services.identifiers.eighteenth_birthday does
        return date(day.year + years, 3, 1)


def is_minor(born: date, on: date = AS_OF) -> bool:
    return years_after(born, 18) > on


def random_day(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def generated_households(seed: int, count: int) -> Iterator[list[Member]]:
    """`count` persons in households: a head, often a spouse, children (some of them minors)."""
    rng = random.Random(f"{seed}:people")
    ids, phones = _IdNumbers(), _Phones(rng)
    made = number = 0
    while made < count:
        number += 1
        household = f"HH{number:08d}"
        home = rng.choices(range(len(DISTRICTS)), cum_weights=PEOPLE_CUM)[0]

        def member(
            surname: str, male: bool, born: date, relation: str, district: int, household: str = household
        ) -> Member:
            id_number = ids.take(district, born, male)
            while id_number is None:  # that day is full for the district: a neighbouring day
                born += timedelta(days=1 if born < _LAST_BIRTH else -1)
                id_number = ids.take(district, born, male)
            alive = born.year >= 1950 or rng.random() > 0.12
            phone = phones.take() if years_after(born, 14) <= AS_OF else None
            name = surname + given_name(rng, male, born)
            return Member(name, id_number, born, male, phone, alive, household, relation)

        def surname() -> str:
            return rng.choices(SURNAME_POOL, cum_weights=SURNAME_CUM)[0]

        head_male = rng.random() < 0.55
        year = min(1998, int(rng.triangular(1940, 1999, 1972)))
        head = member(
            surname(), head_male, random_day(rng, date(year, 1, 1), date(year, 12, 31)), "head", home
        )
        members = [head]
        if rng.random() < 0.7:
            offset = timedelta(days=rng.randint(-3 * 365, 6 * 365))
            born = head.birth_date + offset if head_male else head.birth_date - offset
            born = min(max(born, _FIRST_BIRTH), date(2000, 12, 31))
            where = (
                home if rng.random() < 0.5 else rng.choices(range(len(DISTRICTS)), cum_weights=PEOPLE_CUM)[0]
            )
            members.append(member(surname(), not head_male, born, "spouse", where))
        mother = next((m for m in members if not m.male), head)
        family = next((m for m in members if m.male), head).name
        family = family[:2] if family[:2] in COMPOUND_SURNAMES else family[:1]
        born = mother.birth_date + timedelta(days=rng.randint(22 * 365, 34 * 365))
        for _ in range(rng.choices((0, 1, 2, 3), weights=(30, 48, 20, 2))[0]):
            if born > _LAST_BIRTH:
                break
            where = (
                home if rng.random() < 0.85 else rng.choices(range(len(DISTRICTS)), cum_weights=PEOPLE_CUM)[0]
            )
            members.append(member(family, rng.random() < 0.52, born, "child", where))
            born += timedelta(days=rng.randint(2 * 365, 8 * 365))
        members = members[: count - made]
        made += len(members)
        yield members


# --- civil-registry data ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CivilRegistryData:
    """Ready for `CivilRegistrySimulator.load(people=..., guardianships=...)` or its `PUT /_sim/data`."""

    people: list[dict[str, Any]]
    guardianships: list[tuple[str, str, str]]  # (guardian ID number, ward ID number, "father" | "mother")


def _registry_record(
    id_number: str, name: str, born: date, male: bool, alive: bool, household: str, relation: str
) -> dict[str, Any]:
    return {
        "id_number": id_number,
        "name": name,
        "birth_date": born.isoformat(),
        "gender": "male" if male else "female",
        "alive": alive,
        "household_id": household,
        "relation": relation,
    }


def civil_registry_dataset(*, seed: int, persons: int = 2000) -> CivilRegistryData:
    """The people of `seed_demo_data(seed=seed, persons=persons)` as the civil registry knows them:
    households, and minors (under 18 on AS_OF) with their living parents as guardians."""
    return _civil_registry(generated_households(seed, persons))


def _civil_registry(households: Iterable[list[Member]]) -> CivilRegistryData:
    people = [
        _registry_record(p.id_number, p.name, p.birth_date, p.male, p.alive, p.household_id, p.relation)
        for p in FIXED_PERSONS
    ]
    guardianships = [
        (FIXED_BY_KEY[g].id_number, FIXED_BY_KEY[w].id_number, rel) for g, w, rel in GUARDIANSHIPS
    ]
    for household in households:
        parents = [m for m in household if m.relation != "child" and m.alive]
        for m in household:
            people.append(
                _registry_record(
                    m.id_number, m.name, m.birth_date, m.male, m.alive, m.household_id, m.relation
                )
            )
            if m.relation == "child" and is_minor(m.birth_date):
                guardianships += [
                    (p.id_number, m.id_number, "father" if p.male else "mother") for p in parents
                ]
    return CivilRegistryData(people, guardianships)


async def civil_registry_dataset_from_db(
    *, vault: PiiVault, seed: int, chunk: int = 5000
) -> CivilRegistryData:
    """`civil_registry_dataset` for the persons a database was actually seeded with, whatever
    `persons` was then (a later start-up may have other settings; seeding is skipped once done).

    A seed's persons are a prefix of one endless stream, so the stream is walked, a chunk at a time,
    while its persons (found by blind index) are in the database."""
    stream = generated_households(seed, 2**62)
    seeded: list[list[Member]] = []
    while True:
        pending: list[list[Member]] = []
        indexes: list[str] = []
        while len(indexes) < chunk:
            pending.append(next(stream))
            indexes += [vault.blind_index(m.id_number) for m in pending[-1]]
        found = await Person.filter(id_number_index__in=indexes).count()
        if found == len(indexes):
            seeded += pending
            continue
        for household in pending:  # keep the seeded prefix; the last household may be cut short
            if found <= 0:
                break
            seeded.append(household[:found])
            found -= len(household)
        return _civil_registry(seeded)
