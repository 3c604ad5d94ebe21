"""Deterministic, realistic Shanghai demo data: the register, its sign-in accounts, and the matching
civil-registry people and guardianships.

Why it is built this way:
- Every value comes from `random.Random` streams derived from the seed, so a seed always gives the
  same register (only the AES-GCM ciphertexts differ: their nonces are random by design).
- Persons are generated household by household in a stream of their own, so
  `civil_registry_dataset` rebuilds exactly the seeded people and guardianships without a database.
- Uniqueness is built in, not checked afterwards: ID-number sequences, phones, parcels and
  certificate numbers come from counters, never from "draw and retry against a set", so a million
  persons need no more memory than a few thousand (rows are written in batches of `batch_size`).
- We assign the primary keys, so a batch of rights can point at the units and persons of the same
  batch without reading them back; PostgreSQL's sequences are then moved past them, as Django's
  `loaddata` + `sqlsequencereset` do.

Ranges kept apart so generated data, the fixed identities and test data never collide
(tests/integration/property_support.py keeps to its own: address code 310230, phones 147,
cadastral district 950, certificate sequences 8,000,000-8,999,999):

| value                              | generated                  | fixed identities | tests/factories.py |
|------------------------------------|----------------------------|------------------|--------------------|
| ID-number sequence (digits 15-17)  | 000-799                    | 900-999          | 800-899            |
| mobile prefix                      | 20 prefixes in _PHONE_PREFIXES | 1390000000x  | 170                |
| cadastral district (unit 7-9)      | 010-039                    | 002-005          | 900                |
| certificate sequence               | below 8,000,000            | constants below  | from 9,000,000     |
| case number                        | year + county + 7 digits   | none             | "T" + 12 digits    |
"""

from __future__ import annotations

import asyncio
import random
import unicodedata
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import accumulate
from typing import Any, Protocol

from argon2 import PasswordHasher
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model
from tortoise.transactions import in_transaction

