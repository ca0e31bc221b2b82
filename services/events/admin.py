"""The organisers' side: series through the items' workflow, their dates, who registered.

Editors write series and dates while a series is a draft or in review and submit it;
admins publish, retract and send back, change published series and cancel dates (changes
to a published date are mailed to its participants). Both see the participants of a
date, with counts, and export them as CSV.
"""

from __future__ import annotations

import sqlalchemy as sa
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.events import programme, schedule, store
from services.events.fields import (
    DEFAULT_TIMEZONE,
    MODES,
    InvalidEvent,
    local_input,
    parse_event,
    parse_series,
)
from services.events.store import DRAFT, PENDING, PUBLISHED, RETRACTED, Series
from services.events.times import when
from shared.addresses import InvalidInput
from shared.database import read_connection, utcnow
from shared.errors import Conflict, Forbidden
from shared.i18n import request_language
from shared.spreadsheets import write_csv
from shared.web.forms import form_endpoint, form_text
from shared.web.paths import path_for
from shared.web.sessions import current_user, login_required
from shared.web.templates import render_page

#: The workflow's moves: the state each leads to, and who may make it.
MOVES = {
    "submit": (PENDING, "editor"),
    "publish": (PUBLISHED, "admin"),
    "send_back": (DRAFT, "admin"),
    "retract": (RETRACTED, "admin"),
}

#: Fields of the series form and of the event form.
SERIES_FORM = ("title", "summary", "description", "language")
EVENT_FORM = (
    "title", "starts_at", "ends_at", "timezone", "mode", "place", "link", "capacity",
    "registration_deadline",
)  # fmt: skip

#: The columns of the participants' export.
PARTICIPANT_COLUMNS = ("name", "email", "organisation", "municipality", "status", "since")

#: Zones offered in the event form: the network's neighbours and partners' countries.
TIMEZONES = (
    DEFAULT_TIMEZONE, "Europe/London", "Europe/Lisbon", "Europe/Paris", "Europe/Warsaw",
    "Europe/Helsinki", "Europe/Athens", "Europe/Istanbul", "Europe/Kyiv", "UTC",
)  # fmt: skip


def _is_admin(request: Request) -> bool:
    user = current_user(request)
    return user is not None and user["role"] == "admin"


def _may_change(request: Request, series: Series) -> None:
    """Editors change series that are not live; a live one is for admins."""
    if series.state in (PUBLISHED, RETRACTED) and not _is_admin(request):
        raise Forbidden("Only administrators change a published series.")


@login_required()
def admin_series_list(request: Request) -> Response:
    """Every series with its state and dates."""
    found = [(series, schedule.series_events(series.id)) for series in schedule.all_series()]
    return render_page(request, "events/admin/list.html", {"found": found})


def _series_page(
    request: Request,
    series: Series | None,
    values: dict[str, str],
    error: str | None = None,
    status: int = 200,
) -> Response:
    language = request_language(request)
    dates = schedule.series_events(series.id) if series else []
    return render_page(
        request,
        "events/admin/series.html",
        {
            "series": series,
            "values": values,
            "error": error,
            "dates": dates,
            "admin": _is_admin(request),
            "moves": MOVES,
            "when": lambda event: when(event, language),
        },
        status_code=status,
    )


@login_required()
def admin_new_page(request: Request) -> Response:
    """An empty series form."""
    return _series_page(request, None, {"language": request_language(request)})


@login_required()
@form_endpoint()
def admin_create(request: Request, form: FormData) -> Response:
    """Add a series (a draft)."""
    values = {name: form_text(form, name) for name in SERIES_FORM}
    try:
        series_id = schedule.save_series(parse_series(values))
    except InvalidInput as exc:
        return _series_page(request, None, values, exc.message, 422)
    return RedirectResponse(path_for("events:admin_series", id=series_id), status_code=303)


@login_required()
def admin_series_page(request: Request) -> Response:
    """A series: its texts, its workflow buttons, its dates."""
    series = schedule.get_series(request.path_params["id"])
    values = {name: str(getattr(series, name)) for name in SERIES_FORM}
    return _series_page(request, series, values)


@login_required()
@form_endpoint()
def admin_series_save(request: Request, form: FormData) -> Response:
    """Change a series' texts."""
    series = schedule.get_series(request.path_params["id"])
    _may_change(request, series)
    values = {name: form_text(form, name) for name in SERIES_FORM}
    try:
        schedule.save_series(parse_series(values), series.id)
    except InvalidInput as exc:
        return _series_page(request, series, values, exc.message, 422)
    return RedirectResponse(
        path_for("events:admin_series", id=series.id) + "?saved=1", status_code=303
    )


