"""The events' public side: the series and their dates, the registration form, the
links from mails (confirming, one's own registration), a series' calendar, and the
events' section of the home page."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from services.events import links, schedule, store
from services.events import registration as flows
from services.events.fields import ON_SITE, parse_registration
from services.events.invitation import calendar, full_title
from services.events.store import PUBLISHED, Event, Series
from services.events.times import when
from shared.addresses import InvalidInput
from shared.database import utcnow
from shared.errors import Invalid
from shared.i18n import normalise_language, request_language, translate
from shared.service import PageSection
from shared.web.caching import weak_etag
from shared.web.forms import (
    HONEYPOT_FIELD,
    MAX_ROW_ID,
    client_ip,
    form_endpoint,
    form_text,
    number_up_to,
)
from shared.web.paths import absolute_url_for, path_for
from shared.web.templates import render_page, render_text

#: The fields of the registration form, besides the dates.
REGISTRATION_FIELDS = ("name", "email", "organisation", "municipality", "language")

#: Upcoming dates on the home page.
HOME_DATES = 3

#: Most dates the API gives at once (a year of a busy network).
API_LIMIT = 200


def published_series(slug: str) -> Series:
    """A published series by its address; 404 for any other (drafts are not public)."""
    series = schedule.get_series(slug=slug)
    if series.state != PUBLISHED:
        raise store.NoSuchSeries()
    return series


def _open_ids(dates: list[Event]) -> list[int]:
    now = utcnow()
    return [event.id for event in dates if event.open_for_registration(now)]


def series_list(request: Request) -> Response:
    """Every published series with its dates."""
    found = [
        (series, schedule.series_events(series.id)) for series in schedule.all_series(PUBLISHED)
    ]
    language = request_language(request)
    return render_page(
        request,
        "events/list.html",
        {"found": found, "when": lambda event: when(event, language), "now": utcnow()},
    )


def _series_page(
    request: Request,
    series: Series,
    values: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    dates = schedule.series_events(series.id)
    language = request_language(request)
    return render_page(
        request,
        "events/series.html",
        {
            "series": series,
            "dates": dates,
            "open_ids": _open_ids(dates),
            "values": values or {},
            "chosen": chosen or [],
            "errors": errors or {},
            "when": lambda event: when(event, language),
        },
        status_code=status,
    )


def series_page(request: Request) -> Response:
    """A series: what it is, its dates with the places left, the registration form."""
    return _series_page(request, published_series(request.path_params["slug"]))


@form_endpoint(public=True)
def register(request: Request, form: FormData) -> Response:
    """Register for dates of a series: a confirmation mail goes out (double opt-in)."""
    series = published_series(request.path_params["slug"])
    sent = RedirectResponse(path_for("events:sent"), status_code=303)
    if form.get(HONEYPOT_FIELD):
        return sent  # a bot: answered as everyone, nothing done
    values = {name: form_text(form, name) for name in REGISTRATION_FIELDS}
    values["whole_series"] = form_text(form, "whole_series")
    chosen = [value for value in form.getlist("dates") if isinstance(value, str)]
    open_ids = _open_ids(schedule.series_events(series.id))
    try:
        checked = parse_registration(values, chosen, open_ids, request_language(request))
    except InvalidInput as exc:
        return _series_page(request, series, values, chosen, {exc.field: exc.message}, 422)
    flows.check_client_allowance(client_ip(request))
    flows.register(series, checked, open_ids)
    return sent


def sent(request: Request) -> Response:
    """After registering: look in your mailbox."""
    return render_page(request, "events/sent.html")


def confirm_page(request: Request) -> Response:
    """The confirmation button (a mail scanner following the link confirms nothing)."""
    person = links.registration_to_confirm(request.path_params["token"])
    return _registration_page(request, person, confirming=person.confirm_nonce is not None)


@form_endpoint()
def confirm_submit(request: Request, form: FormData) -> Response:
    """Confirm: places are given out, the confirmation mail with the invitation follows."""
    person = flows.confirm(request.path_params["token"])
    return _registration_page(request, person, just_confirmed=True)


def _registration_page(
    request: Request,
    person: store.Registration,
    confirming: bool = False,
    just_confirmed: bool = False,
    cancelled: list[int] | None = None,
) -> Response:
    language = request_language(request)
    holdings = flows.holdings(person)
    now = utcnow()
    return render_page(
        request,
        "events/registration.html",
        {
            "person": person,
            "series": schedule.get_series(person.series_id),
            "holdings": holdings,
            "cancellable": [h.event.id for h in holdings if flows.cancellable(h, now)],
            "confirming": confirming,
            "just_confirmed": just_confirmed,
            "cancelled": cancelled,
            "manage_url": links.manage_url(person),
            "when": lambda event: when(event, language),
        },
    )


def registration_page(request: Request) -> Response:
    """One's own registration: the dates and their state, and cancelling."""
    return _registration_page(request, links.registration_to_manage(request.path_params["token"]))


