"""Who a no-housing certificate counts, and whether any of them holds housing.

Invariant: a certificate is never left valid while one of the persons it counted holds a
current residential right. Issuance decides and inserts in one transaction; a registration
that gives someone housing revokes, in its own transaction, the valid certificates that counted
them (revocation.py). Both take the same per-person locks before they read, so whichever commits
second sees the other: either the issuance sees the new right and refuses, or the registration
sees the new certificate and revokes it. On PostgreSQL the locks are transaction-scoped advisory
locks keyed by the blind index (a household member may have no row to lock); SQLite runs one
write transaction at a time, which serialises the two anyway.

Household (户) rule, for purposes that count it: the spouse and the minor children, as the civil
registry records them relative to the head of the household. An applicant who is the head or the
head's spouse counts the other and the household's children under 18; an applicant registered
in another role (an adult child, a sibling) counts only themselves, since the registry's
relations do not say whose child a grandchild is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from tortoise.backends.base.client import BaseDBAsyncClient

from integrations.civil_registry.base import PERSON_NOT_FOUND, CivilRegistry, HouseholdMember, Relation
from integrations.errors import RequestRejected
from services.db import dialect
from services.errors import HouseholdNotFound
from services.identifiers import birth_date_of
from services.pii import PiiVault
from services.registry.models import RightHolder

SELF = "self"
SPOUSE = "spouse"
CHILD = "child"
RESIDENTIAL = "residential"


@dataclass(frozen=True, slots=True)
class Subject:
    """A person the certificate counts; `name` only to say, masked, who holds housing."""

    id_number_index: str
    relation: str  # self | spouse | child
    name: str


def _age_on(id_number: str, today: date) -> int:
    born = birth_date_of(id_number)
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def household_subjects(
    id_number: str, members: Sequence[HouseholdMember], *, today: date
) -> list[tuple[str, str, str]]:
    """(id_number, relation to the applicant, name) of the spouse and minor children (pure)."""
    me = next((m for m in members if m.id_number == id_number), None)
    if me is None or me.relation not in (Relation.HEAD, Relation.SPOUSE):
        return []
    partner = Relation.SPOUSE if me.relation is Relation.HEAD else Relation.HEAD
    found: list[tuple[str, str, str]] = []
    for member in members:
        if member.id_number == id_number:
            continue
        if member.relation is partner:
            found.append((member.id_number, SPOUSE, member.name))
        elif member.relation is Relation.CHILD and _age_on(member.id_number, today) < 18:
            found.append((member.id_number, CHILD, member.name))
    return found


async def subjects_for(
    *,
    id_number: str,
    name: str,
    counts_household: bool,
    civil_registry: CivilRegistry,
    vault: PiiVault,
    today: date,
) -> list[Subject]:
    """The applicant, and for a household purpose the spouse and minor children. Asks the civil
    registry before any transaction opens; an unavailable registry refuses the request (nothing
    is issued on a partial household)."""
    subjects = [Subject(vault.blind_index(id_number), SELF, name)]
    if counts_household:
        try:
            members = await civil_registry.get_household(id_number)
        except RequestRejected as exc:
            if exc.code != PERSON_NOT_FOUND:
                raise
            raise HouseholdNotFound() from None
        for number, relation, member_name in household_subjects(id_number, members, today=today):
            subjects.append(Subject(vault.blind_index(number), relation, member_name))
    return subjects


async def lock_persons(conn: BaseDBAsyncClient, indexes: Iterable[str]) -> None:
    """Serialise issuance and revocation for these persons until the transaction ends."""
    if dialect() != "postgres":
        return  # SQLite: one write transaction at a time (module docstring)
    for index in sorted(set(indexes)):  # one order everywhere: no deadlock between two lockers
        await conn.execute_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7310))", [index])


async def holding_housing(conn: BaseDBAsyncClient, indexes: Sequence[str]) -> set[str]:
    """The blind indexes among `indexes` of persons holding a current residential right."""
    if not indexes:
        return set()
    rows = (
        await RightHolder.filter(
            person__id_number_index__in=list(indexes),
            right__status="current",
            right__unit__use=RESIDENTIAL,
        )
        .using_db(conn)
        .values_list("person__id_number_index", flat=True)
    )
    return {str(row) for row in rows}
