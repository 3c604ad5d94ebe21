"""An appointment as an iCalendar file (RFC 5545), written with the `icalendar` library.

One VEVENT in UTC (a calendar shows it in the reader's zone), the office's name and address as
LOCATION, our reference in the UID (stable, so importing the file again updates the same event),
and a VALARM one hour before. A cancelled appointment is STATUS:CANCELLED with a higher SEQUENCE,
so a calendar that imported it removes it when the file is imported again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from icalendar import Alarm, Calendar, Event

from services.appointments.views import AppointmentView

PRODID = "-//Shanghai Real Estate Registration//Appointments//ZH"
UID_DOMAIN = "estate.example.gov.cn"
ALARM_BEFORE = timedelta(hours=1)


def appointment_ics(view: AppointmentView, *, now: datetime) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")

    event = Event()
    event.add("uid", f"{view.ref}@{UID_DOMAIN}")
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", view.starts_at.astimezone(UTC))
    event.add("dtend", view.ends_at.astimezone(UTC))
    event.add("summary", f"不动产登记预约：{view.service_label}（{view.office_name}）")
    event.add("location", f"{view.office_name}，{view.office_address}")
    tax = "；同时预约了税务办理" if view.with_tax else ""
    event.add("description", f"预约号 {view.ref}{tax}。请携带身份证件按时到达。")
    cancelled = view.status == "cancelled"
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("sequence", 1 if cancelled else 0)

    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", f"不动产登记预约 {view.ref}：{view.office_address}")
    alarm.add("trigger", -ALARM_BEFORE)
    event.add_component(alarm)

    calendar.add_component(event)
    return calendar.to_ical()
