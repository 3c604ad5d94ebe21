"""Field types shared by request models: constraints that also document the OpenAPI spec."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from api.validation import domain_checked
from services import identifiers

ID_NUMBER_PATTERN = r"^[0-9]{17}[0-9Xx]$"
UNIT_NUMBER_PATTERN = r"^[0-9]{12}[GJZ][ABSXCDEFHGWY][0-9]{5}[FLQW][0-9A-Z]{8}$"
CREDIT_CODE_PATTERN = r"^[0-9A-HJ-NPQRTUWXY]{18}$"

Phone = Annotated[
    str,
    Field(min_length=11, max_length=16, pattern=r"^(\+86)?1[3-9][0-9]{9}$", examples=["13900000001"]),
    AfterValidator(domain_checked(identifiers.normalise_phone)),
]
IdNumber = Annotated[
    str,
    Field(min_length=18, max_length=18, pattern=ID_NUMBER_PATTERN, description="GB 11643 resident ID number"),
    AfterValidator(domain_checked(identifiers.normalise_id_number)),
]
UnitNumber = Annotated[
    str,
    Field(min_length=28, max_length=28, pattern=UNIT_NUMBER_PATTERN, description="GB/T 37346 unit number"),
    AfterValidator(domain_checked(lambda v: identifiers.parse_unit_number(v).value)),
]
CreditCode = Annotated[
    str,
    Field(min_length=18, max_length=18, pattern=CREDIT_CODE_PATTERN, description="GB 32100 credit code"),
    AfterValidator(domain_checked(identifiers.normalise_credit_code)),
]


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _calendar_day_text(value: object) -> object:
    """Only YYYY-MM-DD: pydantic alone would read `0` as 1970-01-01 or a timestamp as a day."""
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise ValueError("a calendar day must be written YYYY-MM-DD")
    return value


CalendarDay = Annotated[
    dt.date,
    BeforeValidator(_calendar_day_text),
    Field(description="a calendar day, YYYY-MM-DD", examples=["2027-01-04"]),
]
