"""The reverse proxy in front of the services: an nginx configuration made from the registry.

In production each service runs as its own ``kgi serve`` process; one origin in front of
them routes every part's prefix to its process, sets the client's address for the
services' rate limits and consent log, and caches what the services mark as public
(feeds: ``Cache-Control: public, max-age=300``; uploaded images), so a swarm of feed
readers costs the feeds service one request per feed and five minutes, revalidated with
a conditional GET. Pages without such a header (everything personal, every admin page)
pass through uncached.

The prefixes come from the services' descriptors, so the configuration cannot disagree
with the code: ``kgi proxy-config`` prints it, and both ``docker-compose.yml`` and
``deploy/start.sh`` use that command instead of a hand-written file.
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2

from kgi import registry

#: The nginx configuration's template, beside this module.
TEMPLATE = Path(__file__).with_name("nginx.conf.j2")

#: Most a sign-up form, an image upload or a CSV import may carry (the services refuse
#: larger bodies themselves, with a clearer message; this only keeps nginx from
#: refusing them first with its own page).
MAX_BODY = "16m"

#: Where a system's nginx keeps the cached feeds unless told otherwise.
DEFAULT_CACHE_DIR = "/var/cache/nginx/kgi"


class ProxyConfigError(ValueError):
    """The upstreams given do not match the parts that serve pages."""


def parse_upstreams(pairs: list[str]) -> dict[str, str]:
    """``["portal=http://127.0.0.1:8000", ...]`` as ``{"portal": "127.0.0.1:8000"}``,
    checked against the registry: every part with pages needs exactly one upstream, and
    no other name is accepted. The services speak plain HTTP on the inside; TLS ends
    here or before."""
    upstreams: dict[str, str] = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        address = url.removeprefix("http://").rstrip("/")
        if not sep or not url.startswith("http://") or not address or "/" in address:
            raise ProxyConfigError(f"--upstream {pair!r}: expected NAME=http://host:port")
        upstreams[name] = address
    servable = registry.servable()
    unknown = sorted(set(upstreams) - set(servable))
    missing = [name for name in servable if name not in upstreams]
    if unknown or missing:
        raise ProxyConfigError(
            "each part with pages needs one --upstream NAME=URL; "
            f"the parts are {', '.join(servable)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    return upstreams


def nginx_config(
    upstreams: dict[str, str],
    listen: str = "80",
    cache_dir: str | None = None,
    standalone_dir: str | None = None,
) -> str:
    """The configuration for ``upstreams`` (from :func:`parse_upstreams`): an
    ``http``-level snippet (for ``conf.d/`` of a system's or the official image's nginx),
    or with ``standalone_dir`` a whole ``nginx.conf`` that runs in the foreground with
    its pid, temporary files and (unless ``cache_dir`` is given) cache in that folder."""
    if cache_dir is None:
        cache_dir = f"{standalone_dir}/cache" if standalone_dir else DEFAULT_CACHE_DIR
    locations = [
        (part.prefix, upstreams[part.name])
        for part in registry.parts()
        if part.routes is not None and part.prefix
    ]
    root = next(part for part in registry.parts() if part.routes is not None and not part.prefix)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE.parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # nginx syntax, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(TEMPLATE.name).render(
        locations=locations,
        root_upstream=upstreams[root.name],
        listen=listen,
        cache_dir=cache_dir,
        max_body=MAX_BODY,
        standalone_dir=standalone_dir,
        # As root, nginx's workers would run as nobody and could not write the folder.
        run_as_root=standalone_dir is not None and os.geteuid() == 0,
    )
