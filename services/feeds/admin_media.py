"""The rich-text editor's images: the list of uploaded images to choose from, and an
upload straight from the editor. Editors and admins; the upload carries the form's CSRF
token like every form."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.feeds import media
from shared.errors import Invalid
from shared.web.forms import form_endpoint, uploaded_file
from shared.web.sessions import login_required

#: Largest upload request: the image and the form around it.
UPLOAD_LIMIT = media.MAX_IMAGE_BYTES + 64 * 1024


@login_required()
def image_list(request: Request) -> Response:
    """Uploaded images as the editor's image list wants them: title and URL."""
    return JSONResponse(
        [{"title": name, "value": media.media_url(name)} for name in media.uploaded_images()]
    )


@login_required()
@form_endpoint(limit=UPLOAD_LIMIT)
def upload_image(request: Request, form: FormData) -> Response:
    """Store an image from the editor; answers ``{"location": URL}`` (what the editor
    expects), or 422 with the reason when it is no image we take."""
    upload = uploaded_file(form)
    if upload is None:
        raise Invalid("Please choose an image.", "file")
    return JSONResponse({"location": media.save_image(upload.data)})
