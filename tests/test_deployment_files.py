"""The deployment files as their own tools read them (issue 10, finding 8).

``docker-compose.yml`` is resolved by Compose itself (``docker compose config``, or
Debian's ``docker-compose``), and the result is checked for what makes it boot: health
checks gating the migration, the migration gating everything else, internal URLs, nginx
as the one trusted proxy, secrets only where needed. The nginx configuration made by
``kgi proxy-config`` is checked by ``nginx -t``, in both of its forms.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from kgi import proxy, registry
from kgi.cli import build_parser
from tests.conftest import free_port, run_kgi, wait_for

ROOT = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PASSWORD = "compose-test-password"

#: The services made from the project's image that need the databases.
APPLICATION_SERVICES = (
    "migrate",
    "portal",
    "subscribers",
    "feeds",
    "newsletter",
    "members",
    "events",
    "scheduler",
)


def compose_command() -> list[str] | None:
    """``docker compose`` when the plugin is there, else Debian's ``docker-compose``."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict:
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose: sh scripts/install-test-tools.sh installs docker-compose")
    folder = tmp_path_factory.mktemp("compose")
    shutil.copy(ROOT / "docker-compose.yml", folder)
    (folder / ".env").write_text(f"POSTGRES_PASSWORD={PASSWORD}\n")
    (folder / "kgi.env").write_text("KGI_SECRET_KEY=compose-test-secret\n")
    resolved = subprocess.run(
        [*command, "config"], cwd=folder, capture_output=True, text=True, check=False
    )
    assert resolved.returncode == 0, resolved.stderr
    return yaml.safe_load(resolved.stdout)


