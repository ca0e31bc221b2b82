"""Routes of the feeds service, mounted at ``/news``: public pages, feeds, and the admin."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from services.feeds import admin_items, admin_sources, public
from shared.web.app import create_service_app

routes = [
    Route("/", public.news_list, methods=["GET"]),
    Route("/feed.{fmt}", public.feed, methods=["GET"]),
    Route("/events.ics", public.calendar, methods=["GET"]),
    Route("/media/{name}", public.media_file, methods=["GET"]),
    Route("/api/items", public.api_items, methods=["GET"]),
    Route("/admin/", admin_items.admin_items, methods=["GET"]),
    Route("/admin/new", admin_items.admin_new_page, methods=["GET"]),
    Route("/admin/new", admin_items.admin_create, methods=["POST"]),
    Route("/admin/{id:id}", admin_items.admin_edit_page, methods=["GET"]),
    Route("/admin/{id:id}", admin_items.admin_save, methods=["POST"]),
    Route("/admin/{id:id}/workflow", admin_items.admin_workflow, methods=["POST"]),
    Route("/admin/{id:id}/revision", admin_items.admin_revision, methods=["POST"]),
    Route("/admin/partner/{id:id}/hide", admin_items.admin_hide, methods=["POST"]),
    Route("/admin/sources", admin_sources.admin_sources, methods=["GET"]),
    Route("/admin/sources", admin_sources.admin_add_source, methods=["POST"]),
    Route("/admin/sources/{id:id}", admin_sources.admin_source_action, methods=["POST"]),
    Route("/{slug}", public.news_item, methods=["GET"]),
]


def create_app() -> Starlette:
    """The feeds app, to be mounted at ``/news``."""
    return create_service_app(routes)
