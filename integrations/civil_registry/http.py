"""Civil registry over HTTP/JSON ("http-json-v1")."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

from integrations.base import HttpAdapter
from integrations.civil_registry.base import (
    CivilRegistry,
    Gender,
    GuardianshipChange,
    GuardianshipChangeKind,
    GuardianshipChanges,
    GuardianshipCheck,
    HouseholdMember,
    PersonRecord,
    Relation,
)

# Sex codes, GB/T 2261.1-2003 (人的性别代码).
SEX_CODES: dict[str, Gender] = {
    "0": Gender.UNKNOWN,
    "1": Gender.MALE,
    "2": Gender.FEMALE,
    "9": Gender.UNKNOWN,
}

# Person status codes (人口状态), as the registry's interface returns them. Source: the interface
# description the simulator implements (illustrative until the registry's specification arrives).
PERSON_STATUS_ALIVE: dict[str, bool] = {"10": True, "20": False, "21": False, "30": True}

# Relation to the household head, GB/T 4761-2008 (家庭关系代码): the first digit is the group.
RELATION_GROUPS: dict[str, Relation] = {
    "0": Relation.HEAD,
    "1": Relation.SPOUSE,
    "2": Relation.CHILD,  # 子
    "3": Relation.CHILD,  # 女
    "4": Relation.GRANDCHILD,
    "5": Relation.PARENT,
    "6": Relation.GRANDPARENT,
    "7": Relation.SIBLING,
    "8": Relation.OTHER,
    "9": Relation.OTHER,
}

# Guardianship verification results. Source: as RELATION_GROUPS' note; reason codes pass through.
GUARDIANSHIP_RESULT_VERIFIED: dict[str, bool] = {
    "MATCH": True,
    "WARD_OF_AGE": False,
    "WARD_DECEASED": False,
    "GUARDIAN_DECEASED": False,
}

# Guardianship change codes of the change feed (监护关系变更类型). Source: as RELATION_GROUPS'
# note. An unknown code is a MalformedResponse, not a change silently skipped.
GUARDIANSHIP_CHANGE_CODES: dict[str, GuardianshipChangeKind] = {
    "01": GuardianshipChangeKind.ADDED,  # 设立
    "02": GuardianshipChangeKind.WITHDRAWN,  # 撤销 / 终止
    "03": GuardianshipChangeKind.CHANGED,  # 变更
    "09": GuardianshipChangeKind.PERSON_CHANGED,  # 当事人人口信息变更 (死亡、出生日期更正)
}


class HttpCivilRegistry(HttpAdapter, CivilRegistry):
    """IDs travel in request bodies, never in URLs, so access logs do not collect them."""

    async def _get_person(self, id_number: str) -> PersonRecord:
        body = await self._request(
            "get_person", "POST", "/v1/persons/query", json_body={"id_number": id_number}, idempotent=True
        )
        with self._parsing("get_person"):
            return _person(body)

    async def _get_household(self, id_number: str) -> list[HouseholdMember]:
        body = await self._request(
            "get_household",
            "POST",
            "/v1/households/query",
            json_body={"id_number": id_number},
            idempotent=True,
        )
        with self._parsing("get_household"):
            return [
                HouseholdMember(
                    id_number=str(m["id_number"]),
                    name=str(m["name"]),
                    relation=RELATION_GROUPS[str(m["relation_code"])[0]],
                )
                for m in body["members"]
            ]

    async def _verify_guardianship(self, guardian_id_number: str, ward_id_number: str) -> GuardianshipCheck:
        body = await self._request(
            "verify_guardianship",
            "POST",
            "/v1/guardianships/verify",
            json_body={"guardian_id_number": guardian_id_number, "ward_id_number": ward_id_number},
            idempotent=True,
        )
        with self._parsing("verify_guardianship"):
            result = str(body["result"])
            verified = GUARDIANSHIP_RESULT_VERIFIED[result]
            return GuardianshipCheck(
                verified=verified,
                relation=_optional_str(body.get("relation")),
                reason=None if verified else result,
            )

    async def _guardianship_changes(self, after: str | None, limit: int) -> GuardianshipChanges:
        # The cursor is the registry's own opaque token; no ID number travels in the URL.
        params = f"?limit={int(limit)}" + (f"&after={quote(after, safe='')}" if after else "")
        body = await self._request(
            "guardianship_changes", "GET", "/v1/guardianships/changes" + params, idempotent=True
        )
        with self._parsing("guardianship_changes"):
            return GuardianshipChanges(
                changes=[
                    GuardianshipChange(
                        guardian_id_number=str(c["guardian_id_number"]),
                        ward_id_number=str(c["ward_id_number"]),
                        kind=GUARDIANSHIP_CHANGE_CODES[str(c["change_code"])],
                    )
                    for c in body["changes"]
                ],
                cursor=str(body["cursor"]),
            )


def _person(body: Any) -> PersonRecord:
    return PersonRecord(
        id_number=str(body["id_number"]),
        name=str(body["name"]),
        birth_date=date.fromisoformat(body["birth_date"]),
        gender=SEX_CODES[str(body["sex_code"])],
        alive=PERSON_STATUS_ALIVE[str(body["status_code"])],
    )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