def environment_of(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(entry.split("=", 1) for entry in environment)
    return {name: str(value) for name, value in environment.items()}


def test_compose_gates_the_start_on_health_and_migration(compose):
    services = compose["services"]
    for infrastructure in ("postgres", "redis"):
        assert services[infrastructure]["healthcheck"]["test"]
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    gated = [
        name for name, service in services.items() if "migrate" in service.get("depends_on", {})
    ]
    for name in gated:
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert set(APPLICATION_SERVICES) - {"migrate"} <= set(gated)
    assert {"worker-1", "worker-2"} <= set(gated)
    served = {
        service["command"][2]
        for service in services.values()
        if service.get("command", [])[:2] == ["kgi", "serve"]
    }
    assert served == set(registry.servable())


def test_compose_puts_nginx_in_front_as_the_one_trusted_proxy(compose, tmp_path):
    services = compose["services"]
    command = services["proxy-config"]["command"]
    arguments = build_parser().parse_args(command[1:])
    # Every part with pages, by the same check `kgi proxy-config` makes.
    upstreams = proxy.parse_upstreams(arguments.upstream)
    for name, [address] in upstreams.items():
        host = address.split(":")[0]
        assert services[host]["command"][:3] == ["kgi", "serve", name]
    # What proxy-config writes there passes nginx (the image's own is newer still).
    if shutil.which(NGINX):
        config = proxy.nginx_config(
            upstreams, cache_dir=str(tmp_path / "cache"), resolver=arguments.resolver
        )
        assert arguments.resolver and "resolver " in config
        (tmp_path / "kgi.conf").write_text(config)
        (tmp_path / "nginx.conf").write_text(snippet_host(tmp_path / "kgi.conf"))
        assert_nginx_accepts(tmp_path / "nginx.conf")
    assert "/etc/nginx/conf.d" in " ".join(str(v) for v in services["nginx"]["volumes"])
    nginx_address = services["nginx"]["networks"]["kgi"]["ipv4_address"]
    for name in APPLICATION_SERVICES:
        environment = environment_of(services[name])
        assert environment["KGI_TRUSTED_PROXY"] == nginx_address
        for peer in ("KGI_SUBSCRIBERS_URL", "KGI_FEEDS_URL"):
            assert environment[peer].split("//")[1].split(":")[0] in services
    published = [name for name, service in services.items() if service.get("ports")]
    assert published == ["nginx"]


def test_compose_hands_secrets_only_where_needed(compose):
    services = compose["services"]
    for name, service in services.items():
        environment = environment_of(service)
        holders = {key for key, value in environment.items() if PASSWORD in value}
        if name == "postgres":
            assert holders == {"POSTGRES_PASSWORD"}
        elif name in APPLICATION_SERVICES or name.startswith("worker"):
            # Inside their database URLs only; never the password as a variable of its own.
            assert holders == {
                f"KGI_{owner.upper()}_DATABASE_URL" for owner in registry.database_owners()
            }
            assert "/data" in " ".join(str(v) for v in service["volumes"])
        else:
            assert not holders, name
            assert not service.get("env_file"), name


def test_dockerfile_owns_the_volume_folders_as_its_unprivileged_user():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    user = next(line.split()[1] for line in lines if line.startswith("USER "))
    assert user not in ("root", "0", "nobody")
    build = "\n".join(lines)
    assert f"chown {user}:{user} /data /srv/proxy" in build
    assert "KGI_DATA_DIR=/data" in build
    # The editor the site serves comes from the npm registry, pinned by the lock file.
    assert "COPY package.json package-lock.json ./" in build
    assert "COPY --from=front-end /build/node_modules node_modules" in build


def upstream_arguments(port: int | None = None) -> list[str]:
    """An ``--upstream`` per part: each on a port of its own, or all on ``port``."""
    return [
        argument
        for number, name in enumerate(registry.servable())
        for argument in ("--upstream", f"{name}=http://127.0.0.1:{port or 9100 + number}")
    ]


def snippet_host(snippet: Path) -> str:
    """A minimal nginx.conf including ``snippet`` in ``http``, as conf.d/ is included."""
    folder = snippet.parent
    return (
        f"pid {folder}/nginx.pid;\nevents {{}}\nhttp {{\n"
        f"client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;\n"
        f"include {snippet};\n}}\n"
    )


def assert_nginx_accepts(config: Path) -> None:
    """``nginx -t`` on ``config``, with its folder as nginx's prefix."""
    checked = subprocess.run(
        [NGINX, "-t", "-e", "stderr", "-p", str(config.parent), "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.skipif(not shutil.which(NGINX), reason="nginx is missing (install-test-tools.sh)")
def test_proxy_config_passes_nginx_in_both_forms(tmp_path):
    standalone = tmp_path / "standalone"
    standalone.mkdir()
    made = run_kgi(
        "proxy-config",
        *upstream_arguments(),
        "--listen",
        "127.0.0.1:9180",
        "--standalone",
        str(standalone),
        "--output",
        str(standalone / "nginx.conf"),
    )
    assert made.returncode == 0, made.stderr
    assert_nginx_accepts(standalone / "nginx.conf")
    # The snippet form, as conf.d/ of the official image includes it in `http`.
    snippet = run_kgi("proxy-config", *upstream_arguments(), "--cache-dir", str(tmp_path / "cache"))
    assert snippet.returncode == 0, snippet.stderr
    (tmp_path / "kgi.conf").write_text(snippet.stdout)
    (tmp_path / "nginx.conf").write_text(snippet_host(tmp_path / "kgi.conf"))
    assert_nginx_accepts(tmp_path / "nginx.conf")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--upstream", "portal=127.0.0.1:9100"], "expected NAME=http://host:port"),
        (
            ["--upstream", "portal=http://127.0.0.1:9100"],
            "missing: events, feeds, members, newsletter, subscribers",
        ),
        (["--upstream", "shop=http://127.0.0.1:9"], "unknown: shop"),
        (["--upstream", "portal=https://example.org/x"], "expected NAME=http://host:port"),
    ],
)
def test_proxy_config_names_what_is_wrong(arguments, message):
    result = run_kgi("proxy-config", *arguments)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with the headers it came with, as JSON."""

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def proxied_echo(tmp_path: Path) -> Iterator[tuple[str, Callable[..., dict]]]:
    """nginx from ``kgi proxy-config --front 127.0.0.1`` in front of an echo server:
    yields the proxy's URL and a function asking it from a given source address."""
    if not shutil.which(NGINX):
        pytest.skip("nginx is missing (install-test-tools.sh)")
    echo = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    listen = free_port()
    made = run_kgi(
        "proxy-config",
        *upstream_arguments(echo.server_address[1]),
        "--front", "127.0.0.1",
        "--listen", f"127.0.0.1:{listen}",
        "--standalone", str(tmp_path),
        "--output", str(tmp_path / "nginx.conf"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    nginx = subprocess.Popen(
        [NGINX, "-e", "stderr", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{listen}"

    def ask(source: str, path: str = "/news/x", **headers: str) -> dict:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport) as client:
            return client.get(url + path, headers=headers).json()

    try:
        wait_for(lambda: port_open(listen), message="nginx to listen")
        yield url, ask
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        echo.shutdown()


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_nginx_believes_the_front_and_nobody_else(proxied_echo):
    url, ask = proxied_echo
    # A client reaching nginx directly is its own address, whatever it claims.
    direct = ask(
        "127.0.0.2",
        **{"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https", "x-real-ip": "1.1.1.1"},
    )
    assert direct["x-forwarded-for"] == "127.0.0.2"
    assert direct["x-forwarded-proto"] == "http"
    assert "x-real-ip" not in direct and "forwarded" not in direct
    # The TLS terminator in front (127.0.0.1) is believed: the last address it added.
    fronted = ask(
        "127.0.0.1",
        **{"x-forwarded-for": "203.0.113.9, 198.51.100.7", "x-forwarded-proto": "https"},
    )
    assert fronted["x-forwarded-for"] == "198.51.100.7"
    assert fronted["x-forwarded-proto"] == "https"
    # The Host the client used reaches the service, port included (for its redirects).
    assert fronted["host"] == url.removeprefix("http://")
    # Each prefix goes to its part; /newsfoo is not /news.
    assert ask("127.0.0.2", "/newsfoo")["path"] == "/newsfoo"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--front", "tls.example.org"], "--front 'tls.example.org': expected an IP address"),
        (["--server-name", "a b"], "expected a host name"),
        (["--standalone", "/tmp/a$b"], "nginx cannot take"),
        (["--resolver", "127.0.0.11", "--upstream", "feeds=http://127.0.0.1:1"], "one --upstream"),
    ],
)
def test_proxy_config_refuses_options_nginx_would_misread(arguments, message):
    result = run_kgi("proxy-config", *upstream_arguments(), *arguments)
    assert result.returncode == 1 and message in result.stderr, result.stderr
