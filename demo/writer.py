"""Writing register rows in batches with keys we choose ourselves, so a batch of rights can point at
the units and persons of the same batch without reading them back (PostgreSQL's sequences are moved
past them afterwards, as Django's `loaddata` + `sqlsequencereset` do), and numbering certificates and
cases per year and district."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

from demo.companies import COMPANIES, credit_code
from demo.identities import FIXED_CERTIFICATES, DemoBank
from demo.people import years_after
from demo.places import AS_OF, DISTRICT_BY_CODE, OFFICES, SHANGHAI
from services.identifiers import format_certificate_number
from services.pii import PiiVault
from services.registry.models import (
    Encumbrance,
    Mortgage,
    Office,
    Organisation,
    Person,
    RealEstateUnit,
    RegistrationCase,
    Right,
    RightHolder,
)

WRITE_ORDER: tuple[type[Model], ...] = (
    Person,
    RealEstateUnit,
    Right,
    RightHolder,
    Mortgage,
    Encumbrance,
    RegistrationCase,
)


async def advance_sequences(conn: BaseDBAsyncClient, models: Sequence[type[Model]] = WRITE_ORDER) -> None:
    """We chose the keys ourselves; PostgreSQL's serial sequences must not hand them out again."""
    if conn.capabilities.dialect != "postgres":
        return  # SQLite's rowid picks max(id) + 1 by itself
    for model in models:
        table = model._meta.db_table
        await conn.execute_query(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "  # noqa: S608 - our own table names
            f'(SELECT COALESCE(MAX(id), 0) + 1 FROM "{table}"), false)'
        )


