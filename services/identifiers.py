"""Validation, normalisation and masking of the identifiers the registry works with.

The rules of the national standards (GB 11643 ID numbers, GB 32100 credit codes) live in
`standards/`, a pure package the integrations layer applies too; this module turns their verdicts
into DomainErrors with bilingual messages, and owns the rules that are ours (age of majority,
unit and certificate numbers, phones). Formats and checked examples: ../shared/DOMAIN.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from services.errors import (
    InvalidCertificateNumber,
    InvalidCreditCode,
    InvalidIdNumber,
    InvalidPhone,
    InvalidUnitNumber,
)
from standards import gb11643, gb32100

# --- GB 11643-1999 resident ID number (rule: standards/gb11643.py) --------------------------------

_ID_DEFECTS: dict[str, tuple[str, str, str]] = {  # defect -> (message zh, message en, reason)
    "shape": (
        "身份证号码应为18位，前17位为数字，最后一位为数字或X",
        "An ID number has 18 characters: 17 digits and a digit or X",
        "shape",
    ),
    "no_such_date": (
        "身份证号码中的出生日期不存在",
        "The birth date in the ID number does not exist",
        "birth_date",
    ),
    "implausible_birth_date": (
        "身份证号码中的出生日期不合理",
        "The birth date in the ID number is impossible",
        "birth_date",
    ),
    "checksum": ("身份证号码校验位错误", "The ID number's check character is wrong", "checksum"),
}


def id_check_char(first17: str) -> str:
    return gb11643.check_char(first17)


def normalise_id_number(value: str, *, today: date | None = None) -> str:
    """Upper-cased, checked ID number; raises InvalidIdNumber with the reason."""
    candidate = gb11643.normalise(value)
    defect = gb11643.defect(candidate, today=today or date.today())
    if defect is not None:
        zh, en, reason = _ID_DEFECTS[defect]
        raise InvalidIdNumber(zh, en, reason=reason)
    return candidate


def birth_date_of(id_number: str) -> date:
    return gb11643.birth_date(id_number)


def gender_of(id_number: str) -> str:
    return "M" if gb11643.is_male(id_number) else "F"


def age_on(id_number: str, day: date) -> int:
    born = birth_date_of(id_number)
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def eighteenth_birthday(id_number: str) -> date:
    born = birth_date_of(id_number)
    try:
        return born.replace(year=born.year + 18)
    except ValueError:  # born on 29 February: of age on 1 March
        return date(born.year + 18, 3, 1)


def mask_id_number(id_number: str) -> str:
    """For display only (`1101**********1239`); the one mask, `standards.gb11643.mask`."""
    return gb11643.mask(id_number)


# --- GB 32100-2015 unified social credit code (rule: standards/gb32100.py) ------------------------

_CREDIT_CODE_DEFECTS: dict[str, tuple[str, str]] = {  # defect (= reason) -> (message zh, message en)
    "shape": (
        "统一社会信用代码应为18位，由数字和大写字母（不含I、O、Z、S、V）组成",
        "A credit code has 18 characters from digits and capitals except I, O, Z, S, V",
    ),
    "checksum": ("统一社会信用代码校验位错误", "The credit code's check character is wrong"),
    "organisation_code": (
        "统一社会信用代码中的组织机构代码校验位错误",
        "The organisation code inside the credit code has a wrong check character",
    ),
}


def credit_code_check_char(first17: str) -> str:
    """The 18th character of a credit code; ValueError outside its alphabet."""
    return gb32100.check_char(first17)


def organisation_code_check_char(first8: str) -> str:
    """GB 11714: the 9th character of an organisation code (positions 9-17 of a credit code)."""
    return gb32100.organisation_code_check_char(first8)


def normalise_credit_code(value: str) -> str:
    candidate = gb32100.normalise(value)
    defect = gb32100.defect(candidate)
    if defect is not None:
        zh, en = _CREDIT_CODE_DEFECTS[defect]
        raise InvalidCreditCode(zh, en, reason=defect)
    return candidate


# --- GB/T 37346-2019 real-estate unit number ------------------------------------------------------

_UNIT_SHAPE = re.compile(
    r"^(?P<county>\d{6})(?P<district>\d{3})(?P<subdistrict>\d{3})"
    r"(?P<ownership>[GJZ])(?P<right>[ABSXCDEFHGWY])(?P<parcel>\d{5})"
    r"(?P<fixture>[FLQW])(?P<fixture_unit>[0-9A-Z]{8})$",
    re.ASCII,  # `\d` takes only 0-9, not full-width or Arabic-Indic digits
)


@dataclass(frozen=True, slots=True)
class UnitNumber:
    value: str
    county_code: str
    parcel: str
    fixture_type: str
    building: str | None
    unit: str | None


def parse_unit_number(value: str) -> UnitNumber:
    candidate = value.strip().upper()
    if len(candidate) != 28:
        raise InvalidUnitNumber("不动产单元号应为28位", "A unit number has 28 characters", reason="length")
    m = _UNIT_SHAPE.match(candidate)
    if not m:
        raise InvalidUnitNumber(
            "不动产单元号结构不符合GB/T 37346-2019",
            "The unit number does not follow GB/T 37346-2019",
            reason="structure",
        )
    if m["parcel"] == "00000":
        raise InvalidUnitNumber(
            "宗地顺序号不能为00000", "The parcel sequence cannot be 00000", reason="parcel"
        )
    fixture, fixture_unit = m["fixture"], m["fixture_unit"]
    building = unit = None
    if fixture == "W":
        if fixture_unit != "00000000":
            raise InvalidUnitNumber(
                "无定着物时定着物单元号应为00000000",
                "Without a fixture the fixture unit must be 00000000",
                reason="fixture",
            )
    elif fixture == "F":
        if not fixture_unit.isdigit() or fixture_unit[:4] == "0000" or fixture_unit[4:] == "0000":
            raise InvalidUnitNumber(
                "房屋的定着物单元号应为4位幢号加4位户号",
                "A building's fixture unit is a 4-digit building and a 4-digit unit",
                reason="fixture",
            )
        building, unit = fixture_unit[:4], fixture_unit[4:]
    return UnitNumber(candidate, m["county"], m["parcel"], fixture, building, unit)


# --- certificate numbers --------------------------------------------------------------------------

_CERT = re.compile(
    r"^(?P<prov>[\u4e00-\u9fff])\s*[(（]\s*(?P<year>\d{4})\s*[)）]\s*(?P<place>[\u4e00-\u9fff]+?)(?:字)?"
    r"\s*不动产(?P<kind>权|证明)\s*第\s*(?P<seq>\d{6,8})\s*号$"
)


@dataclass(frozen=True, slots=True)
class CertificateNumber:
    province: str
    year: int
    place: str
    kind: str  # "right" (不动产权) or "registration" (不动产证明)
    sequence: int

    def __str__(self) -> str:
        word = "不动产权" if self.kind == "right" else "不动产证明"
        return f"{self.province}({self.year}){self.place}{word}第{self.sequence:07d}号"


def parse_certificate_number(value: str) -> CertificateNumber:
    """Lenient on older forms (full-width brackets, 6 or 8 digits, `浦字`); canonical on output."""
    m = _CERT.match(value.strip())
    if not m:
        raise InvalidCertificateNumber(
            "证书号格式应如 沪(2024)浦东新区不动产权第0012345号",
            "A certificate number looks like 沪(2024)浦东新区不动产权第0012345号",
        )
    return CertificateNumber(
        m["prov"], int(m["year"]), m["place"], "right" if m["kind"] == "权" else "registration", int(m["seq"])
    )


def format_certificate_number(
    *, year: int, place: str, kind: str, sequence: int, province: str = "沪"
) -> str:
    return str(CertificateNumber(province, year, place, kind, sequence))


# --- phones ---------------------------------------------------------------------------------------

_PHONE = re.compile(r"^1[3-9][0-9]{9}$")  # ASCII digits only: `\d` would take ٩ and ９


def normalise_phone(value: str) -> str:
    candidate = value.strip().removeprefix("+86").replace(" ", "").replace("-", "")
    if not _PHONE.match(candidate):
        raise InvalidPhone(
            "手机号码应为11位中国大陆手机号", "A phone number is an 11-digit mainland mobile number"
        )
    return candidate


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) == 11 else "*" * len(phone)


def mask_name(name: str) -> str:
    """`张*`, `欧阳**`: the family name (first character, or two for a compound) stays."""
    if len(name) <= 1:
        return name
    keep = 2 if len(name) >= 4 else 1
    return name[:keep] + "*" * (len(name) - keep)
