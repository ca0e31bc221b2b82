"""Routes of the feeds service (prefix in service.py): public pages, feeds, and the admin."""

from __future__ import annotations

from starlette.routing import Route

from services.feeds import admin_files, admin_items, admin_media, admin_sources, public

routes = [
    Route("/", public.news_list, methods=["GET"], name="news"),
    Route("/feed.{fmt}", public.feed, methods=["GET"], name="feed"),
    Route("/events.ics", public.calendar, methods=["GET"], name="calendar"),
    Route("/media/{name}", public.media_file, methods=["GET"], name="media"),
    Route("/api/items", public.api_items, methods=["GET"], name="api_items"),
    Route("/admin/", admin_items.admin_items, methods=["GET"], name="admin"),
    Route("/admin/images", admin_media.image_list, methods=["GET"], name="admin_images"),
    Route("/admin/images", admin_media.upload_image, methods=["POST"], name="admin_images"),
    Route("/admin/new", admin_items.admin_new_page, methods=["GET"], name="admin_new"),
    Route("/admin/new", admin_items.admin_create, methods=["POST"], name="admin_new"),
    Route("/admin/{id:id}", admin_items.admin_edit_page, methods=["GET"], name="admin_item"),
    Route("/admin/{id:id}", admin_items.admin_save, methods=["POST"], name="admin_item"),
    Route(
        "/admin/{id:id}/workflow",
        admin_items.admin_workflow,
        methods=["POST"],
        name="admin_workflow",
    ),
    Route(
        "/admin/{id:id}/revision",
        admin_items.admin_revision,
        methods=["POST"],
        name="admin_revision",
    ),
    Route(
        "/admin/partner/{id:id}/hide",
        admin_items.admin_hide,
        methods=["POST"],
        name="admin_hide_partner_item",
    ),
    Route("/admin/sources", admin_sources.admin_sources, methods=["GET"], name="admin_sources"),
    Route("/admin/sources", admin_sources.admin_add_source, methods=["POST"], name="admin_sources"),
    Route(
        "/admin/sources.opml",
        admin_sources.admin_export_opml,
        methods=["GET"],
        name="admin_sources_opml",
    ),
    Route(
        "/admin/sources.opml",
        admin_sources.admin_import_opml,
        methods=["POST"],
        name="admin_sources_opml",
    ),
    Route(
        "/admin/sources/{id:id}",
        admin_sources.admin_source_action,
        methods=["POST"],
        name="admin_source",
    ),
    Route("/admin/{id:id}/files", admin_files.attach_file, methods=["POST"], name="admin_files"),
    Route(
        "/admin/{id:id}/files/remove",
        admin_files.remove_file,
        methods=["POST"],
        name="admin_files_remove",
    ),
    Route("/files/{id:id}/{name}", public.download, methods=["GET"], name="download"),
    Route("/{slug}", public.news_item, methods=["GET"], name="item"),
]
