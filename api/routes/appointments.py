"""Registration appointments: the citizen's booking and changes, the office's clerks' day list."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json, raw

from api.fields import CalendarDay
from api.guards import current_principal, requires
from api.idempotency import idempotent
from api.openapi import doc
from api.routes.properties import ID_PARAM, object_id, person_id_of, services
from api.validation import parse_json, parse_query
from services.appointments import AppointmentView, BookingRequest, WaitlistView
from services.clock import SHANGHAI, local_today

bp = Blueprint("appointments", url_prefix="/api/v1")

_NO_STORE = {"Cache-Control": "no-store"}
_SERVICE = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$", examples=["transfer"])


class BookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot_id: int = Field(ge=1, le=2**63 - 1)
    service: str = _SERVICE
    right_id: int | None = Field(default=None, ge=1, le=2**63 - 1, description="the property it concerns")
    case_ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9-]+$",
        description="the registration case",
    )
    with_tax: StrictBool = Field(
        default=False, description="book the tax office's half hour at the same time"
    )


class RescheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot_id: int = Field(ge=1, le=2**63 - 1)


class WaitlistRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot_id: int = Field(ge=1, le=2**63 - 1)


class AppointmentList(BaseModel):
    items: list[AppointmentView]


class DayQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: CalendarDay | None = Field(default=None, description="a Shanghai calendar day; today if absent")


# --- the citizen ----------------------------------------------------------------------------------


@bp.post("/me/appointments")
@doc(
    summary="Book a registration appointment (optionally with the tax appointment)",
    description=(
        "Capacity is enforced by the database: in a rush, every loser gets `SLOT_FULL` (409). "
        "One active appointment per service and case (`APPOINTMENT_EXISTS`). With `with_tax`, the "
        "tax office's half hour is booked in the same step: if it refuses (`TAX_APPOINTMENT_REFUSED`, "
        "409) or cannot be reached (`TAX_APPOINTMENT_FAILED`, 503), nothing is booked. Repeated "
        "no-shows block online booking (`NO_SHOW_BLOCKED`, 403, with `blocked_until`). Send an "
        "`Idempotency-Key` to retry safely."
    ),
    tag="appointments",
    body=BookRequest,
    ok=(201, AppointmentView),
    errors=(403, 404, 409, 422, 503),
)
@requires("citizen")
@idempotent()
async def book(request: Request) -> HTTPResponse:
    body = parse_json(request, BookRequest)
    view = await services(request).appointments.book(
        BookingRequest(
            person_id=await person_id_of(request),
            slot_id=body.slot_id,
            service=body.service,
            right_id=body.right_id,
            case_ref=body.case_ref,
            with_tax=body.with_tax,
        )
    )
    return json(view, status=201, headers=_NO_STORE)


@bp.get("/me/appointments")
@doc(
    summary="My appointments, the latest slot first",
    tag="appointments",
    ok=(200, AppointmentList),
    errors=(403,),
)
@requires("citizen")
async def list_appointments(request: Request) -> HTTPResponse:
    items = await services(request).appointments.list_for(await person_id_of(request))
    return json({"items": items}, headers=_NO_STORE)


@bp.delete("/me/appointments/<appointment_id:int>")
@doc(
    summary="Cancel my appointment (until `appointment_cutoff_h` hours before it)",
    tag="appointments",
    path_params={"appointment_id": ID_PARAM},
    ok=(200, AppointmentView),
    errors=(403, 404, 409),
)
@requires("citizen")
async def cancel(request: Request, appointment_id: int) -> HTTPResponse:
    view = await services(request).appointments.cancel(
        person_id=await person_id_of(request), appointment_id=object_id(appointment_id, "appointment_id")
    )
    return json(view, headers=_NO_STORE)


@bp.post("/me/appointments/<appointment_id:int>/reschedule")
@doc(
    summary="Move my appointment to another slot (one step: the new seat or no change)",
    tag="appointments",
    path_params={"appointment_id": ID_PARAM},
    body=RescheduleRequest,
    ok=(201, AppointmentView),
    errors=(403, 404, 409, 422, 503),
)
@requires("citizen")
@idempotent()
async def reschedule(request: Request, appointment_id: int) -> HTTPResponse:
    body = parse_json(request, RescheduleRequest)
    view = await services(request).appointments.reschedule(
        person_id=await person_id_of(request),
        appointment_id=object_id(appointment_id, "appointment_id"),
        slot_id=body.slot_id,
    )
    return json(view, status=201, headers=_NO_STORE)


@bp.get("/me/appointments/<appointment_id:int>/calendar.ics")
@doc(
    summary="My appointment as an iCalendar file (RFC 5545, with the office address and an alarm)",
    tag="appointments",
    path_params={"appointment_id": ID_PARAM},
    ok=(200, {"type": "string"}),
    ok_content_type="text/calendar",
    errors=(403, 404),
)
@requires("citizen")
async def calendar(request: Request, appointment_id: int) -> HTTPResponse:
    ref, ics = await services(request).appointments.calendar(
        await person_id_of(request), object_id(appointment_id, "appointment_id")
    )
    return raw(
        ics,
        content_type="text/calendar; charset=utf-8",
        headers={**_NO_STORE, "Content-Disposition": f'attachment; filename="{ref}.ics"'},
    )


@bp.post("/me/appointments/waitlist")
@doc(
    summary="Wait for a seat in a full slot; a freed seat is offered to the first in line",
    tag="appointments",
    body=WaitlistRequest,
    ok=(201, WaitlistView),
    errors=(403, 404, 409, 422),
)
@requires("citizen")
async def join_waitlist(request: Request) -> HTTPResponse:
    body = parse_json(request, WaitlistRequest)
    view = await services(request).appointments.join_waitlist(
        person_id=await person_id_of(request), slot_id=body.slot_id
    )
    return json(view, status=201, headers=_NO_STORE)


@bp.post("/me/appointments/waitlist/<entry_id:int>/accept")
@doc(
    summary="Take the seat offered to me from the waitlist (before the offer ends)",
    tag="appointments",
    path_params={"entry_id": ID_PARAM},
    ok=(201, AppointmentView),
    errors=(403, 404, 409),
)
@requires("citizen")
@idempotent()
async def accept_offer(request: Request, entry_id: int) -> HTTPResponse:
    view = await services(request).appointments.accept_offer(
        person_id=await person_id_of(request), entry_id=object_id(entry_id, "entry_id")
    )
    return json(view, status=201, headers=_NO_STORE)


# --- the office's clerks ----------------------------------------------------------------------------


@bp.get("/clerk/appointments")
@doc(
    summary="The appointments at my office on a day",
    tag="clerk",
    query=DayQuery,
    ok=(200, AppointmentList),
    errors=(403, 422),
)
@requires("clerk")
async def office_day(request: Request) -> HTTPResponse:
    query = parse_query(request, DayQuery)
    svc = services(request)
    day = query.date or local_today(svc.clock)
    principal = await current_principal(request)
    items = await svc.appointments.office_day(
        office_code=principal.office_code, day=dt.datetime.combine(day, dt.time(0), tzinfo=SHANGHAI)
    )
    return json({"items": items}, headers=_NO_STORE)


@bp.post("/clerk/appointments/<appointment_id:int>/check-in")
@doc(
    summary="Check a person in for their appointment at my office",
    tag="clerk",
    path_params={"appointment_id": ID_PARAM},
    ok=(200, AppointmentView),
    errors=(403, 404, 409),
)
@requires("clerk")
async def check_in(request: Request, appointment_id: int) -> HTTPResponse:
    principal = await current_principal(request)
    view = await services(request).appointments.check_in(
        office_code=principal.office_code, appointment_id=object_id(appointment_id, "appointment_id")
    )
    return json(view, headers=_NO_STORE)


@bp.post("/clerk/appointments/<appointment_id:int>/no-show")
@doc(
    summary="Record that the person did not come (counts towards the no-show block)",
    tag="clerk",
    path_params={"appointment_id": ID_PARAM},
    ok=(200, AppointmentView),
    errors=(403, 404, 409),
)
@requires("clerk")
async def no_show(request: Request, appointment_id: int) -> HTTPResponse:
    principal = await current_principal(request)
    view = await services(request).appointments.mark_no_show(
        office_code=principal.office_code, appointment_id=object_id(appointment_id, "appointment_id")
    )
    return json(view, headers=_NO_STORE)
