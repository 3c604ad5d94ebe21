"""Identifier validation with the checked examples of ../shared/DOMAIN.md and edge cases."""

from __future__ import annotations

from datetime import date

import pytest

from services import identifiers as ids
from services.errors import InvalidCertificateNumber, InvalidCreditCode, InvalidIdNumber, InvalidUnitNumber
from services.pii import PiiVault


@pytest.mark.parametrize(
    "value", ["11010519491231002X", "110105199003071239", "11010519491231002x", " 110105199003071239 "]
)
def test_valid_id_numbers(value):
    assert ids.normalise_id_number(value) == value.strip().upper()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("110105199003071234", "checksum"),
        ("110105199002301230", "birth_date"),  # no 30 February
        ("11010519900307123", "shape"),
        ("1101051990030712399", "shape"),
        ("11010519900307123A", "shape"),
        ("110105209912310011", "birth_date"),  # in the future
        ("", "shape"),
    ],
)
def test_invalid_id_numbers(value, reason):
    with pytest.raises(InvalidIdNumber) as exc:
        ids.normalise_id_number(value, today=date(2026, 11, 29))
    assert exc.value.fields["reason"] == reason
    assert exc.value.code == "INVALID_ID_NUMBER"


def test_id_number_facts():
    assert ids.mask_id_number("110105199003071239") == "1101**********1239"
    assert ids.birth_date_of("110105199003071239") == date(1990, 3, 7)
    assert ids.gender_of("110105199003071239") == "M"
    assert ids.gender_of("11010519491231002X") == "F"
    assert ids.age_on("110105199003071239", date(2008, 3, 6)) == 17
    assert ids.age_on("110105199003071239", date(2008, 3, 7)) == 18
    assert ids.eighteenth_birthday("110105200002290017") == date(2018, 3, 1)  # born 29 February


@pytest.mark.parametrize("value", ["91350100M000100Y43", "91110000600037341L", "91110000600037341l"])
def test_valid_credit_codes(value):
    assert ids.normalise_credit_code(value) == value.upper()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("91350100M000100Y44", "checksum"),
        ("91350100M000100Y4", "shape"),
        ("91350100M000100I43", "shape"),  # I is not in the alphabet
        ("9135010OM000100Y43", "shape"),  # neither is O
    ],
)
def test_invalid_credit_codes(value, reason):
    with pytest.raises(InvalidCreditCode) as exc:
        ids.normalise_credit_code(value)
    assert exc.value.fields["reason"] == reason


def test_credit_code_with_bad_embedded_organisation_code():
    # Valid outer check character, wrong GB 11714 check inside: recompute the outer one.
    body = "91350100M000100Y"  # 16 chars; organisation code M000100Y4 has check 4
    bad_org = body[:8] + "M000100Y" + "5"
    code = bad_org + ids.credit_code_check_char(bad_org)
    with pytest.raises(InvalidCreditCode) as exc:
        ids.normalise_credit_code(code)
    assert exc.value.fields["reason"] == "organisation_code"


@pytest.mark.parametrize("value", ["310115001001GB00001F00010001", "310115001001GB00001W00000000"])
def test_valid_unit_numbers(value):
    assert ids.parse_unit_number(value).value == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("310115001001GB00001W00010001", "fixture"),
        ("310115001001GB00000F00010001", "parcel"),
        ("310115001001GI00001F00010001", "structure"),
        ("310115001001GB00001F0001000", "length"),
        ("310115001001GB00001F000100011", "length"),
        ("310115001001GB00001F00000001", "fixture"),
    ],
)
def test_invalid_unit_numbers(value, reason):
    with pytest.raises(InvalidUnitNumber) as exc:
        ids.parse_unit_number(value)
    assert exc.value.fields["reason"] == reason


def test_certificate_numbers_parse_leniently_and_format_canonically():
    cert = ids.parse_certificate_number("沪(2024)浦东新区不动产权第0012345号")
    assert (cert.year, cert.place, cert.kind, cert.sequence) == (2024, "浦东新区", "right", 12345)
    assert (
        str(ids.parse_certificate_number("沪（2019）浦东新区不动产证明第123456号"))
        == "沪(2019)浦东新区不动产证明第0123456号"
    )
    assert ids.parse_certificate_number("沪(2010)浦字不动产权第12345678号").sequence == 12345678
    with pytest.raises(InvalidCertificateNumber):
        ids.parse_certificate_number("沪2024浦东新区第1号")


def test_masking_of_names_and_phones():
    assert ids.mask_name("张伟") == "张*"
    assert ids.mask_name("欧阳娜娜") == "欧阳**"
    assert ids.mask_phone("13900000001") == "139****0001"
    assert ids.normalise_phone("+86 139-0000-0001") == "13900000001"


def test_pii_vault_round_trip_and_blind_index():
    vault = PiiVault(key_b64="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", blind_index_key="k")
    sealed = vault.encrypt("110105199003071239")
    assert "110105199003071239" not in sealed and sealed != vault.encrypt("110105199003071239")
    assert vault.decrypt(sealed) == "110105199003071239"
    assert vault.blind_index("110105199003071239") == vault.blind_index("110105199003071239")
    assert vault.blind_index("110105199003071239") != vault.blind_index("11010519491231002X")
    with pytest.raises(Exception):
        vault.decrypt(sealed[:-4] + "AAAA")


def test_check_character_helpers_match_the_validator():
    assert ids.credit_code_check_char("91350100M000100Y4") == "3"
    assert ids.organisation_code_check_char("M000100Y") == "4"
    assert ids.credit_code_check_char("91110000600037341") == "L"
    with pytest.raises(ValueError):
        ids.credit_code_check_char("9135")
