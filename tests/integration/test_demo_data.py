"""The demo register (demo/) on fresh SQLite files built by the real migrations: what
docs/demo.md promises about the demo identities holds, the data is valid, repeatable and idempotent,
and no ID number is stored in plain text."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from tortoise.context import TortoiseContext

from config.settings import Settings, tortoise_config
from demo import (
    DISTRICTS,
    DemoIdentities,
    civil_registry_dataset,
    civil_registry_dataset_from_db,
    seed_demo_data,
)
from demo.identities import DEMO_DEVELOPER, FIXED_PERSONS, FIXED_UNITS
from integrations.banks import BankConfig, load_banks
from services.db import apply_migrations
from services.identifiers import (
    age_on,
    birth_date_of,
    gender_of,
    normalise_credit_code,
    normalise_id_number,
    parse_certificate_number,
    parse_unit_number,
)
from services.identity.models import ApiClient, StaffUser
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
from tests import factories
from tests.support.tortoise_state import queries_given_back

SEED = 20261129
PERSONS, UNITS = 2000, 3000
DISTRICT_NAMES = {d.code: d.name for d in DISTRICTS}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "demo.md"


@dataclass
class Seeded:
    path: Path
    identities: DemoIdentities
    banks: list[BankConfig]


@pytest.fixture(scope="module")
def demo_vault() -> PiiVault:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return PiiVault(
        key_b64=settings.pii_key.get_secret_value(),
        blind_index_key=settings.blind_index_key.get_secret_value(),
    )


@pytest.fixture(scope="module", autouse=True)
async def _queries_back_on_the_app_database(app: Any) -> AsyncIterator[None]:
    """This module's SQLite contexts must not leave their queries to the session app's database
    (tests/support/tortoise_state.py)."""
    async with queries_given_back(app):
        yield


@pytest.fixture(scope="module")
async def seeded(tmp_path_factory: pytest.TempPathFactory, demo_vault: PiiVault) -> AsyncIterator[Seeded]:
    """A fresh SQLite register built by the real migrations, seeded once for the module.

    Tortoise is bound to this fixture's context (pytest-asyncio carries it to the tests), not to
    the process-wide fallback `open_database` sets: the session app of tests/conftest.py may hold
    that one, and only one can exist."""
    path = tmp_path_factory.mktemp("demo") / "register.sqlite3"
    config = tortoise_config(f"sqlite://{path}")
    await apply_migrations(config)
    banks = load_banks(Settings(_env_file=None).banks_file)  # type: ignore[call-arg]
    ctx = TortoiseContext()
    with ctx:
        await ctx.init(config=config)
        try:
            identities = await seed_demo_data(
                vault=demo_vault, seed=SEED, persons=PERSONS, units=UNITS, banks=banks
            )
            yield Seeded(path, identities, banks)
        finally:
            await ctx.close_connections()


async def _fingerprint() -> dict[str, Any]:
    """What must not change between two seedings with one seed (ciphertexts aside)."""
    return {
        "persons": await Person.all()
        .order_by("id")
        .values_list("name", "id_number_index", "phone_index"),
        "units": await RealEstateUnit.all()
        .order_by("id")
        .values_list("unit_number", "address", "use", "area_m2"),
        "rights": await Right.all()
        .order_by("id")
        .values_list("certificate_number", "unit_id", "co_ownership", "status", "registered_at", "ended_at"),
        "holders": await RightHolder.all().order_by("id").values_list("right_id", "person_id", "share"),
        "mortgages": await Mortgage.all()
        .order_by("id")
        .values_list("certificate_number", "amount_fen", "status"),
        "encumbrances": await Encumbrance.all()
        .order_by("id")
        .values_list("kind", "document_number", "status"),
        "cases": await RegistrationCase.all().order_by("id").values_list("case_number", "kind", "state"),
    }


async def _counts() -> dict[str, int]:
    models = (Person, RealEstateUnit, Right, RightHolder, Mortgage, Encumbrance, RegistrationCase, Office)
    return {m.__name__: await m.all().count() for m in (*models, Organisation, StaffUser, ApiClient)}


async def _current_rights_of(person: Person) -> list[Right]:
    return await Right.filter(holders__person_id=person.id, status="current").distinct()


async def _person(vault: PiiVault, id_number: str) -> Person:
    return await Person.get(id_number_index=vault.blind_index(id_number))


# --- repeatable and idempotent ---------------------------------------------------------------------


async def test_seeding_again_writes_nothing(seeded: Seeded, demo_vault: PiiVault) -> None:
    before = await _counts()
    again = await seed_demo_data(vault=demo_vault, seed=SEED + 1, persons=10, units=10, banks=seeded.banks)
    assert await _counts() == before
    assert again == seeded.identities


async def test_the_same_seed_gives_the_same_register(
    seeded: Seeded, demo_vault: PiiVault, tmp_path: Path
) -> None:
    first = await _fingerprint()
    config = tortoise_config(f"sqlite://{tmp_path / 'again.sqlite3'}")
    await apply_migrations(config)
    ctx = TortoiseContext()  # a second database next to the module's, for this task only
    with ctx:
        await ctx.init(config=config)
        try:
            await seed_demo_data(
                vault=demo_vault, seed=SEED, persons=PERSONS, units=UNITS, banks=seeded.banks
            )
            second = await _fingerprint()
        finally:
            await ctx.close_connections()
    assert second == first
    assert len(first["rights"]) > UNITS  # with history


def test_another_seed_gives_other_people() -> None:
    one = civil_registry_dataset(seed=1, persons=50)
    other = civil_registry_dataset(seed=2, persons=50)
    assert len(one.people) == len(other.people) == 50 + len(FIXED_PERSONS)
    generated = slice(len(FIXED_PERSONS), None)
    assert {p["id_number"] for p in one.people[generated]}.isdisjoint(
        p["id_number"] for p in other.people[generated]
    )
    assert civil_registry_dataset(seed=1, persons=50) == one


# --- valid identifiers -------------------------------------------------------------------------------


async def test_every_id_number_decrypts_validates_and_matches_its_row(
    seeded: Seeded, demo_vault: PiiVault
) -> None:
    codes = {d.code for d in DISTRICTS}
    persons = await Person.all()
    assert len(persons) == PERSONS + len(seeded.identities.citizens)
    for p in persons:
        id_number = normalise_id_number(demo_vault.decrypt(p.id_number_enc))
        assert p.id_number_index == demo_vault.blind_index(id_number)
        assert id_number[:6] in codes
        assert date(1940, 1, 1) <= birth_date_of(id_number) <= date(2020, 12, 31)
        assert gender_of(id_number) in ("M", "F")
    births = [birth_date_of(demo_vault.decrypt(p.id_number_enc)) for p in persons]
    assert min(births).year < 1945 and max(births).year >= 2019
    assert sum(age_on_date(b) < 18 for b in births) > 50  # minors exist
    phones = [demo_vault.decrypt_phone(p.phone_enc) for p in persons if p.phone_enc]
    assert len(phones) == len(set(phones)) and all(re.fullmatch(r"1[3-9]\d{9}", ph) for ph in phones)
    for p in persons:
        if p.phone_enc:
            assert p.phone_index == demo_vault.phone_index(demo_vault.decrypt_phone(p.phone_enc))
    assert len({p.name[0] for p in persons}) > 30
    assert any(p.name[:2] in ("欧阳", "司马", "诸葛", "上官", "东方") for p in persons)


def age_on_date(born: date) -> int:
    today = date.today()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


async def test_units_offices_and_certificates_are_well_formed_in_every_district(seeded: Seeded) -> None:
    units = await RealEstateUnit.all()
    assert len(units) == UNITS + len(FIXED_UNITS) + 1  # the demo developer's parcel
    assert not {u.unit_number for u in units} & set(DEMO_DEVELOPER.unit_numbers)  # ready, not registered
    for u in units:
        parsed = parse_unit_number(u.unit_number)
        assert parsed.county_code == u.district_code
        assert u.address.startswith("上海市" + DISTRICT_NAMES[u.district_code])
        assert u.area_m2 > 0
    assert {u.district_code for u in units} == set(DISTRICT_NAMES)
    assert Counter(u.use for u in units).keys() >= {"residential", "commercial", "office", "parking"}
    offices = await Office.all()
    assert {o.district_code for o in offices} == set(DISTRICT_NAMES)
    assert sum(o.district_code == "310115" for o in offices) == 2
    assert all(re.fullmatch(r"OFF-\d{6}-\d{2}", o.code) and o.code[4:10] == o.district_code for o in offices)

    for number, district in await Right.all().values_list("certificate_number", "district_code"):
        cert = parse_certificate_number(number)
        assert (cert.kind, cert.place) == ("right", DISTRICT_NAMES[district]) and str(cert) == number
    for number, district in await Mortgage.all().values_list("certificate_number", "right__district_code"):
        cert = parse_certificate_number(number)
        assert (cert.kind, cert.place) == ("registration", DISTRICT_NAMES[district]) and str(cert) == number


async def test_organisations_are_the_configured_banks_and_valid_companies(seeded: Seeded) -> None:
    orgs = await Organisation.all()
    for org in orgs:
        assert normalise_credit_code(org.credit_code) == org.credit_code
    banks = {o.bank_code: o for o in orgs if o.kind == "bank"}
    assert {b.code: b.uscc for b in seeded.banks} == {code: o.credit_code for code, o in banks.items()}
    companies = [o for o in orgs if o.kind == "company"]
    assert len(companies) >= 5
    held = await RightHolder.filter(organisation_id__in=[c.id for c in companies]).values_list(
        "right__unit__use"
    )
    assert {use for (use,) in held} & {"commercial", "office"}


# --- the shape of the register -----------------------------------------------------------------------


async def test_rights_are_sole_joint_or_shares_and_their_shares_add_up(seeded: Seeded) -> None:
    shares: dict[int, list[Decimal]] = defaultdict(list)
    for right_id, share in await RightHolder.all().values_list("right_id", "share"):
        shares[right_id].append(Decimal(share))
    rights = await Right.all().values_list("id", "co_ownership", "status", "ended_at", "unit_id")
    kinds: Counter[str] = Counter()
    for right_id, co_ownership, status, ended_at, _ in rights:
        held = shares[right_id]
        assert sum(held) == 1, right_id
        assert (len(held) == 1) == (co_ownership == "sole")
        assert (status == "historical") == (ended_at is not None)
        kinds[co_ownership] += status == "current"
    assert kinds["joint"] > 100 and kinds["shares"] > 100
    current_per_unit = Counter(unit for _, _, status, _, unit in rights if status == "current")
    assert set(current_per_unit.values()) == {1}
    assert sum(status == "historical" for _, _, status, _, _ in rights) > 300


async def test_mortgages_encumbrances_and_cases_cover_the_states(seeded: Seeded) -> None:
    mortgages = await Mortgage.all().values_list("status", "cancelled_at", "mortgagee__kind", "amount_fen")
    assert {s for s, *_ in mortgages} == {"active", "cancelled"}
    assert all((s == "cancelled") == (c is not None) and k == "bank" and a > 0 for s, c, k, a in mortgages)
    encumbrances = set(await Encumbrance.all().values_list("kind", "status"))
    assert ("seizure", "active") in encumbrances and ("objection", "active") in encumbrances
    courts = [e.authority for e in await Encumbrance.filter(kind="seizure")]
    assert all(court.startswith("上海市") and court.endswith("人民法院") for court in courts)
    states = set(await RegistrationCase.all().values_list("state", flat=True))
    assert {"applied", "reviewing", "issued"} <= states and states & {"not_accepted", "refused"}
    refused = await RegistrationCase.filter(state__in=["not_accepted", "refused"])
    assert all(case.reason for case in refused)


# --- the documented identities -----------------------------------------------------------------------


async def test_the_owner_has_several_homes_in_two_districts_one_mortgaged_one_joint(
    seeded: Seeded, demo_vault: PiiVault
) -> None:
    owner = await _person(demo_vault, seeded.identities.citizen("owner").id_number)
    spouse = await _person(demo_vault, seeded.identities.citizen("spouse").id_number)
    rights = await _current_rights_of(owner)
    assert len(rights) >= 2 and len({r.district_code for r in rights}) >= 2
    assert await Mortgage.filter(right_id__in=[r.id for r in rights], status="active").count() == 1
    joint = [r for r in rights if r.co_ownership == "joint"]
    assert joint and await RightHolder.filter(right_id=joint[0].id, person_id=spouse.id).exists()
    assert demo_vault.decrypt_phone(owner.phone_enc) == seeded.identities.citizen("owner").phone


async def test_the_no_housing_citizen_holds_nothing(seeded: Seeded, demo_vault: PiiVault) -> None:
    citizen = await _person(demo_vault, seeded.identities.citizen("no_housing").id_number)
    assert not await RightHolder.filter(person_id=citizen.id).exists()


async def test_the_minor_holds_rights_and_both_parents_are_guardians(
    seeded: Seeded, demo_vault: PiiVault
) -> None:
    ids = seeded.identities
    child = ids.citizen("child")
    assert age_on(child.id_number, date.today()) < 18
    assert await _current_rights_of(await _person(demo_vault, child.id_number))
    dataset = civil_registry_dataset(seed=SEED, persons=PERSONS)
    guardians = {(g, rel) for g, w, rel in dataset.guardianships if w == child.id_number}
    assert guardians == {
        (ids.citizen("guardian").id_number, "mother"),
        (ids.citizen("second_guardian").id_number, "father"),
    }
    for key in ("guardian", "second_guardian"):
        assert await _current_rights_of(await _person(demo_vault, ids.citizen(key).id_number))


async def test_the_civil_registry_knows_exactly_the_seeded_people(
    seeded: Seeded, demo_vault: PiiVault
) -> None:
    dataset = civil_registry_dataset(seed=SEED, persons=PERSONS)
    assert await civil_registry_dataset_from_db(vault=demo_vault, seed=SEED) == dataset
    indexes = set(await Person.all().values_list("id_number_index", flat=True))
    assert {demo_vault.blind_index(p["id_number"]) for p in dataset.people} == indexes
    people = {p["id_number"]: p for p in dataset.people}
    assert len(dataset.guardianships) > 50
    for guardian, ward, relation in dataset.guardianships:
        assert people[guardian]["household_id"] == people[ward]["household_id"]
        assert age_on(ward, date(2026, 11, 20)) < 18 <= age_on(guardian, date(2026, 11, 20))
        assert relation == {"male": "father", "female": "mother"}[people[guardian]["gender"]]
    assert any(not p["alive"] for p in dataset.people)


async def test_staff_and_bank_clients_sign_in_with_the_documented_secrets(seeded: Seeded) -> None:
    hasher = PasswordHasher()
    for staff in seeded.identities.staff:
        row = await StaffUser.get(username=staff.username)
        assert hasher.verify(row.password_hash, staff.password)
        assert (row.role, row.office_code) == (staff.role, staff.office_code)
        if staff.office_code:
            assert await Office.filter(code=staff.office_code).exists()
    clerk = await StaffUser.get(username="clerk.pudong")
    assert (await Office.get(code=clerk.office_code or "")).district_code == "310115"
    assert {s.username for s in seeded.identities.staff} >= {"clerk.pudong", "admin"}
    for bank in seeded.identities.banks:
        client = await ApiClient.get(client_id=bank.client_id)
        assert hasher.verify(client.secret_hash, bank.client_secret)
        org = await Organisation.get(id=client.organisation_id)
        assert (org.kind, org.bank_code, client.bank_code) == ("bank", bank.bank_code, bank.bank_code)
        assert client.scopes.split() == list(bank.scopes)


async def test_docs_show_the_current_identities(seeded: Seeded) -> None:
    assert seeded.identities.as_markdown() in DOCS.read_text(encoding="utf-8")
    text = seeded.identities.as_text()
    assert "clerk.pudong" in text and seeded.identities.citizen("owner").id_number in text


# --- personal data at rest ---------------------------------------------------------------------------


async def test_no_plaintext_id_number_in_the_database_file(seeded: Seeded, demo_vault: PiiVault) -> None:
    plain = {demo_vault.decrypt(p.id_number_enc) for p in await Person.all()}
    stored = b"".join(p.read_bytes() for p in seeded.path.parent.glob(seeded.path.name + "*"))
    found = {m.decode() for m in re.findall(rb"\d{17}[\dX]", stored)}
    assert len(stored) > 100_000 and not found & plain
    assert all(number.encode() not in stored for number in (c.id_number for c in seeded.identities.citizens))


# --- the factories share the database with the demo data --------------------------------------------


async def test_factories_make_valid_rows_that_do_not_collide_with_the_demo(
    seeded: Seeded, demo_vault: PiiVault
) -> None:
    minor_id = factories.make_id_number(birth_date=date(2015, 6, 1))
    child = await factories.create_person(vault=demo_vault, id_number=minor_id)
    parent = await factories.create_person(vault=demo_vault)
    assert factories.id_number_of(child, vault=demo_vault) == minor_id == normalise_id_number(minor_id)
    right = await factories.create_right(holders=[(parent, "0.5"), (child, "0.5")], district_code="310104")
    assert right.co_ownership == "shares" and right.district_code == "310104"
    assert parse_certificate_number(right.certificate_number).place == "徐汇区"
    mortgage = await factories.create_mortgage(right=right)
    await factories.create_encumbrance(right=right, kind="objection")
    await factories.create_case(right=right, state="reviewing")
    staff = await factories.create_staff()
    assert PasswordHasher().verify(staff.password_hash, factories.DEFAULT_STAFF_PASSWORD)
    await factories.create_api_client()
    historical = await factories.create_right(status="historical")
    assert historical.ended_at is not None
    parse_unit_number(factories.make_unit_number(fixture="W"))
    assert normalise_credit_code(factories.make_credit_code())
    numbers = [factories.make_id_number(birth_date=date(1990, 1, 1)) for _ in range(60)]
    assert len(set(numbers)) == 60 and all(normalise_id_number(n) for n in numbers)
    assert (await Mortgage.get(id=mortgage.id)).status == "active"
