"""Routes of the members service (prefix in service.py): the public map and its data,
and the admin."""

from __future__ import annotations

from starlette.routing import Route

from services.members import admin, public

routes = [
    Route("/", public.member_map, methods=["GET"], name="map"),
    Route("/map.geojson", public.geojson, methods=["GET"], name="geojson"),
    Route("/admin/", admin.admin_members, methods=["GET"], name="admin"),
    Route("/admin/new", admin.admin_new_page, methods=["GET"], name="admin_new"),
    Route("/admin/new", admin.admin_create, methods=["POST"], name="admin_new"),
    Route("/admin/{id:id}", admin.admin_member_page, methods=["GET"], name="admin_member"),
    Route("/admin/{id:id}", admin.admin_update, methods=["POST"], name="admin_member"),
    Route("/admin/{id:id}/delete", admin.admin_delete, methods=["POST"], name="admin_delete"),
    Route("/admin/members.csv", admin.admin_export, methods=["GET"], name="admin_csv"),
    Route("/admin/members.csv", admin.admin_import, methods=["POST"], name="admin_csv"),
]
