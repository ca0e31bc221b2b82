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

import ipaddress
import os
import re
from dataclasses import dataclass
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


#: ``host:port`` of an upstream (a name or an IPv4 address; the services listen on those).
ADDRESS = re.compile(r"[A-Za-z0-9.-]+:[0-9]{1,5}")

#: A server name nginx matches against the Host header.
SERVER_NAME = re.compile(r"[A-Za-z0-9.*-]+")

#: What a quoted nginx argument cannot hold: quotes, escapes, variables, line ends.
UNQUOTABLE = re.compile(r'["\\$\n\r{};]')


class ProxyConfigError(ValueError):
    """The upstreams or options given cannot make a working configuration."""


@dataclass(frozen=True)
class Route:
    """One part with pages as nginx sees it: its prefix ("" for the root) and servers."""

    name: str
    prefix: str
    servers: list[str]


def parse_upstreams(pairs: list[str]) -> dict[str, list[str]]:
    """``["portal=http://127.0.0.1:8000", ...]`` as ``{"portal": ["127.0.0.1:8000"]}``,
    checked against the registry: every part with pages needs an upstream, and no other
    name is accepted. A name given twice has two servers (nginx balances between them).
    The services speak plain HTTP on the inside; TLS ends here or before."""
    upstreams: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        address = url.removeprefix("http://").rstrip("/")
        if not sep or not url.startswith("http://") or not ADDRESS.fullmatch(address):
            raise ProxyConfigError(f"--upstream {pair!r}: expected NAME=http://host:port")
        upstreams.setdefault(name, []).append(address)
    servable = registry.servable()
    unknown = sorted(set(upstreams) - set(servable))
    missing = [name for name in servable if name not in upstreams]
    if unknown or missing:
        raise ProxyConfigError(
            "each part with pages needs an --upstream NAME=URL; "
            f"the parts are {', '.join(servable)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    return upstreams


def quoted(value: str) -> str:
    """``value`` as one quoted nginx argument (a folder may hold spaces); refuses the
    characters nginx would read as syntax or variables even inside quotes."""
    if UNQUOTABLE.search(value):
        raise ProxyConfigError(
            f"{value!r}: nginx cannot take quotes, backslashes, $, braces, semicolons or "
            "line breaks in a path"
        )
    return f'"{value}"'


def nginx_config(
    upstreams: dict[str, list[str]],
    listen: str = "80",
    cache_dir: str | None = None,
    standalone_dir: str | None = None,
    server_name: str | None = None,
    front: str | None = None,
    resolver: str | None = None,
) -> str:
    """The configuration for ``upstreams`` (from :func:`parse_upstreams`): an
    ``http``-level snippet (for ``conf.d/`` of a system's or the official image's nginx),
    or with ``standalone_dir`` a whole ``nginx.conf`` that runs in the foreground with
    its pid, temporary files and (unless ``cache_dir`` is given) cache in that folder.

    ``server_name``: the site's host name, so that a system nginx with other sites (or
    Debian's default one) routes it here. ``front``: the address of a TLS terminator in
    front of nginx, the one hop whose X-Forwarded-For and -Proto are believed; without
    it nginx is the edge and the peer's address is the client. ``resolver``: a DNS
    server to look up the upstreams at run time instead of once at start (Compose,
    where a recreated container gets a new address; one server per part)."""
    if cache_dir is None:
        cache_dir = f"{standalone_dir}/cache" if standalone_dir else DEFAULT_CACHE_DIR
    if server_name is not None and not SERVER_NAME.fullmatch(server_name):
        raise ProxyConfigError(f"--server-name {server_name!r}: expected a host name")
    for address, option in ((front, "--front"), (resolver, "--resolver")):
        if address is not None:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ProxyConfigError(f"{option} {address!r}: expected an IP address") from None
    if resolver is not None and any(len(servers) > 1 for servers in upstreams.values()):
        raise ProxyConfigError("--resolver takes one --upstream per part (Compose scales by DNS)")
    routes = [
        Route(name=part.name, prefix=part.prefix, servers=upstreams[part.name])
        for part in registry.parts()
        if part.routes is not None
    ]
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE.parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # nginx syntax, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["quoted"] = quoted
    return environment.get_template(TEMPLATE.name).render(
        # The root part last: nginx picks the longest prefix anyway, but readers look
        # for the catch-all at the end.
        routes=sorted(routes, key=lambda route: route.prefix == ""),
        listen=listen,
        cache_dir=cache_dir,
        max_body=MAX_BODY,
        standalone_dir=standalone_dir,
        server_name=server_name,
        front=front,
        resolver=resolver,
        # As root, nginx's workers would run as nobody and could not write the folder.
        run_as_root=standalone_dir is not None and os.geteuid() == 0,
    )
