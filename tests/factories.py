"""Plain async factories for tests: `await create_person(name="张三")`, `await create_right(holders=...)`.

Every call makes new, valid and unique values, because tests share one database per session. The
values come from ranges the demo data never uses (demo/ lists them): ID-number
sequences 800-899, phones 170xxxxxxxx, cadastral district 900 in unit numbers, certificate
sequences from 9,000,000, case numbers starting with "T". Uniqueness holds within one process.

ID numbers and phones are stored as the register stores them (encrypted, with a blind index), so
pass your own `id_number=make_id_number(...)` / `phone=make_phone()` when the test needs the plain
value, or read it back with `id_number_of` / `phone_of`.

This is the only home of entity factories; tests/integration/citizen_support.py holds the sign-in,
SMS and date helpers of the HTTP tests and creates no rows.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from argon2 import PasswordHasher

from config.settings import Settings
from demo import DISTRICTS, credit_code
from services.identifiers import format_certificate_number, id_check_char
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

DEFAULT_STAFF_PASSWORD = "Test-Clerk-Password-1"
DEFAULT_CLIENT_SECRET = "test-bank-client-secret-0123456789"
REGISTERED_AT = datetime(2024, 5, 6, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai: a fixed default, not "now"

_DISTRICT_NAMES = {d.code: d.name for d in DISTRICTS}
_SURNAMES = "张王李赵陈刘杨黄周吴徐孙朱马胡郭林何高罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
_counter = itertools.count(1)
_id_slots: dict[tuple[str, date, bool], int] = {}
# Cheap parameters: a test suite hashes many passwords. argon2 verifies with the parameters stored
# in the hash, so services/auth.py accepts these as it accepts its own.
_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def _next() -> int:
    return next(_counter)


_session_vault: list[PiiVault] = []


def set_default_vault(vault: PiiVault) -> None:
    """Make `vault` (the test session's, built from its own random keys) the factories' default."""
    _session_vault[:] = [vault]


def default_vault() -> PiiVault:
    """The vault set by `set_default_vault`, else one on the development keys. Pass `vault=` to be
    sure: rows written with a vault the app does not have cannot be read by it."""
    return _session_vault[0] if _session_vault else _development_vault()


@functools.cache
def _development_vault() -> PiiVault:
    return PiiVault.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]


def id_number_of(person: Person, *, vault: PiiVault | None = None) -> str:
    return (vault or default_vault()).decrypt(person.id_number_enc)


def phone_of(person: Person, *, vault: PiiVault | None = None) -> str | None:
    return (vault or default_vault()).decrypt_phone(person.phone_enc) if person.phone_enc else None


# --- identifiers ----------------------------------------------------------------------------------


def make_id_number(
    *,
    birth_date: date | None = None,
    district_code: str = "310115",
    male: bool | None = None,
    sequence: int | None = None,
) -> str:
    """A valid GB 11643 number, unique among this process's calls unless `sequence` is forced.

    Without `birth_date` an adult's date is picked; 50 numbers per sex exist for one district and
    birth date, so ask for another `district_code` if a test needs more."""
    n = _next()
    if birth_date is None:
        birth_date = date(1960, 1, 1) + timedelta(days=n * 7919 % 16000)  # 1960-2003, spread out
    if male is None:
        male = n % 2 == 1
    if sequence is None:
        key = (district_code, birth_date, male)
        slot = _id_slots.get(key, 0)
        if slot >= 50:
            raise ValueError(f"no test ID numbers left for {district_code} born {birth_date}")
        _id_slots[key] = slot + 1
        sequence = 800 + 2 * slot + (1 if male else 0)
    first17 = f"{district_code}{birth_date:%Y%m%d}{sequence:03d}"
    return first17 + id_check_char(first17)


def make_phone() -> str:
    return f"170{_next():08d}"


def make_unit_number(*, district_code: str = "310115", fixture: str = "F") -> str:
    """A valid GB/T 37346 number: a building unit (`F`) or a bare parcel (`W`)."""
    n = _next()
    parcel = 1 + n % 99_999
    block = 1 + n // 99_999  # the sub-district, so the parcel sequence never wraps onto itself
    tail = f"F0001{1 + n % 9999:04d}" if fixture == "F" else "W00000000"
    return f"{district_code}900{block:03d}GB{parcel:05d}{tail}"


def make_certificate_number(*, kind: str = "right", year: int = 2024, district_code: str = "310115") -> str:
    return format_certificate_number(
        year=year, place=_DISTRICT_NAMES[district_code], kind=kind, sequence=9_000_000 + _next()
    )


def make_credit_code(*, district_code: str = "310115") -> str:
    return credit_code(district_code=district_code, organisation_code=f"TF{_next():06d}")


def _name(n: int) -> str:
    return _SURNAMES[n % len(_SURNAMES)] + _GIVEN[n * 7 % len(_GIVEN)] + _GIVEN[n * 11 % len(_GIVEN)]


# --- rows -----------------------------------------------------------------------------------------


async def create_person(
    *,
    vault: PiiVault | None = None,
    id_number: str | None = None,
    born: date | None = None,
    phone: str | bool | None = True,
    **overrides: Any,
) -> Person:
    """`born=` (or `birth_date=`), `gender=` ("M"/"F") and `district_code=` shape the generated ID
    number; none is stored (the ID number holds them). `phone=True` gives a new phone, `phone=None`
    (or False) none, a string that phone; read it back with `phone_of`."""
    vault = vault or default_vault()
    birth_date = overrides.pop("birth_date", None)
    born = born or birth_date
    gender = overrides.pop("gender", None)
    district_code = overrides.pop("district_code", "310115")
    if id_number is not None and (born is not None or gender is not None):
        raise TypeError("pass born=/gender= or id_number=, not both: the ID number holds them")
    if id_number is None:
        id_number = make_id_number(
            birth_date=born, district_code=district_code, male=None if gender is None else gender == "M"
        )
    number = make_phone() if phone is True else (phone or None)
    fields: dict[str, Any] = {
        "name": _name(_next()),
        "id_number_enc": vault.encrypt(id_number),
        "id_number_index": vault.blind_index(id_number),
        "phone_enc": vault.encrypt_phone(number) if number else None,
        "phone_index": vault.phone_index(number) if number else None,
    }
    fields.update(overrides)
    return await Person.create(**fields)


async def create_organisation(*, kind: str = "company", **overrides: Any) -> Organisation:
    n = _next()
    fields: dict[str, Any] = {
        "name": f"测试{'银行' if kind == 'bank' else '企业'}{n}有限公司",
        "credit_code": make_credit_code(),
        "kind": kind,
        "bank_code": f"test-bank-{n}" if kind == "bank" else None,
    }
    fields.update(overrides)
    return await Organisation.create(**fields)


async def create_office(*, district_code: str = "310115", **overrides: Any) -> Office:
    n = _next()
    name = _DISTRICT_NAMES[district_code]
    fields: dict[str, Any] = {
        "code": f"OFF-T{n:07d}",
        "district_code": district_code,
        "name": f"{name}不动产登记测试窗口{n}",
        "address": f"上海市{name}测试路{n}号",
    }
    fields.update(overrides)
    return await Office.create(**fields)


async def create_unit(*, district_code: str = "310115", **overrides: Any) -> RealEstateUnit:
    number = overrides.pop("unit_number", None) or make_unit_number(district_code=district_code)
    place = _DISTRICT_NAMES[district_code]
    fields: dict[str, Any] = {
        "unit_number": number,
        "district_code": district_code,
        "address": f"上海市{place}测试路{int(number[14:19])}弄1号{int(number[-4:]) or 1}室",
        "use": "residential",
        "area_m2": Decimal("88.50"),
    }
    fields.update(overrides)
    return await RealEstateUnit.create(**fields)


Holder = Person | Organisation


async def create_right(
    *,
    holders: Sequence[tuple[Holder, Decimal | int | float | str]] | None = None,
    district_code: str | None = None,
    status: str = "current",
    unit: RealEstateUnit | None = None,
    vault: PiiVault | None = None,
    **overrides: Any,
) -> Right:
    """A house-ownership right; by default on a new unit, held solely by a new person. Holders with
    several entries default to shares (按份共有); pass `co_ownership="joint"` for 共同共有."""
    unit = unit or await create_unit(district_code=district_code or "310115")
    district = district_code or unit.district_code
    if holders is None:
        holders = [(await create_person(vault=vault), 1)]
    registered_at = overrides.pop("registered_at", REGISTERED_AT)
    ended_at = overrides.pop(
        "ended_at", registered_at + timedelta(days=365) if status == "historical" else None
    )
    fields: dict[str, Any] = {
        "certificate_number": make_certificate_number(year=registered_at.year, district_code=district),
        "unit": unit,
        "right_type": "house_ownership",
        "co_ownership": "sole" if len(holders) == 1 else "shares",
        "status": status,
        "registered_at": registered_at,
        "ended_at": ended_at,
        "district_code": district,
    }
    fields.update(overrides)
    right = await Right.create(**fields)
    for holder, share in holders:
        await RightHolder.create(
            right=right,
            person=holder if isinstance(holder, Person) else None,
            organisation=holder if isinstance(holder, Organisation) else None,
            share=Decimal(str(share)),
        )
    return right


async def create_mortgage(
    *,
    right: Right | None = None,
    mortgagee: Organisation | None = None,
    status: str = "active",
    **overrides: Any,
) -> Mortgage:
    right = right or await create_right()
    mortgagee = mortgagee or await create_organisation(kind="bank")
    registered_at = overrides.pop("registered_at", right.registered_at + timedelta(days=3))
    term_start = registered_at.date()
    fields: dict[str, Any] = {
        "certificate_number": make_certificate_number(
            kind="registration", year=registered_at.year, district_code=right.district_code
        ),
        "right": right,
        "mortgagee": mortgagee,
        "amount_fen": 150_000_000,  # 1,500,000.00 yuan
        "term_start": term_start,
        "term_end": term_start.replace(year=term_start.year + 20) - timedelta(days=1),
        "status": status,
        "registered_at": registered_at,
        "cancelled_at": registered_at + timedelta(days=400) if status == "cancelled" else None,
    }
    fields.update(overrides)
    return await Mortgage.create(**fields)


async def create_encumbrance(
    *,
    right: Right | None = None,
    kind: str = "seizure",
    status: str = "active",
    **overrides: Any,
) -> Encumbrance:
    """A seizure (查封) by the district court, three years; or an objection (异议), fifteen days."""
    right = right or await create_right()
    n = _next()
    place = _DISTRICT_NAMES[right.district_code]
    registered_at = overrides.pop("registered_at", right.registered_at + timedelta(days=30))
    starts_on = registered_at.date()
    seizure = kind == "seizure"
    fields: dict[str, Any] = {
        "right": right,
        "kind": kind,
        "authority": f"上海市{place}人民法院" if seizure else f"{place}不动产登记事务中心",
        "document_number": (
            f"({starts_on.year})沪01{right.district_code[4:]}执保{900_000 + n}号"
            if seizure
            else make_certificate_number(
                kind="registration", year=starts_on.year, district_code=right.district_code
            )
        ),
        "starts_on": starts_on,
        "ends_on": starts_on + (timedelta(days=3 * 365) if seizure else timedelta(days=15)),
        "status": status,
        "registered_at": registered_at,
        "lifted_at": registered_at + timedelta(days=10) if status == "lifted" else None,
    }
    fields.update(overrides)
    return await Encumbrance.create(**fields)


async def create_case(
    *,
    unit: RealEstateUnit | None = None,
    right: Right | None = None,
    kind: str = "transfer",
    state: str = "applied",
    **overrides: Any,
) -> RegistrationCase:
    if unit is None:
        unit = await RealEstateUnit.get(rights__id=right.id) if right is not None else await create_unit()
    fields: dict[str, Any] = {
        "case_number": f"T{_next():012d}",
        "unit": unit,
        "right": right,
        "kind": kind,
        "state": state,
        "reason": None,
        "applied_at": REGISTERED_AT,
    }
    fields.update(overrides)
    return await RegistrationCase.create(**fields)


async def create_staff(
    *,
    password: str = DEFAULT_STAFF_PASSWORD,
    role: str = "clerk",
    office_code: str | None = "OFF-310115-01",
    **overrides: Any,
) -> StaffUser:
    n = _next()
    fields: dict[str, Any] = {
        "username": f"{role}.test{n}",
        "display_name": _name(n),
        "password_hash": _hasher.hash(password),
        "role": role,
        "office_code": office_code if role == "clerk" else None,
    }
    fields.update(overrides)
    return await StaffUser.create(**fields)


async def create_api_client(
    *,
    organisation: Organisation | None = None,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    scopes: Sequence[str] = ("mortgage:file", "mortgage:read"),
    **overrides: Any,
) -> ApiClient:
    organisation = organisation or await create_organisation(kind="bank")
    fields: dict[str, Any] = {
        "client_id": f"test-client-{_next()}",
        "secret_hash": _hasher.hash(client_secret),
        "organisation_id": organisation.id,
        "bank_code": organisation.bank_code or f"test-bank-{organisation.id}",
        "scopes": " ".join(scopes),
    }
    fields.update(overrides)
    return await ApiClient.create(**fields)
