"""GB 11643-1999 resident ID number, and the one display mask of it.

Eighteen characters: a 6-digit address code, the birth date YYYYMMDD, a 3-digit sequence (odd for
men) and a check character (weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, sum mod 11 looked up in
`10X98765432`). Digits are ASCII only: `str.isdigit` and `int` also take `١` or `９`, which would let
one person's number be spelled several ways. Examples: ../shared/DOMAIN.md.

The mask keeps the first 4 and last 4 characters. It is for display and logs only, never for
storage beside other clear data: the last 4 hold the sequence and check digits, so a stored mask
and a stored birth date leave only two county digits unknown.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

LENGTH = 18
EARLIEST_BIRTH_YEAR = 1880
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_DIGITS = frozenset("0123456789")

# "no_such_date": 30 February and the like; "implausible_birth_date": in the future or before 1880.
Defect = Literal["shape", "no_such_date", "implausible_birth_date", "checksum"]


def check_char(first17: str) -> str:
    """The 18th character for the first 17; ValueError unless they are 17 ASCII digits."""
    if len(first17) != LENGTH - 1 or any(c not in _DIGITS for c in first17):
        raise ValueError(f"not the first 17 digits of an ID number: {first17!r}")
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def normalise(value: str) -> str:
    """The form the checks read: surrounding blanks removed, `x` upper-cased."""
    return value.strip().upper()


def defect(id_number: str, *, today: date | None) -> Defect | None:
    """What is wrong with an already normalised number, the first problem found; None if valid.

    `today` is the caller's clock (the rule rejects birth dates after it); None skips only that
    part, for a caller without a clock such as a simulator loading reference data.
    """
    if (
        len(id_number) != LENGTH
        or any(c not in _DIGITS for c in id_number[:17])
        or id_number[17] not in _CHECK
    ):
        return "shape"
    try:
        born = birth_date(id_number)
    except ValueError:
        return "no_such_date"
    if born.year < EARLIEST_BIRTH_YEAR or (today is not None and born > today):
        return "implausible_birth_date"
    if check_char(id_number[:17]) != id_number[17]:
        return "checksum"
    return None


def is_valid(id_number: str, *, today: date | None) -> bool:
    """Whether `id_number`, exactly as given (no case folding), is valid; see `defect` for `today`."""
    return defect(id_number, today=today) is None


def birth_date(id_number: str) -> date:
    """The birth date a (shape-checked) number encodes; ValueError for a date that does not exist."""
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def is_male(id_number: str) -> bool:
    """The sequence (characters 15-17) is odd for men and even for women."""
    return int(id_number[16]) % 2 == 1


def mask(value: str | None) -> str:
    """`1101**********1239`: first 4 and last 4 kept; 8 characters or fewer are all masked (keeping
    4 + 4 of them would show everything), nothing gives an empty string."""
    if not value:
        return ""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]