class RegisterWriter:
    """The rows of one seeding, held until `flush`; `prepare` finds the next free keys and the banks',
    companies' and offices' rows the titles refer to."""

    def __init__(
        self, *, conn: BaseDBAsyncClient | None, vault: PiiVault, seed: int, batch_size: int
    ) -> None:
        self.conn, self.vault, self.seed, self.batch_size = conn, vault, seed, batch_size
        self.rng = random.Random(f"{seed}:register")
        self.rows: dict[type[Model], list[Model]] = {m: [] for m in WRITE_ORDER}
        self.next_pk: dict[type[Model], int] = {}
        self.sequences: dict[tuple[str, ...], int] = {}
        self.bank_pks: list[int] = []
        self.company_pks: list[int] = []
        self.office_names = {code_district: name for _, code_district, name, _ in reversed(OFFICES)}

    # -- plumbing --

    async def prepare(self, banks: Sequence[DemoBank]) -> None:
        for model in WRITE_ORDER:
            last: list[Any] = (
                await model.all().using_db(self.conn).order_by("-id").limit(1).values_list("id", flat=True)
            )
            self.next_pk[model] = int(last[0]) + 1 if last else 1
        existing = {o.credit_code: o for o in await Organisation.all().using_db(self.conn)}
        for bank in banks:
            org = existing.get(bank.uscc) or await Organisation.create(
                name=bank.name, credit_code=bank.uscc, kind="bank", bank_code=bank.code, using_db=self.conn
            )
            self.bank_pks.append(org.id)
        for i, (name, district) in enumerate(COMPANIES):
            code = credit_code(district_code=district, organisation_code=f"MA1K{i + 1:04d}")
            org = existing.get(code) or await Organisation.create(
                name=name, credit_code=code, kind="company", using_db=self.conn
            )
            self.company_pks.append(org.id)
        have = set(await Office.all().using_db(self.conn).values_list("code", flat=True))
        await Office.bulk_create(
            [Office(code=c, district_code=d, name=n, address=a) for c, d, n, a in OFFICES if c not in have],
            using_db=self.conn,
        )

    def pk(self, model: type[Model]) -> int:
        value = self.next_pk[model]
        self.next_pk[model] = value + 1
        return value

    def add(self, row: Model) -> None:
        self.rows[type(row)].append(row)

    def row(self, model: type[Model], **values: Any) -> None:
        """One row of `model`, keyed by column (`unit_id`, not `unit`). Every generated row passes
        through here: the demo keeps model objects for `bulk_create`, the city loader
        (demo/city) overrides it to keep plain tuples for COPY (a model object costs more to make
        than the rest of the row's generation)."""
        self.add(model(**values))

    async def flush(self) -> None:
        for model in WRITE_ORDER:
            if rows := self.rows[model]:
                await model.bulk_create(rows, using_db=self.conn)
                rows.clear()

    def sequence(
        self,
        key: tuple[str, ...],
        *,
        limit: int,
        start: int = 3000,
        reserved: frozenset[str] = frozenset(),
        render: Any = str,
    ) -> str:
        """Increasing numbers per key with irregular gaps, starting somewhere plausible below `start`."""
        while True:
            if key not in self.sequences:
                self.sequences[key] = self.rng.randint(1, start)
            n = self.sequences[key] + self.rng.randint(1, 12)
            if n >= limit:
                raise RuntimeError(f"demo numbering for {key} exceeded {limit}: too many rows for one year")
            self.sequences[key] = n
            value = str(render(n))
            if value not in reserved:
                return value

    def when(self, day: date) -> datetime:
        """A moment in office hours on the working day nearest `day`, stored in UTC."""
        if day.weekday() == 5:
            day -= timedelta(days=1)
        elif day.weekday() == 6:
            day += timedelta(days=1) if day < AS_OF else timedelta(days=-2)
        hour, minute = self.rng.randint(9, 16), self.rng.randrange(60)
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)

    def certificate(self, kind: str, year: int, district: str) -> str:
        place = DISTRICT_BY_CODE[district].name
        return self.sequence(
            (kind, str(year), district),
            limit=8_000_000,
            start=60_000,
            reserved=FIXED_CERTIFICATES,
            render=lambda n: format_certificate_number(year=year, place=place, kind=kind, sequence=n),
        )

    # -- rows --

    def person(self, *, name: str, id_number: str, phone: str | None) -> int:
        """A person row as the register keeps it: ID number and phone encrypted, each with its blind
        index; no birth date, sex or mask (Person's docstring says why)."""
        pk = self.pk(Person)
        self.row(
            Person,
            id=pk,
            name=name,
            id_number_enc=self.vault.encrypt(id_number),
            id_number_index=self.vault.blind_index(id_number),
            phone_enc=self.vault.encrypt_phone(phone) if phone else None,
            phone_index=self.vault.phone_index(phone) if phone else None,
        )
        return pk

    def unit(self, *, number: str, district: str, address: str, use: str, area: Decimal) -> int:
        pk = self.pk(RealEstateUnit)
        self.row(
            RealEstateUnit,
            id=pk,
            unit_number=number,
            district_code=district,
            address=address,
            use=use,
            area_m2=area,
        )
        return pk

    def right(
        self,
        *,
        unit: int,
        district: str,
        registered: datetime,
        certificate: str | None = None,
        persons: Sequence[tuple[int, Decimal]] = (),
        organisation: int | None = None,
        co_ownership: str = "sole",
        ended: datetime | None = None,
    ) -> int:
        pk = self.pk(Right)
        self.row(
            Right,
            id=pk,
            certificate_number=certificate or self.certificate("right", registered.year, district),
            unit_id=unit,
            right_type="house_ownership",
            co_ownership=co_ownership,
            status="historical" if ended else "current",
            registered_at=registered,
            ended_at=ended,
            district_code=district,
        )
        for person, share in persons:
            self.row(RightHolder, id=self.pk(RightHolder), right_id=pk, person_id=person, share=share)
        if organisation is not None:
            self.row(RightHolder, id=self.pk(RightHolder), right_id=pk, organisation_id=organisation, share=1)
        return pk

    def mortgage(
        self,
        *,
        right: int,
        district: str,
        bank: int,
        amount_fen: int,
        start: date,
        years: int,
        cancelled: date | None,
        certificate: str | None = None,
        registered: datetime | None = None,
    ) -> None:
        registered = registered or self.when(start)
        start = registered.astimezone(SHANGHAI).date()  # the term runs from the registration day
        self.row(
            Mortgage,
            id=self.pk(Mortgage),
            certificate_number=certificate or self.certificate("registration", start.year, district),
            right_id=right,
            mortgagee_id=bank,
            amount_fen=amount_fen,
            term_start=start,
            term_end=years_after(start, years) - timedelta(days=1),
            status="cancelled" if cancelled else "active",
            registered_at=registered,
            cancelled_at=self.when(cancelled) if cancelled else None,
        )

    def case(
        self,
        *,
        unit: int,
        right: int | None,
        district: str,
        kind: str,
        state: str,
        applied: date,
        reason: str | None = None,
    ) -> None:
        number = self.sequence(
            ("case", str(applied.year), district),
            limit=10_000_000,
            render=lambda n: f"{applied.year}{district}{n:07d}",
        )
        self.row(
            RegistrationCase,
            id=self.pk(RegistrationCase),
            case_number=number,
            unit_id=unit,
            right_id=right,
            kind=kind,
            state=state,
            reason=reason,
            applied_at=self.when(applied),
        )
