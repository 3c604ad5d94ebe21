"""The real-estate register: the source of truth the citizen, guardian and bank features read;
its rows (the Tortoise models) and, at the end, the shapes its read model returns.

Personal data is stored encrypted with HMAC blind indexes for look-ups (services/pii.py); what a
person row keeps in clear, and why, is in `Person`'s docstring. Household and guardianship
relations are NOT stored here: they belong to the civil-registry system and are asked for when
needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field
from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class Person(Model):
    """A natural person in the register.

    Invariant: a copy of this table without the keys (a dump, a backup, a replica, a leaked
    SQLite file) does not narrow anyone's ID number below the space of every valid number of a
    plausible birth date and district (hundreds of millions), nor give away a phone.
    docs/decisions/0002-personal-data-at-rest.md records the decision and the threat it leaves out.

    Kept in clear, and why:
    - `name`: read on every property list, inbox and certificate; a name narrows no ID number.
    - `created_at`: when the row was written, not when the person was born.

    Encrypted (AES-GCM, `context` bound in) with a keyed blind index for look-ups:
    - `id_number_enc` / `id_number_index`: clerks and guardians find a person by ID number.
    - `phone_enc` / `phone_index`: a citizen signs in by phone (the index finds the row); alerts
      decrypt the phone when they are sent (the outbox payload carries `person_id`, not the phone).

    Not stored: birth date, sex and a masked ID number. The birth date and sex are digits of the
    ID number (`services.identifiers.birth_date_of`, `gender_of`) and a mask keeps the sequence and
    check digits, so next to a clear birth date it left two or three candidates per person. A
    feature that needs them decrypts the ID number and derives them (`services.identity.accounts`).
    """

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64)
    id_number_enc = fields.CharField(max_length=128)
    id_number_index = fields.CharField(max_length=64, unique=True)
    phone_enc = fields.CharField(max_length=128, null=True)
    phone_index = fields.CharField(max_length=64, null=True, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "person"


class Organisation(Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=128)
    credit_code = fields.CharField(max_length=18, unique=True)
    kind = fields.CharField(max_length=16, default="company")  # bank | company | developer | authority
    bank_code = fields.CharField(max_length=32, null=True, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "organisation"


# A registration service hall; 全市通办 means any office serves any district's property.
class Office(Model):
    code = fields.CharField(max_length=16, primary_key=True)
    district_code = fields.CharField(max_length=6, db_index=True)
    name = fields.CharField(max_length=64)
    address = fields.CharField(max_length=200)

    class Meta:
        table = "office"


class RealEstateUnit(Model):
    id = fields.BigIntField(primary_key=True)
    unit_number = fields.CharField(max_length=28, unique=True)
    district_code = fields.CharField(max_length=6, db_index=True)
    address = fields.CharField(max_length=200)
    use = fields.CharField(max_length=16)  # residential | commercial | office | industrial | parking
    area_m2 = fields.DecimalField(max_digits=10, decimal_places=2)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "real_estate_unit"


class Right(Model):
    id = fields.BigIntField(primary_key=True)
    certificate_number = fields.CharField(max_length=64, unique=True)
    unit: fields.ForeignKeyRelation[RealEstateUnit] = fields.ForeignKeyField(
        "models.RealEstateUnit", related_name="rights", on_delete=fields.RESTRICT
    )
    right_type = fields.CharField(max_length=32)  # house_ownership | land_use | ...
    co_ownership = fields.CharField(max_length=16, default="sole")  # sole | joint | shares
    status = fields.CharField(max_length=12, default="current")  # current | historical
    registered_at = fields.DatetimeField()
    ended_at = fields.DatetimeField(null=True)
    district_code = fields.CharField(max_length=6)

    class Meta:
        table = "right"
        indexes = (Index(fields=("unit_id", "status")),)


class RightHolder(Model):
    id = fields.BigIntField(primary_key=True)
    right: fields.ForeignKeyRelation[Right] = fields.ForeignKeyField(
        "models.Right", related_name="holders", on_delete=fields.CASCADE
    )
    person: fields.ForeignKeyNullableRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="holdings", null=True, on_delete=fields.RESTRICT
    )
    organisation: fields.ForeignKeyNullableRelation[Organisation] = fields.ForeignKeyField(
        "models.Organisation", related_name="holdings", null=True, on_delete=fields.RESTRICT
    )
    share = fields.DecimalField(max_digits=7, decimal_places=6, default=1)  # fraction of the right

    class Meta:
        table = "right_holder"
        indexes = (Index(fields=("person_id", "right_id")),)
        unique_together = (("right_id", "person_id"),)


class Mortgage(Model):
    id = fields.BigIntField(primary_key=True)
    certificate_number = fields.CharField(max_length=64, unique=True)  # 不动产证明号
    right: fields.ForeignKeyRelation[Right] = fields.ForeignKeyField(
        "models.Right", related_name="mortgages", on_delete=fields.RESTRICT
    )
    mortgagee: fields.ForeignKeyRelation[Organisation] = fields.ForeignKeyField(
        "models.Organisation", related_name="mortgages", on_delete=fields.RESTRICT
    )
    amount_fen = fields.BigIntField()
    term_start = fields.DateField()
    term_end = fields.DateField()
    status = fields.CharField(max_length=12, default="active")  # active | cancelled
    registered_at = fields.DatetimeField()
    cancelled_at = fields.DatetimeField(null=True)
    # From a bank's filing (issue 14); NULL for mortgages registered before.
    contract_number = fields.CharField(max_length=64, null=True)
    borrower_name = fields.CharField(max_length=64, null=True)  # when not the mortgagor
    priority_at = fields.DatetimeField(null=True)  # the filing's acceptance: the mortgage's rank

    class Meta:
        table = "mortgage"
        indexes = (Index(fields=("right_id", "status")),)


# A seizure (查封) by a court or authority, or an objection (异议) registered by a party.
class Encumbrance(Model):
    id = fields.BigIntField(primary_key=True)
    right: fields.ForeignKeyRelation[Right] = fields.ForeignKeyField(
        "models.Right", related_name="encumbrances", on_delete=fields.RESTRICT
    )
    kind = fields.CharField(max_length=12)  # seizure | objection
    authority = fields.CharField(max_length=128)
    document_number = fields.CharField(max_length=64)
    starts_on = fields.DateField()
    ends_on = fields.DateField(null=True)
    status = fields.CharField(max_length=12, default="active")  # active | lifted
    registered_at = fields.DatetimeField()
    lifted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "encumbrance"
        indexes = (Index(fields=("right_id", "status")),)


# A registration application moving through the states of 不动产登记暂行条例.
class RegistrationCase(Model):
    id = fields.BigIntField(primary_key=True)
    case_number = fields.CharField(max_length=32, unique=True)
    unit: fields.ForeignKeyRelation[RealEstateUnit] = fields.ForeignKeyField(
        "models.RealEstateUnit", related_name="cases", on_delete=fields.RESTRICT
    )
    right: fields.ForeignKeyNullableRelation[Right] = fields.ForeignKeyField(
        "models.Right", related_name="cases", null=True, on_delete=fields.RESTRICT
    )
    kind = fields.CharField(max_length=24)  # first | transfer | mortgage | mortgage_cancel | seizure | ...
    # applied | accepted | not_accepted | reviewing | registered | refused | issued
    state = fields.CharField(max_length=16, default="applied")
    reason = fields.CharField(max_length=200, null=True)
    applied_at = fields.DatetimeField()
    updated_at = fields.DatetimeField(auto_now=True)
    # The office handling the case (全市通办: any office, whatever the unit's district).
    office: fields.ForeignKeyNullableRelation[Office] = fields.ForeignKeyField(
        "models.Office", related_name="cases", null=True, on_delete=fields.RESTRICT
    )
    # What was applied for, by kind; for a transfer {"price_fen", "contract_number", ...}. Money
    # in integer fen. Never an ID number: parties are rows of `CaseParty`.
    details: dict[str, Any] = fields.JSONField(default=dict)
    # The tax side (transfer: the declaration; first registration: the clearance).
    tax_ref = fields.CharField(max_length=64, null=True)
    tax_status = fields.CharField(max_length=16, null=True)
    # The certificate (不动产权证书 or 不动产登记证明) the registration produced.
    certificate_number = fields.CharField(max_length=64, null=True)
    # Set while the case is open (e.g. "transfer:<right id>"), NULL once it ends: the unique
    # constraint lets one open transfer per right exist, whatever the interleaving.
    open_key = fields.CharField(max_length=64, null=True, unique=True)

    class Meta:
        table = "registration_case"
        indexes = (
            Index(fields=("unit_id", "state")),
            Index(fields=("office_id", "state", "applied_at")),
        )


class CaseParty(Model):
    """A party to a case and its role: seller and buyers of a transfer, the applicant of a first
    registration, the mortgagors of a filing. A buyer confirms from their own account."""

    id = fields.BigIntField(primary_key=True)
    case: fields.ForeignKeyRelation[RegistrationCase] = fields.ForeignKeyField(
        "models.RegistrationCase", related_name="parties", on_delete=fields.CASCADE
    )
    role = fields.CharField(max_length=16)  # seller | buyer | applicant | mortgagor | holder
    person: fields.ForeignKeyNullableRelation[Person] = fields.ForeignKeyField(
        "models.Person", related_name="case_roles", null=True, on_delete=fields.RESTRICT
    )
    organisation: fields.ForeignKeyNullableRelation[Organisation] = fields.ForeignKeyField(
        "models.Organisation", related_name="case_roles", null=True, on_delete=fields.RESTRICT
    )
    share = fields.DecimalField(max_digits=7, decimal_places=6, null=True)  # a buyer's share
    confirmed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "case_party"
        unique_together = (("case_id", "role", "person_id"),)
        indexes = (Index(fields=("person_id", "case_id")),)


class CaseEvent(Model):
    """One move of a case, recorded in the transaction that made it: who, when, from what to what."""

    id = fields.BigIntField(primary_key=True)
    case: fields.ForeignKeyRelation[RegistrationCase] = fields.ForeignKeyField(
        "models.RegistrationCase", related_name="events", on_delete=fields.CASCADE
    )
    from_state = fields.CharField(max_length=16, null=True)  # None: the case was opened
    to_state = fields.CharField(max_length=16)
    actor_kind = fields.CharField(max_length=12)  # person | staff | bank | organisation | system
    actor_id = fields.CharField(max_length=64)
    reason = fields.CharField(max_length=200, null=True)
    at = fields.DatetimeField()

    class Meta:
        table = "case_event"
        indexes = (Index(fields=("case_id", "id")),)


# --- the read model's shapes -----------------------------------------------------------------------
# What services/registry/properties.py returns, and the one description of each shape: the API
# documents and validates responses from these classes (`pydantic.TypeAdapter` over the
# dataclasses, api/openapi.py), and orjson serialises them as they are, in field order, so the
# field names, their order and the masking done in properties.py are the wire format. The
# `Field(...)` annotations are documentation only; nothing here validates at run time. Times are
# aware datetimes in Asia/Shanghai (ISO 8601 with `+08:00` on the wire), days are dates, areas and
# shares decimal strings, money integer fen. They live here, with the rows, because they are as
# public to other domains (a guardian's read returns them) as the rows are.


@dataclass(frozen=True, slots=True)
class CoHolder:
    kind: Literal["person", "organisation"]
    name: Annotated[str, Field(description="persons masked (张*), organisations in full; never an ID number")]
    share: Annotated[str, Field(examples=["0.5"])]


@dataclass(frozen=True, slots=True)
class MortgageView:
    mortgage_id: int
    certificate_number: str
    mortgagee: Annotated[str, Field(description="the bank's name")]
    amount_fen: int
    term_start: date
    term_end: date
    status: Literal["active", "cancelled"]
    registered_at: datetime
    cancelled_at: datetime | None


@dataclass(frozen=True, slots=True)
class EncumbranceView:
    encumbrance_id: int
    authority: str
    document_number: str
    starts_on: date
    ends_on: date | None
    status: Literal["active", "lifted"]
    registered_at: datetime
    lifted_at: datetime | None


@dataclass(frozen=True, slots=True)
class Encumbrances:
    mortgages: tuple[MortgageView, ...]
    seizures: tuple[EncumbranceView, ...]
    objections: tuple[EncumbranceView, ...]


NO_ENCUMBRANCES = Encumbrances((), (), ())


@dataclass(frozen=True, slots=True)
class PropertyItem:
    right_id: int
    certificate_number: str
    right_type: str
    co_ownership: str
    status: Literal["current", "historical"]
    unit_number: str
    address: str
    district_code: str
    district_name: str | None
    use: str
    area_m2: Annotated[str, Field(examples=["89.50"])]
    share: Annotated[str, Field(description="the data subject's share of the right", examples=["1"])]
    co_holders: tuple[CoHolder, ...]
    registered_at: datetime
    ended_at: datetime | None
    encumbrances: Annotated[Encumbrances, Field(description="active ones only")]
    registration_in_progress: Annotated[
        bool,
        Field(
            description="a case on the unit is applied, accepted, reviewing, or registered but not yet issued"
        ),
    ]


@dataclass(frozen=True, slots=True)
class EarlierRight:
    right_type: str
    status: str
    registered_at: datetime
    ended_at: datetime | None
    holders: Annotated[tuple[str, ...], Field(description="masked names")]


@dataclass(frozen=True, slots=True)
class CaseView:
    case_number: str
    kind: str
    state: str
    in_progress: bool
    reason: str | None
    applied_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class History:
    earlier_rights: tuple[EarlierRight, ...]
    cases: tuple[CaseView, ...]


@dataclass(frozen=True, slots=True)
class PropertyRecord(PropertyItem):
    encumbrance_history: Annotated[Encumbrances, Field(description="active, cancelled and lifted")]
    history: History


@dataclass(frozen=True, slots=True)
class PropertyPage:
    """One page as read from the database; `next_after` is the last right id when more follow."""

    items: tuple[PropertyItem, ...]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class EncodedPropertyPage:
    """A PropertyPage as the cache holds it: the items already serialised (a JSON array of
    PropertyItem), so a cache hit is served without parsing, building or validating anything."""

    items: orjson.Fragment
    next_after: int | None


EMPTY_PAGE = EncodedPropertyPage(orjson.Fragment(b"[]"), None)


@dataclass(frozen=True, slots=True)
class QuerySubject:
    id_number: Annotated[
        str, Field(description="masked: first 4 and last 4", examples=["3101**********0025"])
    ]
    name: Annotated[str | None, Field(description="in full, for the clerk; null when not in the register")]
    in_register: Annotated[bool, Field(description="false: the register has no record of this person at all")]


@dataclass(frozen=True, slots=True)
class ClerkLookup:
    subject: QuerySubject
    items: orjson.Fragment
    next_after: int | None
