"""The rules of `standards/` (checked examples: ../shared/DOMAIN.md), and both layers applying them.

`services.identifiers` (DomainErrors for citizens and clerks) and `integrations` (the bank
catalogue, log masking, the civil-registry simulator) once had copies of these rules that
disagreed; the agreement tests below fail if either side grows its own copy again.
"""

from __future__ import annotations

from datetime import date

import pytest

from config.settings import ConfigurationError
from integrations.banks.config import parse_banks, uscc_valid
from integrations.base import mask_id
from integrations.civil_registry.simulator import id_number_valid
from services import identifiers as ids
from services.errors import InvalidCreditCode, InvalidIdNumber
from standards import gb11643, gb32100

TODAY = date(2026, 11, 29)

# --- GB 32100 credit codes -------------------------------------------------------------------------

# The disputed code. Its credit-code check character (the final Q) is right; the organisation code
# it embeds, M291417Q + check 3, is not. GB 11714 values the letters of an organisation code as in
# base 36 (M=22, Q=26): 22*3 + 2*7 + 9*9 + 1*10 + 4*5 + 1*8 + 7*4 + 26*2 = 279, 279 mod 11 = 4,
# 11 - 4 = 7, so the check is 7. The old bank-catalogue copy valued them by their position in the
# credit-code alphabet (M=21, Q=24), which gives 272 -> 3 and so accepted it.
DISPUTED = "91310000M291417Q3Q"
DISPUTED_REPAIRED_BODY = "91310000M291417Q7"  # the same code with the right GB 11714 check

VALID_CODES = ["91350100M000100Y43", "91110000600037341L"]  # DOMAIN.md


def test_domain_examples_are_valid_credit_codes():
    for code in VALID_CODES:
        assert gb32100.defect(code) is None and gb32100.is_valid(code)


def test_the_disputed_code_fails_the_embedded_organisation_code_check():
    assert gb32100.check_char(DISPUTED[:17]) == DISPUTED[17]  # the outer check passes
    assert int("M", 36) == 22 and int("Q", 36) == 26  # GB 11714 letter values, not alphabet positions
    assert gb32100.organisation_code_check_char("M291417Q") == "7"
    assert gb32100.defect(DISPUTED) == "organisation_code"
    repaired = DISPUTED_REPAIRED_BODY + gb32100.check_char(DISPUTED_REPAIRED_BODY)
    assert gb32100.is_valid(repaired)


@pytest.mark.parametrize(
    ("code", "defect"),
    [
        ("91350100M000100Y44", "checksum"),
        ("91110000600037341X", "checksum"),
        ("91350100M000100Y4", "shape"),  # 17 characters
        ("91350100M000100Y433", "shape"),  # 19
        ("91350100M000100I43", "shape"),  # I, O, Z, S and V are not in the alphabet
        ("9135010OM000100Y43", "shape"),
        ("91350100M000100y43", "shape"),  # `defect` reads normalised codes only
        ("９1350100M000100Y43", "shape"),  # full-width digit
        ("91350100Ｍ000100Y43", "shape"),  # full-width letter
        ("", "shape"),
        (DISPUTED, "organisation_code"),
    ],
)
def test_invalid_credit_codes(code, defect):
    assert gb32100.defect(code) == defect


def test_a_credit_code_may_start_with_a_letter():
    # python-stdnum refuses these; GB 32100's registration-authority character may be a letter.
    body = "Y1310115" + "MA1G7U1A" + gb32100.organisation_code_check_char("MA1G7U1A")
    assert gb32100.is_valid(body + gb32100.check_char(body))


def test_check_char_functions_refuse_what_is_not_a_code():
    with pytest.raises(ValueError):
        gb32100.check_char("9135")
    with pytest.raises(ValueError):
        gb32100.check_char("91350100M000100I4")
    with pytest.raises(ValueError):
        gb32100.organisation_code_check_char("M000100")
    with pytest.raises(ValueError):
        gb32100.organisation_code_check_char("m000100y")


def test_organisation_code_check_maps_10_to_x_and_11_to_0():
    assert gb32100.organisation_code_check_char("00000001") == "9"  # 2 -> 11 - 2
    assert gb32100.organisation_code_check_char("00000000") == "0"  # 11 - 0 = 11 -> 0
    assert gb32100.organisation_code_check_char("00000030") == "X"  # 4*3 = 12 -> 11 - 1 = 10 -> X


CODES_FOR_BOTH_LAYERS = [
    *VALID_CODES,
    DISPUTED,
    DISPUTED_REPAIRED_BODY + gb32100.check_char(DISPUTED_REPAIRED_BODY),
    "91350100M000100Y44",
    "91350100M000100Y4",
    "9135010OM000100Y43",
    "91350100M000100I43",
    "９1350100M000100Y43",
    "",
]


