"""`seed_demo_data`: the demo register in one transaction, with the fixed identities, the generated
households and their property, and the sign-in accounts of staff and banks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

from argon2 import PasswordHasher
from tortoise.transactions import in_transaction

from demo.generated import GeneratedRegister
from demo.identities import (
    DEMO_DEVELOPER,
    FIXED_PERSONS,
    FIXED_STAFF,
    FIXED_UNITS,
    DemoBank,
    DemoIdentities,
    demo_identities,
)
from demo.places import SHANGHAI
from demo.schedules import write_schedules
from demo.writer import advance_sequences
from services.appointments.slots import release_due_slots
from services.clock import Clock
from services.identity.models import ApiClient, StaffUser
from services.pii import PiiVault
from services.registry.models import Organisation, Person, Right, RightHolder


async def seed_demo_data(
    *,
    vault: PiiVault,
    seed: int,
    persons: int = 2000,
    units: int = 3000,
    banks: Sequence[DemoBank],
    batch_size: int = 5000,
    clock: Clock | None = None,
) -> DemoIdentities:
    """Write the demo register in one transaction; a no-op when the fixed identities are already there
    (whatever the seed or sizes were then). Mortgages go to `banks`; none are created without banks.
    The offices' timetables and slot templates (demo/schedules.py) are added where missing, and
    with a `clock` the slots due by its "now" are released, so the demo shows free slots at once
    (slots depend on the day the demo runs; the register does not)."""
    if persons < 0 or units < 0 or batch_size < 1:
        raise ValueError("persons and units cannot be negative, batch_size must be positive")
    identities = demo_identities(banks)
    marker = vault.blind_index(FIXED_PERSONS[0].id_number)
    async with in_transaction() as conn:
        if not await Person.filter(id_number_index=marker).using_db(conn).exists():
            seeder = _Seeder(conn=conn, vault=vault, seed=seed, batch_size=batch_size)
            await seeder.prepare(banks)
            await seeder.write_fixed()
            await seeder.write_developer()
            await seeder.write_generated(persons=persons, units=units)
            await seeder.write_accounts(banks)
            await advance_sequences(conn)
        await write_schedules(conn)
    if clock is not None:
        await release_due_slots(now=clock.now())
    return identities


class _Seeder(GeneratedRegister):
    """Adds what is the same for every seed: the rows of the fixed identities, and the accounts."""

    developer_pk: int | None = None  # the demo developer's organisation, once written

    # -- the fixed identities --

    async def write_fixed(self) -> None:
        pks = {p.key: self.person(name=p.name, id_number=p.id_number, phone=p.phone) for p in FIXED_PERSONS}
        for u in FIXED_UNITS:
            district = u.unit_number[:6]
            unit = self.unit(
                number=u.unit_number, district=district, address=u.address, use=u.use, area=Decimal(u.area_m2)
            )
            right = 0
            for r in u.rights:
                right = self.right(
                    unit=unit,
                    district=district,
                    registered=_at_ten(r.registered),
                    certificate=r.certificate,
                    persons=[(pks[key], Decimal(share)) for key, share in r.holders],
                    co_ownership=r.co_ownership,
                    ended=_at_ten(r.ended) if r.ended else None,
                )
            for m in u.mortgages:
                if self.bank_pks:
                    self.mortgage(
                        right=right,
                        district=district,
                        bank=self.bank_pks[m.bank_index % len(self.bank_pks)],
                        amount_fen=m.amount_fen,
                        start=m.term_start,
                        years=m.years,
                        cancelled=m.cancelled,
                        certificate=m.certificate,
                        registered=_at_ten(m.term_start),
                    )
        await self.flush()

    async def write_developer(self) -> None:
        """The demo developer and its parcel's land-use right; the building's units stay out of the
        register until the demo's first registration."""
        d = DEMO_DEVELOPER
        org = await Organisation.get_or_none(credit_code=d.credit_code, using_db=self.conn)
        if org is None:
            org = await Organisation.create(
                name=d.name, credit_code=d.credit_code, kind="developer", using_db=self.conn
            )
        self.developer_pk = int(org.id)
        district = d.parcel_unit_number[:6]
        unit = self.unit(
            number=d.parcel_unit_number,
            district=district,
            address=d.parcel_address,
            use="residential",
            area=Decimal("5200.00"),
        )
        right = self.pk(Right)
        self.add(
            Right(
                id=right,
                certificate_number=d.land_certificate,
                unit_id=unit,
                right_type="land_use",
                co_ownership="sole",
                status="current",
                registered_at=_at_ten(date(2024, 3, 18)),
                district_code=district,
            )
        )
        self.add(RightHolder(id=self.pk(RightHolder), right_id=right, organisation_id=org.id, share=1))
        await self.flush()

    # -- accounts --

    async def write_accounts(self, banks: Sequence[DemoBank]) -> None:
        staff_have = set(await StaffUser.all().using_db(self.conn).values_list("username", flat=True))
        clients_have = set(await ApiClient.all().using_db(self.conn).values_list("client_id", flat=True))
        staff = [s for s in FIXED_STAFF if s.username not in staff_have]
        clients = [
            (b, org) for b, org in zip(banks, self.bank_pks, strict=True) if b.client_id not in clients_have
        ]
        # argon2 is slow (and takes 64 MiB) on purpose: one worker thread keeps the loop free.
        hasher = PasswordHasher()
        secrets = [s.password for s in staff] + [b.client_secret for b, _ in clients]
        hashes = await asyncio.to_thread(lambda: [hasher.hash(secret) for secret in secrets])
        developer = self.developer_pk
        for s, password_hash in zip(staff, hashes, strict=False):
            await StaffUser.create(
                username=s.username,
                display_name=s.display_name,
                password_hash=password_hash,
                role=s.role,
                office_code=s.office_code,
                organisation_id=developer if s.username == DEMO_DEVELOPER.staff_username else None,
                using_db=self.conn,
            )
        for (bank, org), secret_hash in zip(clients, hashes[len(staff) :], strict=True):
            await ApiClient.create(
                client_id=bank.client_id,
                secret_hash=secret_hash,
                organisation_id=org,
                bank_code=bank.code,
                scopes=" ".join(bank.scopes),
                using_db=self.conn,
            )
        if developer is not None and DEMO_DEVELOPER.client_id not in clients_have:
            d = DEMO_DEVELOPER
            await ApiClient.create(
                client_id=d.client_id,
                secret_hash=await asyncio.to_thread(hasher.hash, d.client_secret),
                organisation_id=developer,
                role="organisation",
                bank_code=None,
                scopes=" ".join(d.scopes),
                using_db=self.conn,
            )


def _at_ten(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 10, tzinfo=SHANGHAI).astimezone(UTC)
