"""Revocation across a cryptography-profile switch (issue 16): a household member known only to the
civil registry when a certificate was issued keeps the index of the old profile (the switch cannot
recompute it), and revocation still finds them by that legacy index once they acquire housing.
Each test runs on a database of its own built by the real migrations (SQLite, or a scratch
PostgreSQL database with TEST_DATABASE_URL), since a switch changes the whole database."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from integrations.civil_registry.base import HouseholdMember, Relation
from services.certificates.eligibility import subjects_for
from services.certificates.models import ISSUED, REVOKED, Certificate, CertificateSubject
from services.certificates.revocation import legacy_profile
from services.clock import AdjustableClock
from services.crypto import switch
from services.kv import MemoryStore
from services.pii import PiiVault
from services.registry.changes import register_transfer
from services.registry.models import Person
from tests import factories
from tests.support.profile_databases import international_vault, migrated_database
from tests.support.tortoise_state import queries_given_back


@pytest.fixture(scope="module")
def intl() -> PiiVault:
    return international_vault()


@pytest.fixture(scope="module", autouse=True)
async def _queries_back_on_the_app_database(app: Any) -> AsyncIterator[None]:
    """As tests/integration/test_national_profile.py: this module's own databases must not leave
    their queries to the session app's database."""
    async with queries_given_back(app):
        yield


@pytest.fixture
async def database(tmp_path_factory: pytest.TempPathFactory, intl: PiiVault) -> AsyncIterator[None]:
    """A fresh database for each test, migrated under the international profile."""
    async with migrated_database(tmp_path_factory, intl, prefix="estate_legacy"):
        yield


class _Registry:
    """The civil registry's household answer, as `subjects_for` asks for it."""

    def __init__(self, members: Sequence[HouseholdMember]) -> None:
        self.members = list(members)

    async def get_household(self, id_number: str) -> list[HouseholdMember]:
        return self.members


async def _issue_for_household(
    vault: PiiVault, clock: AdjustableClock, holder: Person, members: Sequence[HouseholdMember]
) -> Certificate:
    """A purchase certificate as issuance writes it: its subjects from the real household rule
    (services/certificates/eligibility.py), indexed by `vault`."""
    holder_number = vault.decrypt(holder.id_number_enc)
    subjects = await subjects_for(
        id_number=holder_number,
        name=holder.name,
        counts_household=True,
        civil_registry=_Registry(members),  # type: ignore[arg-type]
        vault=vault,
        today=clock.now().date(),
    )
    now = clock.now()
    cert = await Certificate.create(
        serial=f"WF{secrets.token_hex(6).upper()}",
        cert_type="no-housing",
        purpose="purchase",
        household_rule="household",
        person=holder,
        as_of=now,
        issued_at=now,
        valid_until=now + timedelta(days=30),
        status=ISSUED,
        kid="k",
        token="t",
    )
    await CertificateSubject.bulk_create(
        [
            CertificateSubject(certificate_id=cert.id, id_number_index=s.id_number_index, relation=s.relation)
            for s in subjects
        ]
    )
    return cert


async def _household_certificate(vault: PiiVault, clock: AdjustableClock) -> tuple[Certificate, str]:
    """A certificate counting the holder (head) and a spouse who has no person row and no
    guardianship link: known only to the civil registry. Returns it and the spouse's number."""
    holder_number = factories.make_id_number(birth_date=date(1988, 4, 2))
    holder = await factories.create_person(vault=vault, id_number=holder_number, name="赵磊")
    spouse_number = factories.make_id_number(birth_date=date(1990, 7, 9))
    cert = await _issue_for_household(
        vault,
        clock,
        holder,
        [
            HouseholdMember(id_number=holder_number, name="赵磊", relation=Relation.HEAD),
            HouseholdMember(id_number=spouse_number, name="钱芳", relation=Relation.SPOUSE),
        ],
    )
    assert not await Person.filter(id_number_index=vault.blind_index(spouse_number)).exists()
    return cert, spouse_number


async def _acquires_housing(vault: PiiVault, clock: AdjustableClock, id_number: str) -> list[str]:
    """The member gets a person row (as a transfer's buyer does, services/cases/transfers.py) and a
    residential right by a transfer registration, given the vault as the case workflow gives it;
    the serials it revoked."""
    person = await factories.create_person(vault=vault, id_number=id_number, phone=None)
    right = await factories.create_right(vault=vault)
    before = set(await Certificate.filter(status=REVOKED).values_list("serial", flat=True))
    await register_transfer(
        right_id=right.id,
        new_holders=[(person.id, "1")],
        certificate_number=factories.make_certificate_number(),
        kv=MemoryStore(),
        clock=clock,
        vault=vault,
    )
    return sorted(set(await Certificate.filter(status=REVOKED).values_list("serial", flat=True)) - before)


async def test_a_member_the_switch_could_not_recompute_still_loses_the_certificate(
    database: None, intl: PiiVault, clock: AdjustableClock
) -> None:
    cert, spouse_number = await _household_certificate(intl, clock)
    national = intl.with_profile("national")
    done = await switch.switch_profile(vault=national, now=clock.now)
    assert done.complete and done.unmapped_subjects == 1
    async with in_transaction() as conn:
        assert await legacy_profile(conn) == "international"
    # The spouse's subject row still holds the international index: the current one cannot find it.
    subjects = set(
        await CertificateSubject.filter(certificate_id=cert.id).values_list("id_number_index", flat=True)
    )
    assert intl.blind_index(spouse_number) in subjects
    assert national.blind_index(spouse_number) not in subjects

    revoked = await _acquires_housing(national, clock, spouse_number)

    assert revoked == [cert.serial]
    assert (await Certificate.get(id=cert.id)).status == REVOKED


async def test_a_database_switched_back_finds_members_left_by_either_switch(
    database: None, intl: PiiVault, clock: AdjustableClock
) -> None:
    national = intl.with_profile("national")
    first, first_spouse = await _household_certificate(intl, clock)  # left international
    assert (await switch.switch_profile(vault=national, now=clock.now)).unmapped_subjects == 1
    second, second_spouse = await _household_certificate(national, clock)  # left national
    back = await switch.switch_profile(vault=intl, now=clock.now)
    assert back.complete and back.unmapped_subjects == 2
    async with in_transaction() as conn:
        assert await legacy_profile(conn) == "national"

    assert await _acquires_housing(intl, clock, first_spouse) == [first.serial]  # the current index
    assert await _acquires_housing(intl, clock, second_spouse) == [second.serial]  # the legacy one


async def test_with_no_switch_recorded_only_the_current_index_is_matched(
    database: None, intl: PiiVault, clock: AdjustableClock
) -> None:
    holder = await factories.create_person(vault=intl, name="孙丽")
    member_number = factories.make_id_number()
    cert = await _issue_for_household(intl, clock, holder, [])
    # A subject whose index happens to be what the member's number would have under the other
    # profile: with no switch it can only be someone else's, and must not be matched.
    await CertificateSubject.create(
        certificate=cert,
        id_number_index=intl.blind_index(member_number, profile="national"),
        relation="child",
    )

    assert await _acquires_housing(intl, clock, member_number) == []
    assert (await Certificate.get(id=cert.id)).status == ISSUED
    async with in_transaction() as conn:
        assert await legacy_profile(conn) is None
