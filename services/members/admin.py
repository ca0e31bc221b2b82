"""The admin of member municipalities. Editors add and change members; importing a list
and removing members are for admins (both can take many off the map at once)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.members import store, transfer
from services.members.fields import FIELDS, InvalidMember, parse_member, states_by_name
from shared.i18n import request_language
from shared.web.forms import form_endpoint, form_text, uploaded_file
from shared.web.paths import path_for
from shared.web.sessions import current_user, login_required
from shared.web.templates import render_page

#: Largest request an import takes: the file and the form around it.
IMPORT_BODY_LIMIT = transfer.MAX_IMPORT_BYTES + 64 * 1024

#: File name of an export.
EXPORT_FILENAME = "kgi-members.csv"


def _is_admin(request: Request) -> bool:
    user = current_user(request)
    return user is not None and user["role"] == "admin"


def _list_page(
    request: Request,
    status: int = 200,
    report: transfer.ImportReport | None = None,
    import_error: str | None = None,
) -> Response:
    return render_page(
        request,
        "members/admin/list.html",
        {
            "members": store.all_members(),
            "manage": _is_admin(request),
            "report": report,
            "import_error": import_error,
            "outcomes": transfer.OUTCOMES,
            "columns": FIELDS,
        },
        status_code=status,
    )


@login_required()
def admin_members(request: Request) -> Response:
    """Every member, with the import and export."""
    return _list_page(request)


def _form_page(
    request: Request,
    values: dict[str, str],
    member_id: int | None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    language = request_language(request)
    return render_page(
        request,
        "members/admin/edit.html",
        {
            "values": values,
            "member_id": member_id,
            "error": error,
            "manage": _is_admin(request),
            "states": states_by_name(language),
        },
        status_code=status,
    )


@login_required()
def admin_new_page(request: Request) -> Response:
    """An empty member form."""
    return _form_page(request, {}, None)


@login_required()
def admin_member_page(request: Request) -> Response:
    """A member's form, filled."""
    member = store.get_member(request.path_params["id"])
    values = {
        name: "" if getattr(member, name) is None else str(getattr(member, name)) for name in FIELDS
    }
    return _form_page(request, values, member.id)


def _save(request: Request, form: FormData, member_id: int | None) -> Response:
    values = {name: form_text(form, name) for name in FIELDS}
    try:
        saved = store.save(parse_member(values), member_id)
    except (InvalidMember, store.DuplicateMember) as exc:
        return _form_page(request, values, member_id, str(exc), 422)
    return RedirectResponse(
        path_for("members:admin") + f"?saved={saved}#member-{saved}", status_code=303
    )


@login_required()
@form_endpoint()
def admin_create(request: Request, form: FormData) -> Response:
    """Add a member."""
    return _save(request, form, None)


@login_required()
@form_endpoint()
def admin_update(request: Request, form: FormData) -> Response:
    """Change a member (404 for one that is gone)."""
    member_id = store.get_member(request.path_params["id"]).id
    return _save(request, form, member_id)


@login_required("admin")
@form_endpoint()
def admin_delete(request: Request, form: FormData) -> Response:
    """Remove a member."""
    store.delete(request.path_params["id"])
    return RedirectResponse(path_for("members:admin") + "?deleted=1", status_code=303)


@login_required()
def admin_export(request: Request) -> Response:
    """Every member as CSV, in the columns an import reads."""
    return Response(
        transfer.export_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{EXPORT_FILENAME}"'},
    )


@login_required("admin")
@form_endpoint(limit=IMPORT_BODY_LIMIT)
def admin_import(request: Request, form: FormData) -> Response:
    """Add and update members from a CSV file; the page shows what each row did."""
    upload = uploaded_file(form)
    if upload is None:
        return _list_page(request, 422, import_error="Please choose a CSV file.")
    try:
        report = transfer.import_csv(upload.data)
    except transfer.ImportRefused as exc:
        return _list_page(request, 422, import_error=str(exc))
    return _list_page(request, report=report)
