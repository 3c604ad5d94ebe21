"""The generated part of the register, a block of households at a time: estates and their units
spread over the districts, who holds them (companies or households, with earlier owners for some),
and the mortgages, seizures, objections and registration cases on them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from itertools import accumulate

from tortoise.backends.base.client import BaseDBAsyncClient

from demo.people import Member, generated_households, random_day, years_after
from demo.places import AS_OF, DISTRICT_BY_CODE, DISTRICTS, PEOPLE_CUM, REGISTER_START, District
from demo.writer import RegisterWriter
from services.pii import PiiVault
from services.registry.models import Encumbrance

_COURT_ORDER_KINDS = ("执保", "执", "民初")
_REFUSALS = {
    "not_accepted": ("申请材料不齐全，请补正后重新申请", "申请人不是登记簿记载的权利人"),
    "refused": ("申请登记的不动产已被查封", "申请登记的事项与登记簿记载冲突"),
}


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


class GeneratedRegister(RegisterWriter):
    """Fills estates one after another; `estate` is the one being filled."""

    def __init__(
        self, *, conn: BaseDBAsyncClient | None, vault: PiiVault, seed: int, batch_size: int
    ) -> None:
        super().__init__(conn=conn, vault=vault, seed=seed, batch_size=batch_size)
        self.estate: _Estate | None = None
        self.estates = 0

    async def write_generated(self, *, persons: int, units: int) -> None:
        block: list[list[Member]] = []
        people_done = units_done = in_block = 0
        for household in generated_households(self.seed, persons):
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

    def block(self, households: list[list[Member]], units: int) -> None:
        for household in households:
            for m in household:
                m.pk = self.person(name=m.name, id_number=m.id_number, phone=m.phone)
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
            else rng.choices(DISTRICTS, cum_weights=PEOPLE_CUM)[0]
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
        registered = random_day(rng, REGISTER_START, AS_OF)
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
        owner: list[Member],
        block: list[list[Member]],
    ) -> None:
        rng = self.rng
        head = owner[0]
        start = max(REGISTER_START, years_after(head.birth_date, 18))
        registered = random_day(rng, start, AS_OF)
        # Earlier owners: registration history for about a quarter of the homes.
        transfer = rng.random() < 0.5  # bought from a developer (first) or second-hand (transfer)
        if self.wants_history(use, block, registered):
            previous = [random_day(rng, REGISTER_START, registered - timedelta(days=60))]
            while self.more_history(previous):
                previous.insert(0, random_day(rng, REGISTER_START, previous[0] - timedelta(days=60)))
            moments = [self.when(day) for day in [*previous, registered]]
            for i, day in enumerate(previous):
                seller = owner
                while seller is owner:
                    seller = rng.choice(block)
                holders = [
                    m for m in seller if m.relation != "child" and years_after(m.birth_date, 18) <= day
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

    def wants_history(self, use: str, block: list[list[Member]], registered: date) -> bool:
        """Whether a household's home had earlier owners (from the same block): a quarter of homes."""
        return (
            use == "residential"
            and len(block) > 1
            and self.rng.random() < 0.25
            and (registered - REGISTER_START).days > 90
        )

    def more_history(self, previous: list[date]) -> bool:
        """Whether one more owner came before `previous[0]` (the earliest so far): at most two."""
        return len(previous) < 2 and self.rng.random() < 0.3 and (previous[0] - REGISTER_START).days > 90

    def holders(self, household: list[Member], use: str, day: date) -> tuple[list[tuple[int, Decimal]], str]:
        """Who holds a household's new right, and how: sole, joint (共同共有) or in shares (按份共有)."""
        rng = self.rng
        adults = [m for m in household if m.relation != "child" and years_after(m.birth_date, 18) <= day]
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
        price = DISTRICT_BY_CODE[district].price_per_m2 * rng.uniform(0.8, 1.25)
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
        end = years_after(start, years)
        cancelled = None
        if end <= AS_OF:
            cancelled = end
        elif rng.random() < 0.12 and (AS_OF - start).days > 30:  # paid off early
            cancelled = random_day(rng, start + timedelta(days=30), AS_OF)
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
            starts = random_day(rng, registered, AS_OF)
            ends = years_after(starts, 3)
            lifted = (
                ends if ends < AS_OF else (random_day(rng, starts, AS_OF) if rng.random() < 0.2 else None)
            )
            court = DISTRICT_BY_CODE[district].name
            number = self.sequence(("court", str(starts.year), district), limit=100_000)
            self.row(
                Encumbrance,
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
        elif r < 0.014:  # objection (异议登记): void after 15 days unless the objector sues
            recent = rng.random() < 0.5
            starts = random_day(rng, max(registered, AS_OF - timedelta(days=12 if recent else 720)), AS_OF)
            ends = starts + timedelta(days=15)
            self.row(
                Encumbrance,
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
                applied=random_day(rng, registered, AS_OF),
                reason=rng.choice(_REFUSALS[state]),
            )
