"""The fixed identities the demo documents (docs/demo.md): citizens, their homes and mortgages,
staff and bank API clients, the same for every seed, and their rendering as console text and
Markdown."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from services.identifiers import id_check_char, mask_id_number


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
class DemoDeveloper:
    """A developer (房地产开发企业) with a staff sign-in (in FIXED_STAFF, role `organisation`) and an
    API client for its own system, holding the land-use right of a parcel whose new building is
    ready for first registration (docs/demo.md)."""

    name: str
    credit_code: str
    staff_username: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    parcel_unit_number: str
    parcel_address: str
    land_certificate: str
    building_number: str
    building_address: str
    unit_numbers: tuple[str, ...]


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
    developers: tuple[DemoDeveloper, ...] = ()

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
            (
                "Developers (staff sign in with the username above; their system with client credentials)",
                [
                    "name",
                    "credit code",
                    "staff",
                    "client_id",
                    "client_secret",
                    "scopes",
                    "parcel",
                    "units ready",
                ],
                [
                    [
                        d.name,
                        d.credit_code,
                        d.staff_username,
                        d.client_id,
                        d.client_secret,
                        " ".join(d.scopes),
                        d.parcel_unit_number,
                        f"{len(d.unit_numbers)} in building {d.building_number}: {d.unit_numbers[0]} ..",
                    ]
                    for d in self.developers
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
FIXED_PERSONS: tuple[_FixedPerson, ...] = (
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
    _FixedPerson("spouse_housed", "赵婷", "310106", date(1992, 4, 12), 912, "13900000006",
                 "DEMO-H5", "spouse", True,
                 "No property of her own; her husband holds a 静安区 flat: no-housing certificate "
                 "refused for a purchase (the household counts), issued for talent settlement"),
    _FixedPerson("housed_husband", "孙浩", "310106", date(1990, 1, 23), 911, "13900000007",
                 "DEMO-H5", "head", True,
                 "Husband of spouse_housed; a flat in 静安区 in his sole name"),
    _FixedPerson("seller", "吴建国", "310112", date(1978, 5, 6), 913, "13900000008",
                 "DEMO-H6", "head", True,
                 "Sells his 闵行区 flat to buyer online: the transfer case with its water, power, gas "
                 "and cable-TV transfers (docs/demo.md)"),
    _FixedPerson("buyer", "郑晓雯", "310115", date(1995, 7, 21), 914, "13900000009",
                 "DEMO-H7", "head", True,
                 "Buys seller's 闵行区 flat; no property before"),
)
# fmt: on
FIXED_BY_KEY = {p.key: p for p in FIXED_PERSONS}
GUARDIANSHIPS = (("second_guardian", "child", "father"), ("guardian", "child", "mother"))


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
FIXED_UNITS: tuple[_FixedUnit, ...] = (
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
        "310106007002GB00215F00060801", "上海市静安区共和新路2150弄6号801室", "residential", "76.20",
        (_FixedRight("沪(2022)静安区不动产权第0173342号", (("housed_husband", "1"),), "sole",
                     date(2022, 9, 14)),),
    ),
    _FixedUnit(
        "310101004002GB00056F00050402", "上海市黄浦区瞿溪路1111弄5号402室", "residential", "48.70",
        (_FixedRight("沪(2016)黄浦区不动产权第0021457号", (("grandmother", "1"),), "sole",
                     date(2016, 10, 11), ended=date(2023, 3, 2)),
         _FixedRight("沪(2023)黄浦区不动产权第0064318号", (("child", "1"),), "sole",
                     date(2023, 3, 2))),
    ),
    _FixedUnit(
        "310112002006GB00417F00120602", "上海市闵行区莘松路958弄12号602室", "residential", "88.30",
        (_FixedRight("沪(2018)闵行区不动产权第0214577号", (("seller", "1"),), "sole",
                     date(2018, 6, 20)),),
    ),
)
# fmt: on
# The demo developer: its land-use right on a parcel in 浦东新区 and a new building of six flats
# there, not in the register yet (its first registration is the demo's, docs/demo.md).
_PARCEL = "310115005009GB00777W00000000"
DEMO_DEVELOPER = DemoDeveloper(
    name="上海锦绣置业有限公司",
    credit_code="91310115MA1KD0016B",  # demo.companies.credit_code("310115", "MA1KD001")
    staff_username="developer.jinxiu",
    client_id="jinxiu-dev-system",
    client_secret="demo-jinxiu-client-secret-2026",  # noqa: S106 - a documented demo credential
    scopes=("registration:apply", "registration:read"),
    parcel_unit_number=_PARCEL,
    parcel_address="上海市浦东新区锦绣路1888弄地块",
    land_certificate="沪(2024)浦东新区不动产权第0777001号",
    building_number="0003",
    building_address="上海市浦东新区锦绣路1888弄3号",
    unit_numbers=tuple(f"{_PARCEL[:19]}F0003{floor:02d}0{flat}" for floor in (1, 2, 3) for flat in (1, 2)),
)
FIXED_CERTIFICATES = frozenset(
    [DEMO_DEVELOPER.land_certificate]
    + [r.certificate for u in FIXED_UNITS for r in u.rights]
    + [m.certificate for u in FIXED_UNITS for m in u.mortgages]
)

# fmt: off
FIXED_STAFF = (
    DemoStaff("clerk.pudong", "Demo-Pudong-2026!", "clerk", "OFF-310115-01", "陆佳怡",
              "Clerk at 浦东新区不动产登记事务中心"),
    DemoStaff("clerk.xuhui", "Demo-Xuhui-2026!", "clerk", "OFF-310104-01", "沈浩",
              "Clerk at 徐汇区不动产登记事务中心"),
    DemoStaff("clerk.minhang", "Demo-Minhang-2026!", "clerk", "OFF-310112-01", "顾晓峰",
              "Clerk at 闵行区不动产登记事务中心: the demo transfer case goes to this office"),
    DemoStaff("admin", "Demo-Admin-2026!", "admin", None, "系统管理员", "Administrator, no office"),
    DemoStaff("developer.jinxiu", "Demo-Jinxiu-2026!", "organisation", None, "林嘉欣",
              "Staff of the developer 上海锦绣置业有限公司: applies for the first registration of its "
              "new building"),
)
# fmt: on


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
            for p in FIXED_PERSONS
        ),
        staff=FIXED_STAFF,
        banks=tuple(
            DemoBankClient(b.code, b.name, b.uscc, b.client_id, b.client_secret, tuple(b.scopes))
            for b in banks
        ),
        properties=tuple(_demo_properties([b.code for b in banks])),
        developers=(DEMO_DEVELOPER,),
    )


_CO_OWNERSHIP_WORDS = {"sole": "单独所有", "joint": "共同共有", "shares": "按份共有"}


def _demo_properties(bank_codes: Sequence[str]) -> Iterator[DemoProperty]:
    for u in FIXED_UNITS:
        for i, r in enumerate(u.rights):
            holders = ", ".join(
                FIXED_BY_KEY[key].name + ("" if r.co_ownership == "sole" else f" {Decimal(share) * 100:.0f}%")
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
