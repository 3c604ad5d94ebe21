"""Where and when the demo register is: Shanghai's districts, their service halls, roads and the
names of the people who live there, and the day the register "is" at."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from itertools import accumulate
from typing import Any

from standards.gb2260 import SHANGHAI_DISTRICTS

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


def _district(code: str, *rest: Any) -> District:
    """A demo district, named by the one district table (standards/gb2260.py)."""
    return District(code, SHANGHAI_DISTRICTS[code], *rest)


DISTRICTS: tuple[District, ...] = (
    _district("310101", 66, 110_000, ("瞿溪路", "制造局路", "陆家浜路", "西藏南路", "复兴中路")),
    _district("310104", 111, 95_000, ("宜山路", "漕溪北路", "田林路", "龙华西路", "斜土路")),
    _district("310105", 69, 90_000, ("仙霞路", "天山路", "古北路", "哈密路", "水城路")),
    _district("310106", 98, 100_000, ("共和新路", "延长中路", "万荣路", "江宁路", "康定路")),
    _district("310107", 124, 70_000, ("曹杨路", "真北路", "武宁路", "金沙江路", "铜川路")),
    _district("310109", 76, 75_000, ("四平路", "曲阳路", "凉城路", "广中路", "大连西路")),
    _district("310110", 124, 72_000, ("控江路", "长阳路", "国和路", "黄兴路", "殷行路")),
    _district("310112", 265, 62_000, ("莘松路", "七莘路", "古美路", "龙茗路", "都市路")),
    _district("310113", 224, 50_000, ("牡丹江路", "友谊路", "共江路", "淞滨路", "呼兰路")),
    _district("310114", 183, 42_000, ("城中路", "塔城路", "博乐路", "清河路", "墨玉路")),
    _district("310115", 568, 78_000, ("张杨路", "崂山路", "东方路", "锦绣路", "杨高南路")),
    _district("310116", 82, 22_000, ("卫零路", "蒙山路", "板桥西路", "龙皓路", "金一东路")),
    _district("310117", 191, 35_000, ("人民北路", "荣乐中路", "中山中路", "新松江路", "文诚路")),
    _district("310118", 127, 35_000, ("公园路", "城中北路", "华青路", "盈港东路", "崧泽大道")),
    _district("310120", 114, 28_000, ("南桥路", "解放东路", "环城北路", "百齐路", "金海路")),
    _district("310151", 63, 20_000, ("八一路", "东门路", "人民路", "翠竹路", "鼓浦路")),
)
DISTRICT_BY_CODE = {d.code: d for d in DISTRICTS}
PEOPLE_CUM = [sum(d.population for d in DISTRICTS[: i + 1]) for i in range(len(DISTRICTS))]


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
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方")
SURNAME_POOL = (*_SURNAMES, *COMPOUND_SURNAMES)
SURNAME_CUM = list(
    accumulate([float(max(2, 60 - i)) for i in range(len(_SURNAMES))] + [0.5] * len(COMPOUND_SURNAMES))
)
# Given-name characters by sex and generation: names follow fashions.
_GIVEN = {
    (True, True): "国建华明平伟德忠荣根林福宝海金兴龙生康",
    (False, True): "秀英桂兰凤珍美芳玉琴梅娣霞红萍丽",
    (True, False): "浩宇轩晨博文杰俊涛磊睿哲泽阳逸航凯翔鑫昊",
    (False, False): "怡欣悦婷雯琳佳璐颖倩诗涵梓萱雨晴思瑶妍静",
}


def given_name(rng: random.Random, male: bool, born: date) -> str:
    chars = _GIVEN[(male, born.year < 1975)]
    return "".join(rng.choice(chars) for _ in range(1 if rng.random() < 0.25 else 2))
