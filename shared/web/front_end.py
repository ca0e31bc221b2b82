"""Files the browser loads from the site itself: the front-end packages installed from
the npm registry (the rich-text editor, see scripts/install-editor.sh), the map library
from PyPI (Leaflet and its marker clustering, as XStatic packages) and the site's own
few scripts. Nothing is loaded from another host at run time but the map's tiles.

Served by the portal, under named mounts (``portal:tinymce``, ``portal:static`` ...), so
pages link to them by name like to every route.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from shared.config import get_settings

#: The site's own scripts.
STATIC_DIR = Path(__file__).resolve().parent / "static"


class PackageFiles:
    """A folder of an installed npm package, found when first asked for (the settings
    say where the packages are). Missing, it answers 404 like a missing file, and the
    pages work without what it would add (a textarea stays a textarea)."""

    def __init__(self, package: str, folder: str = "") -> None:
        self.package = package
        self.folder = folder
        self._files: StaticFiles | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._files is None:
            directory = get_settings().front_end_dir / self.package / self.folder
            self._files = StaticFiles(directory=directory, check_dir=False)
        await self._files(scope, receive, send)


def mounts() -> list[Mount]:
    """The mounts of the files above, for the portal's routes."""
    import xstatic.pkg.leaflet
    import xstatic.pkg.leaflet_markercluster

    return [
        Mount(
            "/static/leaflet", StaticFiles(directory=xstatic.pkg.leaflet.BASE_DIR), name="leaflet"
        ),
        Mount(
            "/static/leaflet-markercluster",
            StaticFiles(directory=xstatic.pkg.leaflet_markercluster.BASE_DIR),
            name="leaflet_markercluster",
        ),
        Mount("/static/site", StaticFiles(directory=STATIC_DIR), name="static"),
        Mount("/static/tinymce", PackageFiles("tinymce"), name="tinymce"),
        Mount("/static/tinymce-i18n", PackageFiles("tinymce-i18n", "langs8"), name="tinymce_i18n"),
    ]
