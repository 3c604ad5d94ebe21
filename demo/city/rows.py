"""The city register's rows: the demo's own generator (demo/generated.py, demo/people.py) writing
plain tuples in table-column order for COPY, a block of households at a time, plus what the small
demo leaves to the running service: guardianship links of minors.

Invariants, so a reader can check the code against them:
- The register is the demo's for the same seed and sizes, row for row, except where the city asks
  for more: the number of earlier (historical) rights is exact. The demo gives a quarter of the
  households' homes earlier owners at random; here the same hooks (`wants_history`,
  `more_history`) give them while a quota says earlier rights are owed, the quota growing evenly
  with the units made and running `_LOOKAHEAD` units ahead, so it is met before the last unit.
  `CityRegister.write_all` checks the counts and fails rather than load a register of other sizes.
- Keys, unit numbers, certificate and case numbers, ID numbers and phones come from the demo's
  counters, so they cannot collide (demo/__init__.py has the ranges); keys start after the rows
  already in the database (`CityPlan.first_pk`).
- Nothing here touches a database: the rows of a block go to `sink`, which COPYs them (in this
  process or another, demo/city/load.py), so the same seed gives the same rows wherever they are
  made. Links and the phones left out draw from random streams of their own: the register's
  stream stays the demo's.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tortoise.models import Model

from config.settings import Settings
from demo.generated import GeneratedRegister
from demo.people import Member, is_minor
from demo.places import AS_OF, REGISTER_START, SHANGHAI
from demo.writer import WRITE_ORDER
from services.guardianship.models import ACTIVE, GuardianshipLink
from services.identifiers import eighteenth_birthday
from services.pii import PiiVault
from services.registry.models import RealEstateUnit, Right, RightHolder

BULK_MODELS: tuple[type[Model], ...] = (*WRITE_ORDER, GuardianshipLink)
BULK_TABLES: tuple[str, ...] = tuple(m._meta.db_table for m in BULK_MODELS)
Chunk = dict[str, list[tuple[Any, ...]]]  # table -> rows in the order of `CityPlan.columns[table]`
Sink = Callable[[Chunk], Awaitable[None]]

_LOOKAHEAD = 64  # units the history quota runs ahead of the units made
_MAX_EARLIER = 4  # earlier owners of one unit at most
_UNLINKED_MINOR_LINKED = 0.25  # share of minors without property whose parents linked them anyway
# The demo gives every person of 14 or more a phone (some 95%); in the city a sixth of them
# registered none with the register, so some 80% of persons have one.
_NO_PHONE = 0.16


@dataclass(frozen=True)
class CityPlan:
    """Everything the generator needs, picklable for a worker process."""

    settings: Settings  # for the PII vault: ID numbers and phones are sealed where they are made
    seed: int
    persons: int
    units: int
    rights: int
    block_persons: int  # households are generated, and their rows sent, this many persons at a time
    first_pk: dict[str, int]  # table -> the first key free
    bank_pks: tuple[int, ...]
    company_pks: tuple[int, ...]
    columns: dict[str, tuple[tuple[str, Any], ...]]  # table -> (column, value when not given)


def check_sizes(persons: int, units: int, rights: int) -> None:
    if persons < 1 or units < 1:
        raise ValueError("a city register needs at least one person and one unit")
    if not units <= rights <= 2 * units:
        raise ValueError(
            "rights are one current right per unit plus earlier owners' rights: "
            f"units <= rights <= 2 * units (got {units:,} units, {rights:,} rights)"
        )


class CityRegister(GeneratedRegister):
    def __init__(self, plan: CityPlan, sink: Sink) -> None:
        vault = PiiVault.from_settings(plan.settings)
        super().__init__(conn=None, vault=vault, seed=plan.seed, batch_size=plan.block_persons)
        self.plan, self.sink = plan, sink
        self.next_pk = {m: plan.first_pk[m._meta.db_table] for m in BULK_MODELS}
        self.bank_pks, self.company_pks = list(plan.bank_pks), list(plan.company_pks)
        self.tuples: Chunk = {t: [] for t in BULK_TABLES}
        self.checked: set[str] = set()
        self.specs = {
            t: (tuple(c for c, _ in spec), tuple(d for _, d in spec)) for t, spec in plan.columns.items()
        }
        self.units_made = self.rights_made = 0
        self.holding: set[int] = set()  # persons holding a right written in the current block
        self.links_rng = random.Random(f"{plan.seed}:city-links")
        self.phones_rng = random.Random(f"{plan.seed}:city-phones")

    async def write_all(self) -> None:
        check_sizes(self.plan.persons, self.plan.units, self.plan.rights)
        await self.write_generated(persons=self.plan.persons, units=self.plan.units)
        if (self.units_made, self.rights_made) != (self.plan.units, self.plan.rights):
            raise RuntimeError(
                f"generated {self.units_made:,} units and {self.rights_made:,} rights, "
                f"not {self.plan.units:,} and {self.plan.rights:,}"
            )

    # -- rows as tuples --

    def row(self, model: type[Model], **values: Any) -> None:
        table = model._meta.db_table
        names, defaults = self.specs[table]
        if table not in self.checked:  # a misspelt column would otherwise be silently left out
            unknown = set(values) - set(names)
            if unknown:
                raise ValueError(f"{table} has no column {sorted(unknown)}")
            self.checked.add(table)
        self.tuples[table].append(tuple(map(values.get, names, defaults)))
        if model is RightHolder and values.get("person_id") is not None:
            self.holding.add(values["person_id"])
        elif model is Right:
            self.rights_made += 1
        elif model is RealEstateUnit:
            self.units_made += 1

    def person(self, *, name: str, id_number: str, phone: str | None) -> int:
        if phone is not None and self.phones_rng.random() < _NO_PHONE:
            phone = None
        return super().person(name=name, id_number=id_number, phone=phone)

    async def flush(self) -> None:
        chunk, self.tuples = self.tuples, {t: [] for t in BULK_TABLES}
        await self.sink(chunk)

    # -- an exact number of earlier rights (the module docstring says how) --

    def _history_owed(self, pending: int) -> int:
        plan = self.plan
        target = (plan.rights - plan.units) * min(plan.units, self.units_made + _LOOKAHEAD) // plan.units
        made = self.rights_made - (self.units_made - 1)  # the current unit's own right is not written yet
        return target - made - pending

    def wants_history(self, use: str, block: list[list[Member]], registered: date) -> bool:
        return (
            use == "residential"
            and len(block) > 1
            and (registered - REGISTER_START).days > 90
            and self._history_owed(0) > 0
        )

    def more_history(self, previous: list[date]) -> bool:
        owed = self._history_owed(len(previous))
        return (
            owed > 0
            and len(previous) < _MAX_EARLIER
            and (previous[0] - REGISTER_START).days > 90
            and (self.rng.random() < 0.3 or owed > 8)  # behind the quota: more owners per home
        )

    # -- guardianship links --

    def block(self, households: list[list[Member]], units: int) -> None:
        self.holding.clear()
        super().block(households, units)
        for household in households:
            parents = [m for m in household if m.relation != "child" and m.alive]
            for ward in household:
                if ward.relation != "child" or not is_minor(ward.birth_date) or not parents:
                    continue
                if ward.pk not in self.holding and self.links_rng.random() >= _UNLINKED_MINOR_LINKED:
                    continue
                self.links(ward, parents)

    def links(self, ward: Member, parents: list[Member]) -> None:
        """Verified, active links of a minor's living parents, as the civil registry has them
        (demo/people.py `_civil_registry`), ending on the ward's 18th birthday."""
        rng = self.links_rng

        def moment(days_before: int) -> datetime:
            day = AS_OF - timedelta(days=days_before)
            return datetime(
                day.year, day.month, day.day, rng.randint(8, 21), rng.randrange(60), tzinfo=SHANGHAI
            )

        linked = moment(rng.randrange(14, 365))  # in the last year
        verified = moment(rng.randrange(14))  # verified again (services/guardianship) lately
        ward_index = self.vault.blind_index(ward.id_number)
        for parent in parents:
            self.row(
                GuardianshipLink,
                id=self.pk(GuardianshipLink),
                guardian_id=parent.pk,
                ward_person_id=ward.pk,
                ward_id_number_enc=self.vault.encrypt(ward.id_number),
                ward_id_number_index=ward_index,
                access_ends_on=eighteenth_birthday(ward.id_number),
                relation="father" if parent.male else "mother",
                status=ACTIVE,
                linked_at=linked.astimezone(UTC),
                verified_at=verified.astimezone(UTC),
                changes_reported=0,
                changes_verified=0,
            )