@form_endpoint()
def registration_cancel(request: Request, form: FormData) -> Response:
    """Cancel the dates ticked (or all): waiting people move up, a mail confirms."""
    person = links.registration_to_manage(request.path_params["token"])
    now = utcnow()
    held = {h.event.id for h in flows.holdings(person) if flows.cancellable(h, now)}
    if form_text(form, "all") == "1":
        wanted = held
    else:
        wanted = {number_up_to(v, MAX_ROW_ID) for v in form.getlist("dates") if isinstance(v, str)}
    cancelled = flows.cancel(person, wanted & held)
    return _registration_page(request, person, cancelled=cancelled)


def series_calendar(request: Request) -> Response:
    """A series' dates as an iCalendar file to subscribe to."""
    series = published_series(request.path_params["slug"])
    body = calendar(series, schedule.series_events(series.id))
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"ETag": weak_etag(body), "Cache-Control": "public, max-age=300"},
    )


def home_sections(request: Request) -> list[PageSection]:
    """The next dates of the published series, with the way to register."""
    upcoming = schedule.upcoming_events(utcnow(), HOME_DATES)
    if not upcoming:
        return []
    language = request_language(request)
    html = render_text(
        "events/_home.html",
        language,
        upcoming=upcoming,
        when=lambda event: when(event, language),
    )
    return [PageSection(25, html)]


def date_json(series: Series, event: Event) -> dict[str, object]:
    """A date as other services and sites read it: shaped like a content item of the
    feeds API (``kind`` "event", ``event`` with start, end and location), so the newsletter
    lists it beside news. The online room's link is for participants only: not here."""
    language = series.language
    return {
        "id": event.id,
        "kind": "event",
        "language": language,
        "title": full_title(series, event),
        "summary": series.summary,
        "url": absolute_url_for("events:series", slug=series.slug) + f"#date-{event.id}",
        "when": when(event, language),
        "event": {
            "start": event.starts_at.astimezone(ZoneInfo(event.timezone)).isoformat(),
            "end": event.ends_at.astimezone(ZoneInfo(event.timezone)).isoformat(),
            "timezone": event.timezone,
            "location": event.place if event.mode == ON_SITE else translate("Online", language),
        },
        "mode": event.mode,
        "seats_left": event.seats_left,
        "sequence": event.sequence,
        "updated_at": event.updated_at.isoformat() if event.updated_at else None,
    }


def api_dates(request: Request) -> Response:
    """The coming dates of the published series as JSON (``?lang=``, ``?limit=``): for the
    site's calendar, the newsletter and partner sites."""
    raw_language = request.query_params.get("lang")
    language = normalise_language(raw_language)
    if raw_language and language is None:
        raise Invalid("lang must be de or en.", "lang")
    limit = number_up_to(request.query_params.get("limit", "50"), API_LIMIT)
    if limit is None:
        raise Invalid(f"limit must be a whole number from 1 to {API_LIMIT}.", "limit")
    dates = schedule.upcoming_events(utcnow(), limit, language)
    return JSONResponse(
        {"dates": [date_json(series, event) for series, event in dates]},
        headers={"Cache-Control": "public, max-age=60", "Access-Control-Allow-Origin": "*"},
    )