from services.identifiers import format_certificate_number, id_check_char, mask_id_number
from services.models.accounts import ApiClient, StaffUser
from services.models.registry import (
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
from services.pii import PiiVault

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991
AS_OF = date(2026, 11, 20)  # the day the demo register "is" at: ages and states are counted from it
REGISTER_START = date(2016, 3, 1)  # Shanghai issues 不动产权证书 since 2016: the oldest certificates

# --- places ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class District:
    code: str  # GB/T 2260
    name: str
    population: int  # 2020 census, in 10,000s: where demo people live and homes are
    price_per_m2: int  # illustrative yuan, sizes the demo mortgages
    roads: tuple[str, ...]  # real road names; house numbers on them are invented


DISTRICTS: tuple[District, ...] = (
    District("310101", "黄浦区", 66, 110_000, ("瞿溪路", "制造局路", "陆家浜路", "西藏南路", "复兴中路")),
    District("310104", "徐汇区", 111, 95_000, ("宜山路", "漕溪北路", "田林路", "龙华西路", "斜土路")),
    District("310105", "长宁区", 69, 90_000, ("仙霞路", "天山路", "古北路", "哈密路", "水城路")),
    District("310106", "静安区", 98, 100_000, ("共和新路", "延长中路", "万荣路", "江宁路", "康定路")),
    District("310107", "普陀区", 124, 70_000, ("曹杨路", "真北路", "武宁路", "金沙江路", "铜川路")),
    District("310109", "虹口区", 76, 75_000, ("四平路", "曲阳路", "凉城路", "广中路", "大连西路")),
    District("310110", "杨浦区", 124, 72_000, ("控江路", "长阳路", "国和路", "黄兴路", "殷行路")),
    District("310112", "闵行区", 265, 62_000, ("莘松路", "七莘路", "古美路", "龙茗路", "都市路")),
    District("310113", "宝山区", 224, 50_000, ("牡丹江路", "友谊路", "共江路", "淞滨路", "呼兰路")),
    District("310114", "嘉定区", 183, 42_000, ("城中路", "塔城路", "博乐路", "清河路", "墨玉路")),
    District("310115", "浦东新区", 568, 78_000, ("张杨路", "崂山路", "东方路", "锦绣路", "杨高南路")),
    District("310116", "金山区", 82, 22_000, ("卫零路", "蒙山路", "板桥西路", "龙皓路", "金一东路")),
    District("310117", "松江区", 191, 35_000, ("人民北路", "荣乐中路", "中山中路", "新松江路", "文诚路")),
    District("310118", "青浦区", 127, 35_000, ("公园路", "城中北路", "华青路", "盈港东路", "崧泽大道")),
    District("310120", "奉贤区", 114, 28_000, ("南桥路", "解放东路", "环城北路", "百齐路", "金海路")),
    District("310151", "崇明区", 63, 20_000, ("八一路", "东门路", "人民路", "翠竹路", "鼓浦路")),
)
_DISTRICT = {d.code: d for d in DISTRICTS}
_PEOPLE_CUM = [sum(d.population for d in DISTRICTS[: i + 1]) for i in range(len(DISTRICTS))]


def _offices() -> tuple[tuple[str, str, str, str], ...]:
    """(code, district, name, address): one service hall per district, two in Pudong. Illustrative."""
    rows = [
        (
            f"OFF-{d.code}-01",
            d.code,
            f"{d.name}不动产登记事务中心",
            f"上海市{d.name}{d.roads[0]}{188 + 11 * i}号",
        )
        for i, d in enumerate(DISTRICTS)
    ]
    rows.append(
        ("OFF-310115-02", "310115", "浦东新区不动产登记事务中心张江分中心", "上海市浦东新区川沙路1099号")
    )
    return tuple(rows)


OFFICES = _offices()

# --- names ----------------------------------------------------------------------------------------

# Common surnames, most frequent in Shanghai first (weights fall along the string), then compounds.
_SURNAMES = (
    "张王陈李徐朱沈顾陆周吴杨黄刘孙胡何钱曹金蒋赵马许郁姚高汪施宋秦唐"
    "倪郭邵范姜袁叶戴潘郑程严谢俞孔龚卢吕丁毛方"
)
_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方")
_SURNAME_POOL = (*_SURNAMES, *_COMPOUND_SURNAMES)
_SURNAME_CUM = list(
    accumulate([float(max(2, 60 - i)) for i in range(len(_SURNAMES))] + [0.5] * len(_COMPOUND_SURNAMES))
)
# Given-name characters by sex and generation: names follow fashions.
_GIVEN = {
    (True, True): "国建华明平伟德忠荣根林福宝海金兴龙生康",
    (False, True): "秀英桂兰凤珍美芳玉琴梅娣霞红萍丽",
    (True, False): "浩宇轩晨博文杰俊涛磊睿哲泽阳逸航凯翔鑫昊",
    (False, False): "怡欣悦婷雯琳佳璐颖倩诗涵梓萱雨晴思瑶妍静",
}


def _given_name(rng: random.Random, male: bool, born: date) -> str:
    chars = _GIVEN[(male, born.year < 1975)]
    return "".join(rng.choice(chars) for _ in range(1 if rng.random() < 0.25 else 2))


# --- identities the demo documents ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoCitizen:
    key: str
    name: str
    id_number: str  # shown in full in the demo docs only: never log or display one elsewhere
    id_number_masked: str
    phone: str | None
    birth_date: date
    description: str


@dataclass(frozen=True, slots=True)
class DemoStaff:
    username: str
    password: str
    role: str
    office_code: str | None
    display_name: str
    description: str


@dataclass(frozen=True, slots=True)
class DemoBankClient:
    bank_code: str
    name: str
    credit_code: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DemoProperty:
    """One right (current or historical) on a unit of the fixed identities."""

    unit_number: str
    address: str
    certificate_number: str
    status: str  # current | historical
    holders: str  # e.g. "陈立华 50%, 周敏 50% (共同共有)"
    mortgages: str  # e.g. "icbc-sh ¥3,200,000.00 active 沪(2019)浦东新区不动产证明第0133268号", or "-"


@dataclass(frozen=True, slots=True)
class DemoIdentities:
    citizens: tuple[DemoCitizen, ...]
    staff: tuple[DemoStaff, ...]
    banks: tuple[DemoBankClient, ...]
    properties: tuple[DemoProperty, ...] = ()

    def citizen(self, key: str) -> DemoCitizen:
        return next(c for c in self.citizens if c.key == key)

    def _tables(self) -> list[tuple[str, list[str], list[list[str]]]]:
        return [
            (
                "Citizens (sign in by SMS code to the phone)",
                ["key", "name", "ID number", "masked", "phone", "born", "what they have"],
                [
                    [
                        c.key,
                        c.name,
                        c.id_number,
                        c.id_number_masked,
                        c.phone or "-",
                        c.birth_date.isoformat(),
                        c.description,
                    ]
                    for c in self.citizens
                ],
            ),
            (
                "Their properties (rights in the register, oldest first per unit)",
                ["unit number", "address", "certificate", "status", "holders", "mortgages"],
                [
                    [p.unit_number, p.address, p.certificate_number, p.status, p.holders, p.mortgages]
                    for p in self.properties
                ],
            ),
            (
                "Staff (username and password)",
                ["username", "password", "role", "office", "name", "notes"],
                [
                    [s.username, s.password, s.role, s.office_code or "-", s.display_name, s.description]
                    for s in self.staff
                ],
            ),
            (
                "Bank API clients (OAuth2 client credentials)",
                ["bank", "name", "credit code", "client_id", "client_secret", "scopes"],
                [
                    [b.bank_code, b.name, b.credit_code, b.client_id, b.client_secret, " ".join(b.scopes)]
                    for b in self.banks
                ],
            ),
        ]

    def as_text(self) -> str:
        """Aligned plain-text tables for the console; Chinese characters count as two columns."""
        out: list[str] = []
        for title, header, rows in self._tables():
            widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
            out.append(title)
            for row in [header, ["-" * w for w in widths], *rows]:
                out.append("  ".join(_pad(v, w) for v, w in zip(row, widths, strict=True)).rstrip())
            out.append("")
        return "\n".join(out)

    def as_markdown(self) -> str:
        out: list[str] = []
        for title, header, rows in self._tables():
            out += [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            out += ["| " + " | ".join(_markdown_cell(v) for v in row) + " |" for row in rows]
            out.append("")
        return "\n".join(out)


def _markdown_cell(text: str) -> str:
    text = text.replace("|", "\\|")
    return f"`{text}`" if "*" in text else text  # masked ID numbers: asterisks, not emphasis


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


@dataclass(frozen=True, slots=True)
class _FixedPerson:
    key: str
    name: str
    district_code: str
    birth_date: date
    sequence: int  # 900-999: never produced for generated persons; odd = male
    phone: str | None
    household_id: str
    relation: str  # relation to the household head, as the civil registry records it
    alive: bool
    description: str

    @property
    def id_number(self) -> str:
        first17 = f"{self.district_code}{self.birth_date:%Y%m%d}{self.sequence:03d}"
        return first17 + id_check_char(first17)

    @property
    def male(self) -> bool:
        return self.sequence % 2 == 1


# fmt: off
_FIXED_PERSONS: tuple[_FixedPerson, ...] = (
    _FixedPerson("owner", "陈立华", "310115", date(1982, 3, 15), 901, "13900000001",
                 "DEMO-H1", "head", True,
                 "Homes in 浦东新区 and 徐汇区: a flat held jointly (共同共有) with spouse, mortgaged; "
                 "a sole flat, mortgage paid off; a parking space"),
    _FixedPerson("spouse", "周敏", "310115", date(1984, 9, 26), 902, "13900000002",
                 "DEMO-H1", "spouse", True,
                 "Wife of owner; holds the 浦东新区 flat with him (共同共有)"),
    _FixedPerson("no_housing", "李思远", "310104", date(1996, 8, 8), 903, "13900000003",
                 "DEMO-H2", "head", True,
                 "No property now or ever: the no-housing certificate"),
    _FixedPerson("guardian", "王雅琴", "310112", date(1986, 11, 2), 906, "13900000005",
                 "DEMO-H3", "spouse", True,
                 "Mother and guardian of child; 40% of the family flat in 闵行区 (按份共有)"),
    _FixedPerson("second_guardian", "张伟明", "310112", date(1984, 6, 18), 905, "13900000004",
                 "DEMO-H3", "head", True,
                 "Father and guardian of child; 40% of the family flat in 闵行区"),
    _FixedPerson("child", "张子涵", "310112", date(2016, 5, 20), 908, None,
                 "DEMO-H3", "child", True,
                 "Minor, no phone: 20% of the 闵行区 flat; a 黄浦区 flat inherited in 2023"),
    _FixedPerson("grandmother", "刘桂英", "310101", date(1941, 2, 11), 910, None,
                 "DEMO-H4", "head", False,
                 "Deceased; held the 黄浦区 flat before child (history only)"),
)
# fmt: on
_FIXED_BY_KEY = {p.key: p for p in _FIXED_PERSONS}
_GUARDIANSHIPS = (("second_guardian", "child", "father"), ("guardian", "child", "mother"))


@dataclass(frozen=True, slots=True)
class _FixedRight:
    certificate: str
    holders: tuple[tuple[str, str], ...]  # (person key, share)
    co_ownership: str
    registered: date
    ended: date | None = None


@dataclass(frozen=True, slots=True)
class _FixedMortgage:
    certificate: str
    bank_index: int  # into the configured banks, modulo their number
    amount_fen: int
    term_start: date
    years: int
    cancelled: date | None = None


@dataclass(frozen=True, slots=True)
class _FixedUnit:
    unit_number: str
    address: str
    use: str
    area_m2: str
    rights: tuple[_FixedRight, ...]  # oldest first
    mortgages: tuple[_FixedMortgage, ...] = ()  # on the last right


# fmt: off
_FIXED_UNITS: tuple[_FixedUnit, ...] = (
    _FixedUnit(
        "310115005003GB00321F00031202", "上海市浦东新区张杨路1500弄3号1202室", "residential", "89.56",
        (_FixedRight("沪(2019)浦东新区不动产权第0357124号", (("owner", "0.5"), ("spouse", "0.5")),
                     "joint", date(2019, 4, 16)),),
        (_FixedMortgage("沪(2019)浦东新区不动产证明第0133268号", 0, 320_000_000,
                        date(2019, 4, 19), 30),),
    ),
    _FixedUnit(
        "310104003011GB00128F00120503", "上海市徐汇区宜山路700弄12号503室", "residential", "62.30",
        (_FixedRight("沪(2017)徐汇区不动产权第0088531号", (("owner", "1"),), "sole",
                     date(2017, 9, 5)),),
        (_FixedMortgage("沪(2017)徐汇区不动产证明第0045120号", 1, 120_000_000,
                        date(2017, 9, 12), 20, cancelled=date(2024, 6, 18)),),
    ),
    _FixedUnit(
        "310115005003GB00321F09990086", "上海市浦东新区张杨路1500弄地下车库86号车位", "parking", "12.50",
        (_FixedRight("沪(2020)浦东新区不动产权第0412789号", (("owner", "1"),), "sole",
                     date(2020, 1, 10)),),
    ),
    _FixedUnit(
        "310112002006GB00417F00081101", "上海市闵行区莘松路958弄8号1101室", "residential", "112.40",
        (_FixedRight("沪(2021)闵行区不动产权第0296035号",
                     (("second_guardian", "0.4"), ("guardian", "0.4"), ("child", "0.2")),
                     "shares", date(2021, 7, 8)),),
    ),
    _FixedUnit(
        "310101004002GB00056F00050402", "上海市黄浦区瞿溪路1111弄5号402室", "residential", "48.70",
        (_FixedRight("沪(2016)黄浦区不动产权第0021457号", (("grandmother", "1"),), "sole",
                     date(2016, 10, 11), ended=date(2023, 3, 2)),
         _FixedRight("沪(2023)黄浦区不动产权第0064318号", (("child", "1"),), "sole",
                     date(2023, 3, 2))),
    ),
)
# fmt: on
_FIXED_CERTIFICATES = frozenset(
    [r.certificate for u in _FIXED_UNITS for r in u.rights]
    + [m.certificate for u in _FIXED_UNITS for m in u.mortgages]
)

# fmt: off
_FIXED_STAFF = (
    DemoStaff("clerk.pudong", "Demo-Pudong-2026!", "clerk", "OFF-310115-01", "陆佳怡",
              "Clerk at 浦东新区不动产登记事务中心"),
    DemoStaff("clerk.xuhui", "Demo-Xuhui-2026!", "clerk", "OFF-310104-01", "沈浩",
              "Clerk at 徐汇区不动产登记事务中心"),
    DemoStaff("admin", "Demo-Admin-2026!", "admin", None, "系统管理员", "Administrator, no office"),
)
# fmt: on

# Companies holding some commercial units; invented names, valid credit codes (see credit_code).
_COMPANIES = (
    ("上海浦汇演示置业有限公司", "310115"),
    ("上海申江演示商业管理有限公司", "310101"),
    ("上海徐滨演示实业有限公司", "310104"),
    ("上海虹桥演示商务发展有限公司", "310105"),
    ("上海静安演示商厦经营有限公司", "310106"),
    ("上海莘庄演示物业有限公司", "310112"),
    ("上海嘉亭演示置业有限公司", "310114"),
    ("上海云间演示资产经营有限公司", "310117"),
)


class DemoBank(Protocol):
    """What the seed needs of a bank; integrations.banks.BankConfig (config/banks.toml) fits."""

    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def uscc(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def client_secret(self) -> str: ...
    @property
    def scopes(self) -> Sequence[str]: ...


def demo_identities(banks: Sequence[DemoBank]) -> DemoIdentities:
    """The documented identities; the same for every seed."""
    return DemoIdentities(
        citizens=tuple(
            DemoCitizen(
                p.key, p.name, p.id_number, mask_id_number(p.id_number), p.phone, p.birth_date, p.description
            )
            for p in _FIXED_PERSONS
        ),
        staff=_FIXED_STAFF,
        banks=tuple(
            DemoBankClient(b.code, b.name, b.uscc, b.client_id, b.client_secret, tuple(b.scopes))
            for b in banks
        ),
        properties=tuple(_demo_properties([b.code for b in banks])),
    )


_CO_OWNERSHIP_WORDS = {"sole": "单独所有", "joint": "共同共有", "shares": "按份共有"}


def _demo_properties(bank_codes: Sequence[str]) -> Iterator[DemoProperty]:
    for u in _FIXED_UNITS:
        for i, r in enumerate(u.rights):
            holders = ", ".join(
                _FIXED_BY_KEY[key].name
                + ("" if r.co_ownership == "sole" else f" {Decimal(share) * 100:.0f}%")
                for key, share in r.holders
            )
            current = i == len(u.rights) - 1 and r.ended is None
            mortgages = [
                f"{bank_codes[m.bank_index % len(bank_codes)]} ¥{m.amount_fen / 100:,.2f} "
                f"{f'cancelled {m.cancelled}' if m.cancelled else 'active'} {m.certificate}"
                for m in (u.mortgages if current and bank_codes else ())
            ]
            yield DemoProperty(
                unit_number=u.unit_number,
                address=u.address,
                certificate_number=r.certificate,
                status="current" if current else f"historical (ended {r.ended})",
                holders=f"{holders} ({_CO_OWNERSHIP_WORDS[r.co_ownership]})",
                mortgages="; ".join(mortgages) or "-",
            )


# --- identifiers ----------------------------------------------------------------------------------

_CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def credit_code(*, district_code: str, organisation_code: str) -> str:
    """A GB 32100 code for an enterprise (91) registered in `district_code`; `organisation_code` is the
    8-character GB 11714 body whose check character, then the code's own, are computed here."""
    org_values = [int(c) if c.isdigit() else ord(c) - ord("A") + 10 for c in organisation_code]
    org_check = 11 - sum(v * w for v, w in zip(org_values, _ORG_WEIGHTS, strict=True)) % 11
    first17 = f"91{district_code}{organisation_code}" + {10: "X", 11: "0"}.get(org_check, str(org_check))
    total = sum(_CREDIT_ALPHABET.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return first17 + _CREDIT_ALPHABET[(31 - total % 31) % 31]


_FIRST_BIRTH = date(1940, 1, 1)
_LAST_BIRTH = date(2020, 12, 31)
_BIRTH_DAYS = (_LAST_BIRTH - _FIRST_BIRTH).days + 1


class _IdNumbers:
    """Unique GB 11643 numbers without remembering them: a counter per (district, birth day, sex)
    hands out sequences 000-799 (odd for men) in a scrambled order."""

    SLOTS = 400

    def __init__(self) -> None:
        self._taken = array("H", bytes(2 * 2 * len(DISTRICTS) * _BIRTH_DAYS))

    def take(self, district: int, born: date, male: bool) -> str | None:
        cell = (district * _BIRTH_DAYS + (born - _FIRST_BIRTH).days) * 2 + male
        n = self._taken[cell]
        if n >= self.SLOTS:
            return None
        self._taken[cell] = n + 1
        sequence = 2 * ((n * 157 + cell) % self.SLOTS) + male  # 157 is prime to 400: a permutation
        first17 = f"{DISTRICTS[district].code}{born.year}{born.month:02d}{born.day:02d}{sequence:03d}"
        return first17 + id_check_char(first17)


# 139 belongs to the fixed identities, 170 to tests/factories.py.
# fmt: off
_PHONE_PREFIXES = ("138", "137", "136", "135", "159", "158", "150", "151", "152", "186", "185", "188",
                   "187", "189", "181", "180", "133", "153", "177", "199")
# fmt: on


class _Phones:
    """The n-th phone is n through an affine permutation of every (prefix, 8 digits) pair: unique by
    construction, and neighbours look unrelated. The multiplier is prime to 2 and 5, hence to the size."""

    SIZE = len(_PHONE_PREFIXES) * 10**8

    def __init__(self, rng: random.Random) -> None:
        self._n = 0
        self._offset = rng.randrange(self.SIZE)

    def take(self) -> str:
        n, self._n = self._n, self._n + 1
        prefix, line = divmod((n * 1_234_567_891 + self._offset) % self.SIZE, 10**8)
        return f"{_PHONE_PREFIXES[prefix]}{line:08d}"


# --- generated people, household by household ------------------------------------------------------


@dataclass(slots=True)
class _Member:
    name: str
    id_number: str
    birth_date: date
    male: bool
    phone: str | None
    alive: bool
    household_id: str
    relation: str  # head | spouse | child
    pk: int = 0  # set when written


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # from 29 February to 1 March, as services.identifiers.eighteenth_birthday does
        return date(day.year + years, 3, 1)


def _is_minor(born: date, on: date = AS_OF) -> bool:
    return _years_after(born, 18) > on


def _random_day(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _generated_households(seed: int, count: int) -> Iterator[list[_Member]]:
    """`count` persons in households: a head, often a spouse, children (some of them minors)."""
    rng = random.Random(f"{seed}:people")
    ids, phones = _IdNumbers(), _Phones(rng)
    made = number = 0
    while made < count:
        number += 1
        household = f"HH{number:08d}"
        home = rng.choices(range(len(DISTRICTS)), cum_weights=_PEOPLE_CUM)[0]

        def member(
            surname: str, male: bool, born: date, relation: str, district: int, household: str = household
        ) -> _Member:
            id_number = ids.take(district, born, male)
            while id_number is None:  # that day is full for the district: a neighbouring day
                born += timedelta(days=1 if born < _LAST_BIRTH else -1)
                id_number = ids.take(district, born, male)
            alive = born.year >= 1950 or rng.random() > 0.12
            phone = phones.take() if _years_after(born, 14) <= AS_OF else None
            name = surname + _given_name(rng, male, born)
            return _Member(name, id_number, born, male, phone, alive, household, relation)

        def surname() -> str:
            return rng.choices(_SURNAME_POOL, cum_weights=_SURNAME_CUM)[0]

        head_male = rng.random() < 0.55
        year = min(1998, int(rng.triangular(1940, 1999, 1972)))
        head = member(
            surname(), head_male, _random_day(rng, date(year, 1, 1), date(year, 12, 31)), "head", home
        )
        members = [head]
        if rng.random() < 0.7:
            offset = timedelta(days=rng.randint(-3 * 365, 6 * 365))
            born = head.birth_date + offset if head_male else head.birth_date - offset
            born = min(max(born, _FIRST_BIRTH), date(2000, 12, 31))
            where = (
                home if rng.random() < 0.5 else rng.choices(range(len(DISTRICTS)), cum_weights=_PEOPLE_CUM)[0]
            )
            members.append(member(surname(), not head_male, born, "spouse", where))
        mother = next((m for m in members if not m.male), head)
        family = next((m for m in members if m.male), head).name
        family = family[:2] if family[:2] in _COMPOUND_SURNAMES else family[:1]
        born = mother.birth_date + timedelta(days=rng.randint(22 * 365, 34 * 365))
        for _ in range(rng.choices((0, 1, 2, 3), weights=(30, 48, 20, 2))[0]):
            if born > _LAST_BIRTH:
                break
            where = (
                home
                if rng.random() < 0.85
                else rng.choices(range(len(DISTRICTS)), cum_weights=_PEOPLE_CUM)[0]
            )
            members.append(member(family, rng.random() < 0.52, born, "child", where))
            born += timedelta(days=rng.randint(2 * 365, 8 * 365))
        members = members[: count - made]
        made += len(members)
        yield members


# --- civil-registry data ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CivilRegistryData:
    """Ready for `CivilRegistrySimulator.load(people=..., guardianships=...)` or its `PUT /_sim/data`."""

    people: list[dict[str, Any]]
    guardianships: list[tuple[str, str, str]]  # (guardian ID number, ward ID number, "father" | "mother")


def _registry_record(
    id_number: str, name: str, born: date, male: bool, alive: bool, household: str, relation: str
) -> dict[str, Any]:
    return {
        "id_number": id_number,
        "name": name,
        "birth_date": born.isoformat(),
        "gender": "male" if male else "female",
        "alive": alive,
        "household_id": household,
        "relation": relation,
    }


def civil_registry_dataset(*, seed: int, persons: int = 2000) -> CivilRegistryData:
    """The people of `seed_demo_data(seed=seed, persons=persons)` as the civil registry knows them:
    households, and minors (under 18 on AS_OF) with their living parents as guardians."""
    return _civil_registry(_generated_households(seed, persons))


def _civil_registry(households: Iterable[list[_Member]]) -> CivilRegistryData:
    people = [
        _registry_record(p.id_number, p.name, p.birth_date, p.male, p.alive, p.household_id, p.relation)
        for p in _FIXED_PERSONS
    ]
    guardianships = [
        (_FIXED_BY_KEY[g].id_number, _FIXED_BY_KEY[w].id_number, rel) for g, w, rel in _GUARDIANSHIPS
    ]
    for household in households:
        parents = [m for m in household if m.relation != "child" and m.alive]
        for m in household:
            people.append(
                _registry_record(
                    m.id_number, m.name, m.birth_date, m.male, m.alive, m.household_id, m.relation
                )
            )
            if m.relation == "child" and _is_minor(m.birth_date):
                guardianships += [
                    (p.id_number, m.id_number, "father" if p.male else "mother") for p in parents
                ]
    return CivilRegistryData(people, guardianships)


async def civil_registry_dataset_from_db(
    *, vault: PiiVault, seed: int, chunk: int = 5000
) -> CivilRegistryData:
    """`civil_registry_dataset` for the persons a database was actually seeded with, whatever
    `persons` was then (a later start-up may have other settings; seeding is skipped once done).

    A seed's persons are a prefix of one endless stream, so the stream is walked, a chunk at a time,
    while its persons (found by blind index) are in the database."""
    stream = _generated_households(seed, 2**62)
    seeded: list[list[_Member]] = []
    while True:
        pending: list[list[_Member]] = []
        indexes: list[str] = []
        while len(indexes) < chunk:
            pending.append(next(stream))
            indexes += [vault.blind_index(m.id_number) for m in pending[-1]]
        found = await Person.filter(id_number_index__in=indexes).count()
        if found == len(indexes):
            seeded += pending
            continue
        for household in pending:  # keep the seeded prefix; the last household may be cut short
            if found <= 0:
                break
            seeded.append(household[:found])
            found -= len(household)
        return _civil_registry(seeded)


# --- seeding ---------------------------------------------------------------------------------------

_WRITE_ORDER: tuple[type[Model], ...] = (
    Person,
    RealEstateUnit,
    Right,
    RightHolder,
    Mortgage,
    Encumbrance,
    RegistrationCase,
)
_COURT_ORDER_KINDS = ("执保", "执", "民初")
_REFUSALS = {
    "not_accepted": ("申请材料不齐全，请补正后重新申请", "申请人不是登记簿记载的权利人"),
    "refused": ("申请登记的不动产已被查封", "申请登记的事项与登记簿记载冲突"),
}


async def seed_demo_data(
    *,
    vault: PiiVault,
    seed: int,
    persons: int = 2000,
    units: int = 3000,
    banks: Sequence[DemoBank],
    batch_size: int = 5000,
) -> DemoIdentities:
    """Write the demo register in one transaction; a no-op when the fixed identities are already there
    (whatever the seed or sizes were then). Mortgages go to `banks`; none are created without banks."""
    if persons < 0 or units < 0 or batch_size < 1:
        raise ValueError("persons and units cannot be negative, batch_size must be positive")
    identities = demo_identities(banks)
    marker = vault.blind_index(_FIXED_PERSONS[0].id_number)
    async with in_transaction() as conn:
        if await Person.filter(id_number_index=marker).using_db(conn).exists():
            return identities
        seeder = _Seeder(conn=conn, vault=vault, seed=seed, batch_size=batch_size)
        await seeder.prepare(banks)
        await seeder.write_fixed()
        await seeder.write_generated(persons=persons, units=units)
        await seeder.write_accounts(banks)
        await _advance_sequences(conn)
    return identities


async def _advance_sequences(conn: BaseDBAsyncClient) -> None:
    """We chose the keys ourselves; PostgreSQL's serial sequences must not hand them out again."""
    if conn.capabilities.dialect != "postgres":
        return  # SQLite's rowid picks max(id) + 1 by itself
    for model in _WRITE_ORDER:
        table = model._meta.db_table
        await conn.execute_query(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "  # noqa: S608 - our own table names
            f'(SELECT COALESCE(MAX(id), 0) + 1 FROM "{table}"), false)'
        )


@dataclass(slots=True)
class _Estate:
    district: District
    kind: str  # residential | commercial | office | industrial
    road: str
    number: int  # 弄 for housing estates, 号 otherwise
    parcel: str  # the first 19 characters of its unit numbers
    remaining: int
    buildings: int
    floors: int
    used: set[str] = field(default_factory=set)  # fixture units taken
    parking: int = 0  # spaces numbered so far


class _Seeder:
    def __init__(self, *, conn: BaseDBAsyncClient, vault: PiiVault, seed: int, batch_size: int) -> None:
        self.conn, self.vault, self.seed, self.batch_size = conn, vault, seed, batch_size
        self.rng = random.Random(f"{seed}:register")
        self.rows: dict[type[Model], list[Model]] = {m: [] for m in _WRITE_ORDER}
        self.next_pk: dict[type[Model], int] = {}
        self.sequences: dict[tuple[str, ...], int] = {}
        self.estate: _Estate | None = None
        self.estates = 0
        self.bank_pks: list[int] = []
        self.company_pks: list[int] = []
        self.office_names = {code_district: name for _, code_district, name, _ in reversed(OFFICES)}

    # -- plumbing --

    async def prepare(self, banks: Sequence[DemoBank]) -> None:
        for model in _WRITE_ORDER:
            last: list[Any] = (
                await model.all().using_db(self.conn).order_by("-id").limit(1).values_list("id", flat=True)
            )
            self.next_pk[model] = int(last[0]) + 1 if last else 1
        existing = {o.credit_code: o for o in await Organisation.all().using_db(self.conn)}
        for bank in banks:
            org = existing.get(bank.uscc) or await Organisation.create(
                name=bank.name, credit_code=bank.uscc, kind="bank", bank_code=bank.code, using_db=self.conn
            )
            self.bank_pks.append(org.id)
        for i, (name, district) in enumerate(_COMPANIES):
            code = credit_code(district_code=district, organisation_code=f"MA1K{i + 1:04d}")
            org = existing.get(code) or await Organisation.create(
                name=name, credit_code=code, kind="company", using_db=self.conn
            )
            self.company_pks.append(org.id)
        have = set(await Office.all().using_db(self.conn).values_list("code", flat=True))
        await Office.bulk_create(
            [Office(code=c, district_code=d, name=n, address=a) for c, d, n, a in OFFICES if c not in have],
            using_db=self.conn,
        )

    def pk(self, model: type[Model]) -> int:
        value = self.next_pk[model]
        self.next_pk[model] = value + 1
        return value

    def add(self, row: Model) -> None:
        self.rows[type(row)].append(row)

    async def flush(self) -> None:
        for model in _WRITE_ORDER:
            if rows := self.rows[model]:
                await model.bulk_create(rows, using_db=self.conn)
                rows.clear()

    def sequence(
        self,
        key: tuple[str, ...],
        *,
        limit: int,
        start: int = 3000,
        reserved: frozenset[str] = frozenset(),
        render: Any = str,
    ) -> str:
        """Increasing numbers per key with irregular gaps, starting somewhere plausible below `start`."""
        while True:
            if key not in self.sequences:
                self.sequences[key] = self.rng.randint(1, start)
            n = self.sequences[key] + self.rng.randint(1, 12)
            if n >= limit:
                raise RuntimeError(f"demo numbering for {key} exceeded {limit}: too many rows for one year")
            self.sequences[key] = n
            value = str(render(n))
            if value not in reserved:
                return value

    def when(self, day: date) -> datetime:
        """A moment in office hours on the working day nearest `day`, stored in UTC."""
        if day.weekday() == 5:
            day -= timedelta(days=1)
        elif day.weekday() == 6:
            day += timedelta(days=1) if day < AS_OF else timedelta(days=-2)
        hour, minute = self.rng.randint(9, 16), self.rng.randrange(60)
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)

    def certificate(self, kind: str, year: int, district: str) -> str:
        place = _DISTRICT[district].name
        return self.sequence(
            (kind, str(year), district),
            limit=8_000_000,
            start=60_000,
            reserved=_FIXED_CERTIFICATES,
            render=lambda n: format_certificate_number(year=year, place=place, kind=kind, sequence=n),
        )

    # -- rows --

    def person(self, *, name: str, id_number: str, birth_date: date, male: bool, phone: str | None) -> int:
        pk = self.pk(Person)
        self.add(
            Person(
                id=pk,
                name=name,
                id_number_enc=self.vault.encrypt(id_number),
                id_number_index=self.vault.blind_index(id_number),
                id_number_masked=mask_id_number(id_number),
                phone=phone,
                birth_date=birth_date,
                gender="M" if male else "F",
            )
        )
        return pk

    def unit(self, *, number: str, district: str, address: str, use: str, area: Decimal) -> int:
        pk = self.pk(RealEstateUnit)
        self.add(
            RealEstateUnit(
                id=pk, unit_number=number, district_code=district, address=address, use=use, area_m2=area
            )
        )
        return pk

    def right(
        self,
        *,
        unit: int,
        district: str,
        registered: datetime,
        certificate: str | None = None,
        persons: Sequence[tuple[int, Decimal]] = (),
        organisation: int | None = None,
        co_ownership: str = "sole",
        ended: datetime | None = None,
    ) -> int:
        pk = self.pk(Right)
        self.add(
            Right(
                id=pk,
                certificate_number=certificate or self.certificate("right", registered.year, district),
                unit_id=unit,
                right_type="house_ownership",
                co_ownership=co_ownership,
                status="historical" if ended else "current",
                registered_at=registered,
                ended_at=ended,
                district_code=district,
            )
        )
        for person, share in persons:
            self.add(RightHolder(id=self.pk(RightHolder), right_id=pk, person_id=person, share=share))
        if organisation is not None:
            self.add(RightHolder(id=self.pk(RightHolder), right_id=pk, organisation_id=organisation, share=1))
        return pk

    def mortgage(
        self,
        *,
        right: int,
        district: str,
        bank: int,
        amount_fen: int,
        start: date,
        years: int,
        cancelled: date | None,
        certificate: str | None = None,
        registered: datetime | None = None,
    ) -> None:
        registered = registered or self.when(start)
        start = registered.astimezone(SHANGHAI).date()  # the term runs from the registration day
        self.add(
            Mortgage(
                id=self.pk(Mortgage),
                certificate_number=certificate or self.certificate("registration", start.year, district),
                right_id=right,
                mortgagee_id=bank,
                amount_fen=amount_fen,
                term_start=start,
                term_end=_years_after(start, years) - timedelta(days=1),
                status="cancelled" if cancelled else "active",
                registered_at=registered,
                cancelled_at=self.when(cancelled) if cancelled else None,
            )
        )

    def case(
        self,
        *,
        unit: int,
        right: int | None,
        district: str,
        kind: str,
        state: str,
        applied: date,
        reason: str | None = None,
    ) -> None:
        number = self.sequence(
            ("case", str(applied.year), district),
            limit=10_000_000,
            render=lambda n: f"{applied.year}{district}{n:07d}",
        )
        self.add(
            RegistrationCase(
                id=self.pk(RegistrationCase),
                case_number=number,
                unit_id=unit,
                right_id=right,
                kind=kind,
                state=state,
                reason=reason,
                applied_at=self.when(applied),
            )
        )

    # -- the fixed identities --

    async def write_fixed(self) -> None:
        pks = {
            p.key: self.person(
                name=p.name, id_number=p.id_number, birth_date=p.birth_date, male=p.male, phone=p.phone
            )
            for p in _FIXED_PERSONS
        }
        for u in _FIXED_UNITS:
            district = u.unit_number[:6]
            unit = self.unit(
                number=u.unit_number, district=district, address=u.address, use=u.use, area=Decimal(u.area_m2)
            )
            right = 0
            for r in u.rights:
                right = self.right(
                    unit=unit,
                    district=district,
                    registered=_at_ten(r.registered),
                    certificate=r.certificate,
                    persons=[(pks[key], Decimal(share)) for key, share in r.holders],
                    co_ownership=r.co_ownership,
                    ended=_at_ten(r.ended) if r.ended else None,
                )
            for m in u.mortgages:
                if self.bank_pks:
                    self.mortgage(
                        right=right,
                        district=district,
                        bank=self.bank_pks[m.bank_index % len(self.bank_pks)],
                        amount_fen=m.amount_fen,
                        start=m.term_start,
                        years=m.years,
                        cancelled=m.cancelled,
                        certificate=m.certificate,
                        registered=_at_ten(m.term_start),
                    )
        await self.flush()

    # -- generated data, a block of households at a time --

    async def write_generated(self, *, persons: int, units: int) -> None:
        block: list[list[_Member]] = []
        people_done = units_done = in_block = 0
        for household in _generated_households(self.seed, persons):
            block.append(household)
            people_done += len(household)
            in_block += len(household)
            if in_block >= self.batch_size:
                share = units * people_done // persons - units_done
                self.block(block, share)
                units_done += share
                await self.flush()
                block, in_block = [], 0
        self.block(block, units - units_done)
        await self.flush()

    def block(self, households: list[list[_Member]], units: int) -> None:
        for household in households:
            for m in household:
                m.pk = self.person(
                    name=m.name, id_number=m.id_number, birth_date=m.birth_date, male=m.male, phone=m.phone
                )
        rng = self.rng
        # A quarter of the households own nothing; the others one or several homes, a few many.
        weights = [
            0.0 if rng.random() < 0.25 else rng.choice((1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 5.0))
            for _ in households
        ]
        cum = list(accumulate(weights)) if sum(weights) else None
        for _ in range(units):
            district, unit, use, area = self.next_unit()
            # Developers keep unsold flats and most parking spaces; companies hold most non-housing.
            company = rng.random() < {"residential": 0.2, "parking": 0.6}.get(use, 0.6)
            if company or not households:
                self.company_title(unit, district, area)
            else:
                owner = rng.choices(households, cum_weights=cum)[0] if cum else rng.choice(households)
                self.household_title(unit, district, use, area, owner, households)

    def next_unit(self) -> tuple[str, int, str, Decimal]:
        rng = self.rng
        if self.estate is None or self.estate.remaining == 0:
            self.estate = self.new_estate()
        e = self.estate
        e.remaining -= 1
        d = e.district
        place = f"上海市{d.name}{e.road}{e.number}"
        use = e.kind
        if e.kind == "residential" and rng.random() < 0.1:
            e.parking += 1
            fixture, address, use = f"0999{e.parking:04d}", f"{place}弄地下车库{e.parking}号车位", "parking"
            area = Decimal(rng.randint(1200, 1500)) / 100
        elif e.kind == "industrial":
            e.buildings += 1
            fixture, address = f"{e.buildings:04d}0001", f"{place}号{e.buildings}幢"
            area = Decimal(rng.randint(50000, 500000)) / 100
        else:
            while True:
                building = rng.randint(1, e.buildings)
                floor = rng.randint(1, e.floors)
                room = floor * 100 + rng.randint(1, 4 if e.kind != "commercial" else 12)
                fixture = f"{building:04d}{room:04d}"
                if fixture not in e.used:
                    break
            e.used.add(fixture)
            if use == "residential":
                address = f"{place}弄{building}号{room}室"
                area = Decimal(round(min(260.0, max(28.0, rng.lognormvariate(4.45, 0.32))) * 100)) / 100
            elif use == "commercial":
                address = f"{place}号{floor}层{room % 100:02d}商铺"
                area = Decimal(rng.randint(2000, 40000)) / 100
            else:
                address = f"{place}号{room}室"
                area = Decimal(rng.randint(6000, 60000)) / 100
        number = f"{e.parcel}F{fixture}"
        return (
            d.code,
            self.unit(number=number, district=d.code, address=address, use=use, area=area),
            use,
            area,
        )

    def new_estate(self) -> _Estate:
        rng = self.rng
        self.estates += 1
        # The first 16 estates visit every district, so even a tiny demo covers the whole city.
        district = (
            DISTRICTS[self.estates - 1]
            if self.estates <= len(DISTRICTS)
            else rng.choices(DISTRICTS, cum_weights=_PEOPLE_CUM)[0]
        )
        kind = rng.choices(("residential", "commercial", "office", "industrial"), weights=(86, 6, 5, 3))[0]
        if kind == "industrial" and district.price_per_m2 > 60_000:
            kind = "office"
        cadastral, subdistrict = rng.randint(10, 39), rng.randint(1, 20)
        parcel = int(
            self.sequence(("parcel", district.code, str(cadastral), str(subdistrict)), limit=100_000)
        )
        size = {"residential": (4, 16), "commercial": (1, 4), "office": (2, 8), "industrial": (1, 2)}[kind]
        return _Estate(
            district=district,
            kind=kind,
            road=rng.choice(district.roads),
            number=rng.randint(1, 2000),
            parcel=f"{district.code}{cadastral:03d}{subdistrict:03d}GB{parcel:05d}",
            remaining=rng.randint(*size),
            buildings=rng.randint(4, 40) if kind == "residential" else 0 if kind == "industrial" else 3,
            floors=rng.randint(6, 33) if kind in ("residential", "office") else rng.randint(1, 3),
        )

    def company_title(self, unit: int, district: str, area: Decimal) -> None:
        rng = self.rng
        registered = _random_day(rng, REGISTER_START, AS_OF)
        right = self.right(
            unit=unit,
            district=district,
            registered=self.when(registered),
            organisation=rng.choice(self.company_pks),
        )
        if self.bank_pks and rng.random() < 0.3:
            self.maybe_mortgage(right, district, area, registered, always=True)

    def household_title(
        self,
        unit: int,
        district: str,
        use: str,
        area: Decimal,
        owner: list[_Member],
        block: list[list[_Member]],
    ) -> None:
        rng = self.rng
        head = owner[0]
        start = max(REGISTER_START, _years_after(head.birth_date, 18))
        registered = _random_day(rng, start, AS_OF)
        # Earlier owners: registration history for about a quarter of the homes.
        transfer = rng.random() < 0.5  # bought from a developer (first) or second-hand (transfer)
        if (
            use == "residential"
            and len(block) > 1
            and rng.random() < 0.25
            and (registered - REGISTER_START).days > 90
        ):
            previous = [_random_day(rng, REGISTER_START, registered - timedelta(days=60))]
            if rng.random() < 0.3 and (previous[0] - REGISTER_START).days > 90:
                previous.insert(0, _random_day(rng, REGISTER_START, previous[0] - timedelta(days=60)))
            moments = [self.when(day) for day in [*previous, registered]]
            for i, day in enumerate(previous):
                seller = owner
                while seller is owner:
                    seller = rng.choice(block)
                holders = [
                    m for m in seller if m.relation != "child" and _years_after(m.birth_date, 18) <= day
                ]
                holders = holders or seller[:1]
                joint = len(holders) > 1 and rng.random() < 0.5
                right = self.right(
                    unit=unit,
                    district=district,
                    registered=moments[i],
                    ended=moments[i + 1],
                    persons=[
                        (m.pk, Decimal("0.5") if joint else Decimal(1)) for m in holders[: 2 if joint else 1]
                    ],
                    co_ownership="joint" if joint else "sole",
                )
                if self.bank_pks and rng.random() < 0.3:
                    self.mortgage(
                        right=right,
                        district=district,
                        bank=rng.choice(self.bank_pks),
                        amount_fen=self.loan(district, area),
                        start=day + timedelta(days=rng.randint(0, 7)),
                        years=rng.choice((10, 15, 20, 25, 30)),
                        cancelled=moments[i + 1].date(),
                    )
            when, transfer = moments[-1], True
        else:
            when = self.when(registered)
        persons, co_ownership = self.holders(owner, use, when.date())
        right = self.right(
            unit=unit, district=district, registered=when, persons=persons, co_ownership=co_ownership
        )
        if use == "residential" and self.bank_pks:
            self.maybe_mortgage(right, district, area, when.date())
        self.maybe_encumber(right, district, when.date())
        self.maybe_cases(unit, right, district, when.date(), transfer=transfer)

    def holders(self, household: list[_Member], use: str, day: date) -> tuple[list[tuple[int, Decimal]], str]:
        """Who holds a household's new right, and how: sole, joint (共同共有) or in shares (按份共有)."""
        rng = self.rng
        adults = [m for m in household if m.relation != "child" and _years_after(m.birth_date, 18) <= day]
        adults = adults or household[:1]
        children = [m for m in household if m.relation == "child" and m.birth_date < day - timedelta(days=30)]
        if use != "residential":
            return [(adults[0].pk, Decimal(1))], "sole"
        r = rng.random()
        if children and r < 0.12:  # parents put a child on the title: shares, the child's part 20%
            parent_share = Decimal("0.8") / len(adults[:2])
            return [(m.pk, parent_share) for m in adults[:2]] + [(children[0].pk, Decimal("0.2"))], "shares"
        if len(adults) >= 2 and r < 0.55:
            return [(adults[0].pk, Decimal("0.5")), (adults[1].pk, Decimal("0.5"))], "joint"
        if len(adults) >= 2 and r < 0.75:
            first = rng.choice((Decimal("0.5"), Decimal("0.6"), Decimal("0.7")))
            return [(adults[0].pk, first), (adults[1].pk, 1 - first)], "shares"
        return [(rng.choice(adults).pk, Decimal(1))], "sole"

    def loan(self, district: str, area: Decimal) -> int:
        rng = self.rng
        price = _DISTRICT[district].price_per_m2 * rng.uniform(0.8, 1.25)
        yuan = round(float(area) * price * rng.uniform(0.3, 0.65), -4)
        return max(100_000, int(yuan)) * 100

    def maybe_mortgage(
        self, right: int, district: str, area: Decimal, registered: date, *, always: bool = False
    ) -> None:
        rng = self.rng
        if not always and rng.random() >= 0.3:
            return
        start = min(AS_OF, registered + timedelta(days=rng.randint(0, 7)))
        years = rng.choice((5, 10, 15, 20, 25, 30))
        end = _years_after(start, years)
        cancelled = None
        if end <= AS_OF:
            cancelled = end
        elif rng.random() < 0.12 and (AS_OF - start).days > 30:  # paid off early
            cancelled = _random_day(rng, start + timedelta(days=30), AS_OF)
        self.mortgage(
            right=right,
            district=district,
            bank=rng.choice(self.bank_pks),
            amount_fen=self.loan(district, area),
            start=start,
            years=years,
            cancelled=cancelled,
        )

    def maybe_encumber(self, right: int, district: str, registered: date) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.01:  # seizure (查封) by the district court, three years unless lifted
            starts = _random_day(rng, registered, AS_OF)
            ends = _years_after(starts, 3)
            lifted = (
                ends if ends < AS_OF else (_random_day(rng, starts, AS_OF) if rng.random() < 0.2 else None)
            )
            court = _DISTRICT[district].name
            number = self.sequence(("court", str(starts.year), district), limit=100_000)
            self.add(
                Encumbrance(
                    id=self.pk(Encumbrance),
                    right_id=right,
                    kind="seizure",
                    authority=f"上海市{court}人民法院",
                    document_number=f"({starts.year})沪01{district[4:]}{rng.choice(_COURT_ORDER_KINDS)}{number}号",
                    starts_on=starts,
                    ends_on=ends,
                    status="lifted" if lifted else "active",
                    registered_at=self.when(starts),
                    lifted_at=self.when(lifted) if lifted else None,
                )
            )
        elif r < 0.014:  # objection (异议登记): void after 15 days unless the objector sues
            recent = rng.random() < 0.5
            starts = _random_day(rng, max(registered, AS_OF - timedelta(days=12 if recent else 720)), AS_OF)
            ends = starts + timedelta(days=15)
            self.add(
                Encumbrance(
                    id=self.pk(Encumbrance),
                    right_id=right,
                    kind="objection",
                    authority=self.office_names[district],
                    document_number=self.certificate("registration", starts.year, district),
                    starts_on=starts,
                    ends_on=ends,
                    status="active" if ends >= AS_OF else "lifted",
                    registered_at=self.when(starts),
                    lifted_at=self.when(ends) if ends < AS_OF else None,
                )
            )

    def maybe_cases(self, unit: int, right: int, district: str, registered: date, *, transfer: bool) -> None:
        rng = self.rng
        if rng.random() < 0.12:  # the completed case that registered the current right
            applied = max(REGISTER_START, registered - timedelta(days=rng.randint(2, 9)))
            self.case(
                unit=unit,
                right=right,
                district=district,
                kind="transfer" if transfer else "first",
                state="issued",
                applied=applied,
            )
        r = rng.random()
        if r < 0.015:  # in progress now
            kind = rng.choices(("transfer", "mortgage", "mortgage_cancel"), weights=(4, 4, 2))[0]
            state = rng.choices(("applied", "accepted", "reviewing", "registered"), weights=(3, 2, 3, 2))[0]
            self.case(
                unit=unit,
                right=right,
                district=district,
                kind=kind,
                state=state,
                applied=AS_OF - timedelta(days=rng.randint(0, 9)),
            )
        elif r < 0.02:  # turned down
            state = rng.choice(("not_accepted", "refused"))
            self.case(
                unit=unit,
                right=right,
                district=district,
                kind=rng.choice(("transfer", "mortgage")),
                state=state,
                applied=_random_day(rng, registered, AS_OF),
                reason=rng.choice(_REFUSALS[state]),
            )

    # -- accounts --

    async def write_accounts(self, banks: Sequence[DemoBank]) -> None:
        staff_have = set(await StaffUser.all().using_db(self.conn).values_list("username", flat=True))
        clients_have = set(await ApiClient.all().using_db(self.conn).values_list("client_id", flat=True))
        staff = [s for s in _FIXED_STAFF if s.username not in staff_have]
        clients = [
            (b, org) for b, org in zip(banks, self.bank_pks, strict=True) if b.client_id not in clients_have
        ]
        # argon2 is slow (and takes 64 MiB) on purpose: one worker thread keeps the loop free.
        hasher = PasswordHasher()
        secrets = [s.password for s in staff] + [b.client_secret for b, _ in clients]
        hashes = await asyncio.to_thread(lambda: [hasher.hash(secret) for secret in secrets])
        for s, password_hash in zip(staff, hashes, strict=False):
            await StaffUser.create(
                username=s.username,
                display_name=s.display_name,
                password_hash=password_hash,
                role=s.role,
                office_code=s.office_code,
                using_db=self.conn,
            )
        for (bank, org), secret_hash in zip(clients, hashes[len(staff) :], strict=True):
            await ApiClient.create(
                client_id=bank.client_id,
                secret_hash=secret_hash,
                organisation_id=org,
                bank_code=bank.code,
                scopes=" ".join(bank.scopes),
                using_db=self.conn,
            )


def _at_ten(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 10, tzinfo=SHANGHAI).astimezone(UTC)
