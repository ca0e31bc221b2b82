"""The deployment files as their own tools read them (issue 10, finding 8).

``docker-compose.yml`` is resolved by Compose itself (``docker compose config``, or
Debian's ``docker-compose``), and the result is checked for what makes it boot: health
checks gating the migration, the migration gating everything else, internal URLs, nginx
as the one trusted proxy, secrets only where needed. The nginx configuration made by
``kgi proxy-config`` is checked by ``nginx -t``, in both of its forms.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kgi import proxy, registry
from kgi.cli import build_parser
from tests.conftest import run_kgi

ROOT = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PASSWORD = "compose-test-password"

#: The services made from the project's image that need the databases.
APPLICATION_SERVICES = ("migrate", "portal", "subscribers", "feeds", "newsletter", "scheduler")


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


def test_compose_puts_nginx_in_front_as_the_one_trusted_proxy(compose):
    services = compose["services"]
    command = services["proxy-config"]["command"]
    arguments = build_parser().parse_args(command[1:])
    # Every part with pages, by the same check `kgi proxy-config` makes.
    upstreams = proxy.parse_upstreams(arguments.upstream)
    for name, address in upstreams.items():
        host = address.split(":")[0]
        assert services[host]["command"][:3] == ["kgi", "serve", name]
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


def upstream_arguments() -> list[str]:
    return [
        argument
        for port, name in enumerate(registry.servable(), start=9100)
        for argument in ("--upstream", f"{name}=http://127.0.0.1:{port}")
    ]


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
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n"
        f"client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;\n"
        f"include {tmp_path}/kgi.conf;\n}}\n"
    )
    assert_nginx_accepts(tmp_path / "nginx.conf")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--upstream", "portal=127.0.0.1:9100"], "expected NAME=http://host:port"),
        (["--upstream", "portal=http://127.0.0.1:9100"], "missing: feeds, newsletter, subscribers"),
        (["--upstream", "shop=http://127.0.0.1:9"], "unknown: shop"),
        (["--upstream", "portal=https://example.org/x"], "expected NAME=http://host:port"),
    ],
)
def test_proxy_config_names_what_is_wrong(arguments, message):
    result = run_kgi("proxy-config", *arguments)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
