"""Routes of the events service (prefix in service.py): the public series, the links
from mails, and the organisers' admin."""

from __future__ import annotations

from starlette.routing import Route

from services.events import admin, public

routes = [
    Route("/", public.series_list, methods=["GET"], name="list"),
    Route("/sent", public.sent, methods=["GET"], name="sent"),
    Route("/api/dates", public.api_dates, methods=["GET"], name="api_dates"),
    Route("/confirm/{token}", public.confirm_page, methods=["GET"], name="confirm"),
    Route("/confirm/{token}", public.confirm_submit, methods=["POST"], name="confirm"),
    Route("/registration/{token}", public.registration_page, methods=["GET"], name="registration"),
    Route(
        "/registration/{token}",
        public.registration_cancel,
        methods=["POST"],
        name="registration",
    ),
    Route("/admin/", admin.admin_series_list, methods=["GET"], name="admin"),
    Route("/admin/new", admin.admin_new_page, methods=["GET"], name="admin_new"),
    Route("/admin/new", admin.admin_create, methods=["POST"], name="admin_new"),
    Route("/admin/{id:id}", admin.admin_series_page, methods=["GET"], name="admin_series"),
    Route("/admin/{id:id}", admin.admin_series_save, methods=["POST"], name="admin_series"),
    Route("/admin/{id:id}/state", admin.admin_series_move, methods=["POST"], name="admin_move"),
    Route(
        "/admin/{id:id}/dates/new",
        admin.admin_event_new_page,
        methods=["GET"],
        name="admin_event_new",
    ),
    Route(
        "/admin/{id:id}/dates/new",
        admin.admin_event_create,
        methods=["POST"],
        name="admin_event_new",
    ),
    Route("/admin/dates/{id:id}", admin.admin_event_page, methods=["GET"], name="admin_event"),
    Route("/admin/dates/{id:id}", admin.admin_event_save, methods=["POST"], name="admin_event"),
    Route(
        "/admin/dates/{id:id}/cancel",
        admin.admin_event_cancel,
        methods=["POST"],
        name="admin_event_cancel",
    ),
    Route(
        "/admin/dates/{id:id}/participants.csv",
        admin.admin_participants_csv,
        methods=["GET"],
        name="admin_participants",
    ),
    Route("/{slug}/calendar.ics", public.series_calendar, methods=["GET"], name="series_calendar"),
    Route("/{slug}", public.series_page, methods=["GET"], name="series"),
    Route("/{slug}", public.register, methods=["POST"], name="series"),
]