@pytest.mark.parametrize("code", CODES_FOR_BOTH_LAYERS)
def test_services_and_the_bank_catalogue_agree_on_credit_codes(code):
    try:
        ids.normalise_credit_code(code)
        services_verdict = True
    except InvalidCreditCode:
        services_verdict = False
    assert uscc_valid(code) is services_verdict is gb32100.is_valid(code)


def test_the_bank_catalogue_refuses_the_disputed_code():
    entry = {
        "code": "demo",
        "name": "Demo",
        "uscc": DISPUTED,
        "client_id": "demo-client",
        "client_secret": "0123456789abcdef",
        "callback_secret": "fedcba9876543210",
    }
    with pytest.raises(ConfigurationError, match="fails its check"):
        parse_banks({"bank": [entry]})
    with pytest.raises(InvalidCreditCode) as exc:
        ids.normalise_credit_code(DISPUTED)
    assert exc.value.fields["reason"] == "organisation_code"


# --- GB 11643 resident ID numbers ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["11010519491231002X", "110105199003071239"])
def test_domain_examples_are_valid_id_numbers(value):
    assert gb11643.defect(value, today=TODAY) is None


@pytest.mark.parametrize(
    ("value", "defect"),
    [
        ("110105199003071234", "checksum"),  # DOMAIN.md: the check should be 9
        ("110105199002301230", "no_such_date"),  # DOMAIN.md: no 30 February
        ("110105209912310010", "implausible_birth_date"),  # after TODAY
        ("110105187001010012", "implausible_birth_date"),  # before 1880
        ("11010519491231002x", "shape"),  # `defect` reads normalised numbers only
        ("11010519900307123", "shape"),
        ("1101051990030712399", "shape"),
        ("11010519900307123A", "shape"),
        ("", "shape"),
        # Non-ASCII digits: `isdigit()` and `int()` take them, the standard does not.
        ("١١٠١٠٥١٩٩٠٠٣٠٧١٢٣٩", "shape"),  # Arabic-Indic
        ("１１０１０５１９９００３０７１２３９", "shape"),  # full-width
        ("11010519900307123９", "shape"),  # a full-width check digit
    ],
)
def test_invalid_id_numbers(value, defect):
    assert gb11643.defect(value, today=TODAY) == defect


def test_id_number_facts():
    assert gb11643.normalise(" 11010519491231002x ") == "11010519491231002X"
    assert gb11643.check_char("11010519900307123") == "9"
    assert gb11643.birth_date("110105199003071239") == date(1990, 3, 7)
    assert gb11643.is_male("110105199003071239") and not gb11643.is_male("11010519491231002X")
    with pytest.raises(ValueError):
        gb11643.check_char("1101051990030712٣")
    # Without a clock only the future check is skipped.
    assert gb11643.is_valid("110105209912310010", today=None)
    assert gb11643.defect("110105199002301230", today=None) == "no_such_date"


ID_NUMBERS_FOR_BOTH_LAYERS = [
    "11010519491231002X",
    "11010519491231002x",
    "110105199003071239",
    "110105199003071234",
    "110105199002301230",
    "11010519900307123A",
    "١١٠١٠٥١٩٩٠٠٣٠٧١٢٣٩",
    "１１０１０５１９９００３０７１２３９",
    "",
]


@pytest.mark.parametrize("value", ID_NUMBERS_FOR_BOTH_LAYERS)
def test_services_and_the_civil_registry_simulator_agree_on_id_numbers(value):
    try:
        ids.normalise_id_number(value, today=TODAY)
        services_verdict = True
    except InvalidIdNumber:
        services_verdict = False
    assert id_number_valid(value) is services_verdict


# --- the display mask --------------------------------------------------------------------------


def test_the_mask_keeps_first_four_and_last_four():
    assert gb11643.mask("110105199003071239") == "1101**********1239"  # DOMAIN.md
    assert gb11643.mask("123456789") == "1234*6789"
    assert gb11643.mask("12345678") == "********"  # 4 + 4 of 8 would be the whole number
    assert gb11643.mask("12345") == "*****"
    assert gb11643.mask("") == "" and gb11643.mask(None) == ""


@pytest.mark.parametrize(
    "value", ["110105199003071239", "11010519491231002X", "123456789", "12345678", "1234", "x", ""]
)
def test_services_and_integrations_mask_alike(value):
    assert ids.mask_id_number(value) == mask_id(value) == gb11643.mask(value)
