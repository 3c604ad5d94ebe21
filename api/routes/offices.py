"""Registration offices and their free slots (public, no sign-in), and the administrators' routes
that set timetables, closures and slot templates. Guide: docs/appointments.md."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import empty, json

from api.fields import CalendarDay
from api.guards import requires
from api.openapi import doc
from api.validation import parse_json, parse_query
from services.appointments import offices
from services.appointments.offices import (
    ClosureView,
    OfficeDay,
    OfficeSchedule,
    OfficeSummary,
    TemplateView,
    TimetableView,
)
from services.appointments.slots import ServiceCatalogue, ServiceInfo, TemplateRule, default_catalogue

bp = Blueprint("offices", url_prefix="/api/v1")

CODE_PARAM = {"type": "string", "pattern": "^[A-Z0-9-]{1,16}$", "example": "OFF-310115-01"}
TEMPLATE_PARAM = {"type": "integer", "format": "int64", "minimum": 1}
SERVICE = Field(pattern=r"^[a-z_]{1,32}$", examples=["transfer"], description="a code of GET /api/v1/offices")


def _now(request: Request) -> Any:
    return request.app.ctx.services.clock.now()


def _catalogue(request: Request) -> ServiceCatalogue:
    return default_catalogue()


# --- public --------------------------------------------------------------------------------------


class OfficeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    district: str | None = Field(default=None, pattern=r"^[0-9]{6}$", description="GB/T 2260, e.g. 310115")
    service: Annotated[str | None, SERVICE] = None


class OfficeList(BaseModel):
    items: list[OfficeSummary]
    services: Annotated[list[ServiceInfo], Field(description="the catalogue of services")]


class SlotQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: CalendarDay | None = Field(
        default=None, description="Shanghai calendar day, YYYY-MM-DD, today to 60 days ahead; default today"
    )
    service: Annotated[str, SERVICE]


@bp.get("/offices")
@doc(
    summary="Registration offices, by district and service, each with its next free slot",
    description="Public: no sign-in. Times are Asia/Shanghai (+08:00).",
    tag="offices",
    query=OfficeQuery,
    ok=(200, OfficeList),
    secured=False,
)
async def list_offices(request: Request) -> HTTPResponse:
    query = parse_query(request, OfficeQuery)
    catalogue = _catalogue(request)
    items = await offices.list_offices(
        now=_now(request), catalogue=catalogue, district=query.district, service=query.service
    )
    return json({"items": items, "services": catalogue.services})


@bp.get("/offices/<code:str>/slots")
@doc(
    summary="An office's free slots on one day for one service, with the seats remaining",
    description="Public: no sign-in. Only slots already released and not yet started, with a free seat.",
    tag="offices",
    query=SlotQuery,
    path_params={"code": CODE_PARAM},
    ok=(200, OfficeDay),
    errors=(404,),
    secured=False,
)
async def office_slots(request: Request, code: str) -> HTTPResponse:
    query = parse_query(request, SlotQuery)
    day = await offices.office_day(
        office_code=code,
        day=query.date,
        service=query.service,
        now=_now(request),
        catalogue=_catalogue(request),
    )
    return json(day)


# --- administration ------------------------------------------------------------------------------

HHMM = Field(max_length=5, examples=["09:00"], description="HH:MM, Asia/Shanghai")


class TimetableRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opening_hours: dict[str, list[list[str]]] = Field(
        max_length=7,
        description='by weekday mon..sun, e.g. {"mon": [["09:00", "12:00"], ["13:30", "17:00"]]}; a day '
        "left out is closed",
    )
    services: list[str] = Field(max_length=20)
    phone: str | None = Field(default=None, max_length=32)


class ClosureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: dt.date
    reason: str = Field(min_length=1, max_length=100, examples=["元旦"])


class TemplateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Annotated[str, SERVICE]
    weekdays: list[int] = Field(max_length=7, description="0 = Monday .. 6 = Sunday")
    day_start: Annotated[str, HHMM]
    day_end: Annotated[str, HHMM]
    duration_min: int = Field(description="divides day_start..day_end; 5..240")
    capacity: int = Field(description="seats per slot, 1..500")
    release_days_ahead: int = Field(default=14, description="0..60")
    release_at: Annotated[str, HHMM] = "08:00"

    def rule(self) -> TemplateRule:
        return TemplateRule(
            tuple(self.weekdays),
            self.day_start,
            self.day_end,
            self.duration_min,
            self.capacity,
            self.release_days_ahead,
            self.release_at,
        )


class TemplateUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: TemplateRequest | None = Field(default=None, description="the new rule (its service must stay)")
    active: StrictBool | None = None


class Released(BaseModel):
    released: int


ADMIN = "/admin/offices/<code:str>"


@bp.get(ADMIN)
@doc(
    summary="An office's timetable, closures to come and slot templates",
    tag="admin",
    path_params={"code": CODE_PARAM},
    ok=(200, OfficeSchedule),
    errors=(403, 404),
)
@requires("admin")
async def get_schedule(request: Request, code: str) -> HTTPResponse:
    return json(await offices.office_schedule(office_code=code, now=_now(request)))


@bp.put(f"{ADMIN}/timetable")
@doc(
    summary="Set an office's opening hours and the services it offers",
    tag="admin",
    body=TimetableRequest,
    path_params={"code": CODE_PARAM},
    ok=(200, TimetableView),
    errors=(403, 404),
)
@requires("admin")
async def set_timetable(request: Request, code: str) -> HTTPResponse:
    body = parse_json(request, TimetableRequest)
    view = await offices.set_timetable(
        office_code=code,
        opening_hours=body.opening_hours,
        services=body.services,
        phone=body.phone,
        catalogue=_catalogue(request),
    )
    return json(view)


@bp.post(f"{ADMIN}/closures")
@doc(
    summary="Close an office on a day (its released slots close; booked seats are counted)",
    tag="admin",
    body=ClosureRequest,
    path_params={"code": CODE_PARAM},
    ok=(200, ClosureView),
    errors=(403, 404),
)
@requires("admin")
async def add_closure(request: Request, code: str) -> HTTPResponse:
    body = parse_json(request, ClosureRequest)
    view = await offices.add_closure(
        office_code=code, day=body.day, reason=body.reason, clock=request.app.ctx.services.clock
    )
    return json(view)


@bp.delete(f"{ADMIN}/closures/<day:ymd>")
@doc(
    summary="Open an office again on a closed day",
    tag="admin",
    path_params={"code": CODE_PARAM, "day": {"type": "string", "format": "date", "example": "2027-01-01"}},
    ok=(204, None),
    errors=(403, 404),
)
@requires("admin")
async def remove_closure(request: Request, code: str, day: dt.date) -> HTTPResponse:
    await offices.remove_closure(office_code=code, day=day, now=_now(request))
    return empty()


@bp.post(f"{ADMIN}/slot-templates")
@doc(
    summary="Add a slot template (how the office's slots for a service are made and released)",
    tag="admin",
    body=TemplateRequest,
    path_params={"code": CODE_PARAM},
    ok=(201, TemplateView),
    errors=(403, 404),
)
@requires("admin")
async def create_template(request: Request, code: str) -> HTTPResponse:
    body = parse_json(request, TemplateRequest)
    view = await offices.create_template(
        office_code=code, service=body.service, rule=body.rule(), catalogue=_catalogue(request)
    )
    return json(view, status=201)


@bp.patch(f"{ADMIN}/slot-templates/<template_id:int>")
@doc(
    summary="Change a slot template's rule, or switch it off (active: false) or on",
    description="Slots already released keep their times and seats; the change applies to later releases.",
    tag="admin",
    body=TemplateUpdate,
    path_params={"code": CODE_PARAM, "template_id": TEMPLATE_PARAM},
    ok=(200, TemplateView),
    errors=(403, 404),
)
@requires("admin")
async def update_template(request: Request, code: str, template_id: int) -> HTTPResponse:
    body = parse_json(request, TemplateUpdate)
    view = await offices.update_template(
        office_code=code,
        template_id=template_id,
        service=body.rule.service if body.rule else None,
        rule=body.rule.rule() if body.rule else None,
        active=body.active,
    )
    return json(view)


@bp.post(f"{ADMIN}/slot-releases")
@doc(
    summary="Release the office's due slots now (never before their release time)",
    tag="admin",
    path_params={"code": CODE_PARAM},
    ok=(200, Released),
    errors=(403, 404),
)
@requires("admin")
async def release_now(request: Request, code: str) -> HTTPResponse:
    return json({"released": await offices.release_office_slots(office_code=code, now=_now(request))})
