"""GB 32100-2015 unified social credit code, with the GB 11714 organisation code it embeds.

Eighteen characters from a 31-character alphabet (no I, O, Z, S, V). Character 18 checks the
first 17 (weights 1 3 9 ... 28 over their alphabet positions, value (31 - sum mod 31) mod 31).
Characters 9-17 are an organisation code, which carries its own GB 11714 check character.

The two checks read letters differently, and that is the trap a second copy of this rule fell
into: GB 32100 values a character by its position in the 31-character alphabet (A=10, H=17,
J=18, ..., Y=30), while GB 11714 values a letter as in base 36 (A=10, ..., Z=35: M=22, Q=26, Y=34),
because an organisation code is older than the 31-character alphabet and may use any capital.
Valuing the embedded code's letters by the credit-code alphabet accepts codes such as
`91310000M291417Q3Q` whose organisation code `M291417Q` checks to 7, not 3.

python-stdnum is not used: it rejects valid codes whose first character (the registration
authority) is a letter. Examples: ../shared/DOMAIN.md.
"""

from __future__ import annotations

from typing import Literal

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
LENGTH = 18
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_BODY_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")  # ASCII only

Defect = Literal["shape", "checksum", "organisation_code"]


def check_char(first17: str) -> str:
    """The 18th character for the first 17; ValueError outside the alphabet or for another length."""
    if len(first17) != LENGTH - 1 or any(c not in _VALUE for c in first17):
        raise ValueError(f"not the first 17 characters of a credit code: {first17!r}")
    total = sum(_VALUE[c] * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def organisation_code_check_char(first8: str) -> str:
    """GB 11714: the 9th character of an organisation code. Letters count as in base 36 (A=10 ..
    Z=35), not as in the credit-code alphabet; ValueError for anything but 8 ASCII digits/capitals."""
    if len(first8) != 8 or any(c not in _ORG_BODY_CHARS for c in first8):
        raise ValueError(f"not the first 8 characters of an organisation code: {first8!r}")
    check = 11 - sum(int(c, 36) * w for c, w in zip(first8, _ORG_WEIGHTS, strict=True)) % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def normalise(value: str) -> str:
    """The form the checks read: surrounding blanks removed, upper case."""
    return value.strip().upper()


def defect(code: str) -> Defect | None:
    """What is wrong with an already normalised code, the first problem found; None if it is valid."""
    if len(code) != LENGTH or any(c not in _VALUE for c in code):
        return "shape"
    if check_char(code[:17]) != code[17]:
        return "checksum"
    if organisation_code_check_char(code[8:16]) != code[16]:
        return "organisation_code"
    return None


def is_valid(code: str) -> bool:
    """Whether `code`, exactly as given (no case folding), is a valid credit code."""
    return defect(code) is None