@login_required()
@form_endpoint()
def admin_series_move(request: Request, form: FormData) -> Response:
    """Move a series along the workflow (submit, publish, send back, retract)."""
    series = schedule.get_series(request.path_params["id"])
    move = MOVES.get(form_text(form, "move"))
    if move is None:
        raise InvalidEvent("move", "Unknown step of the workflow.")
    state, role = move
    if role == "admin" and not _is_admin(request):
        raise Forbidden("Only administrators publish, send back or retract a series.")
    if role == "editor" and series.state != DRAFT:
        raise InvalidEvent("move", "Only a draft is submitted for review.")
    # Taking it off the site would leave people registered without a word. (A
    # confirmation arriving after the retraction gives no place: see confirm.)
    leaving = state != PUBLISHED and series.state == PUBLISHED
    if leaving and schedule.people_registered(series.id, utcnow()):
        raise Conflict(
            "People are registered for coming dates of this series: cancel those dates "
            "first (everyone registered is told), then retract the series."
        )
    schedule.set_series_state(series.id, state)
    return RedirectResponse(path_for("events:admin_series", id=series.id), status_code=303)


def _event_page(
    request: Request,
    series: Series,
    event: store.Event | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    language = request_language(request)
    participants = _participants(event.id) if event else []
    return render_page(
        request,
        "events/admin/event.html",
        {
            "series": series,
            "event": event,
            "values": values,
            "errors": errors or {},
            "modes": MODES,
            "timezones": TIMEZONES,
            "admin": _is_admin(request),
            "participants": participants,
            "when": lambda e: when(e, language),
        },
        status_code=status,
    )


def _event_values(event: store.Event) -> dict[str, str]:
    values = {
        name: "" if getattr(event, name) is None else str(getattr(event, name))
        for name in EVENT_FORM
    }
    for name in ("starts_at", "ends_at", "registration_deadline"):
        values[name] = local_input(getattr(event, name), event.timezone)
    return values


@login_required()
def admin_event_new_page(request: Request) -> Response:
    """An empty date form for a series."""
    series = schedule.get_series(request.path_params["id"])
    return _event_page(request, series, None, {"timezone": DEFAULT_TIMEZONE, "mode": "online"})


@login_required()
@form_endpoint()
def admin_event_create(request: Request, form: FormData) -> Response:
    """Add a date to a series."""
    series = schedule.get_series(request.path_params["id"])
    _may_change(request, series)
    values = {name: form_text(form, name) for name in EVENT_FORM}
    try:
        event_id = programme.add_event(series.id, parse_event(values))
    except InvalidInput as exc:
        return _event_page(request, series, None, values, {exc.field: exc.message}, 422)
    return RedirectResponse(path_for("events:admin_event", id=event_id), status_code=303)


@login_required()
def admin_event_page(request: Request) -> Response:
    """A date: its form, its participants and waiting list."""
    event = schedule.get_event(request.path_params["id"])
    series = schedule.get_series(event.series_id)
    return _event_page(request, series, event, _event_values(event))


@login_required()
@form_endpoint()
def admin_event_save(request: Request, form: FormData) -> Response:
    """Change a date; participants are mailed when what they need to know changed."""
    event = schedule.get_event(request.path_params["id"])
    series = schedule.get_series(event.series_id)
    _may_change(request, series)
    values = {name: form_text(form, name) for name in EVENT_FORM}
    try:
        mailed = programme.update_event(event.id, parse_event(values))
    except InvalidInput as exc:
        return _event_page(request, series, event, values, {exc.field: exc.message}, 422)
    return RedirectResponse(
        path_for("events:admin_event", id=event.id) + f"?saved=1&mailed={mailed}", status_code=303
    )


@login_required("admin")
@form_endpoint()
def admin_event_cancel(request: Request, form: FormData) -> Response:
    """Cancel a date: everyone registered is mailed."""
    event = schedule.get_event(request.path_params["id"])
    mailed = programme.cancel_event(event.id)
    return RedirectResponse(
        path_for("events:admin_event", id=event.id) + f"?mailed={mailed}", status_code=303
    )


def _participants(event_id: int) -> list[dict[str, object]]:
    """Who holds or waits for a place at a date (confirmed registrations), in order."""
    seats, people = store.seats, store.registrations
    query = (
        sa.select(
            people.c.name, people.c.email, people.c.organisation, people.c.municipality,
            seats.c.status, seats.c.queued_at.label("since"),
        )
        .join(people, people.c.id == seats.c.registration_id)
        .where(
            seats.c.event_id == event_id,
            seats.c.status.in_((store.SEATED, store.WAITING)),
            people.c.status == store.CONFIRMED,
        )
        .order_by(seats.c.status, seats.c.queued_at, seats.c.id)
    )  # fmt: skip
    with read_connection("events") as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


@login_required()
def admin_participants_csv(request: Request) -> Response:
    """A date's participants and waiting list as CSV (for the organisers' lists)."""
    event = schedule.get_event(request.path_params["id"])
    rows = [
        [str(person[column]) for column in PARTICIPANT_COLUMNS]
        for person in _participants(event.id)
    ]
    return Response(
        write_csv(list(PARTICIPANT_COLUMNS), rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="participants-{event.id}.csv"'},
    )
