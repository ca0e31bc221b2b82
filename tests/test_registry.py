"""The registry: every part of the house is read from its descriptor, nothing else lists them.

The proof is a fourth service made up on the spot: one package with a descriptor, and the
site serves it, links are made to it by name, ``kgi serve`` and ``kgi`` know it, and the
other parts are untouched.
"""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

import services
from kgi import registry
from kgi.cli import build_parser
from kgi.site import create_site
from shared.web import paths
from shared.web.templates import TEMPLATE_DIR
from tests.conftest import free_port

PROBE_APP = '''
"""A service the test makes up."""

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from shared.web.paths import path_for


def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello {request.path_params['who']} at {path_for('probe:home')}")


routes = [
    Route("/", hello, name="home"),
    Route("/hello/{who}", hello, name="hello"),
]
'''

PROBE_SERVICE = """
from shared.service import Service

SERVICE = Service(
    name="probe",
    prefix="/probe",
    routes="services.probe.app:routes",
    commands="services.probe.commands:add_commands",
)
"""

PROBE_COMMANDS = """
def add_commands(sub):
    sub.add_parser("probe", help="the made-up service").set_defaults(func=lambda args: 7)
"""


@pytest.fixture
def fourth_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    package = tmp_path / "probe"
    package.mkdir()
    (package / "__init__.py").write_text('"""Made up by tests/test_registry.py."""\n')
    (package / "app.py").write_text(textwrap.dedent(PROBE_APP))
    (package / "service.py").write_text(textwrap.dedent(PROBE_SERVICE))
    (package / "commands.py").write_text(textwrap.dedent(PROBE_COMMANDS))
    monkeypatch.setattr(services, "__path__", [*services.__path__, str(tmp_path)])
    registry.services_found.cache_clear()
    yield
    monkeypatch.undo()
    for name in [m for m in sys.modules if m.startswith("services.probe")]:
        del sys.modules[name]
    registry.services_found.cache_clear()
    paths.install(registry.mounts())


def test_the_house_as_the_registry_reads_it() -> None:
    names = [part.name for part in registry.parts()]
    assert names == [
        "accounts", "events", "feeds", "members", "newsletter", "subscribers", "portal"
    ]  # fmt: skip
    assert registry.database_owners() == [
        "accounts",
        "events",
        "feeds",
        "members",
        "newsletter",
        "subscribers",
    ]
    assert set(registry.periodic_jobs()) == {
        "fetch_due_sources",
        "supervise_dispatch",
        "sweep_outbox",
        "purge_expired_signups",
        "sweep_event_mails",
        "send_event_reminders",
        "purge_past_registrations",
    }
    assert registry.servable() == [
        "events",
        "feeds",
        "members",
        "newsletter",
        "subscribers",
        "portal",
    ]
    for part in registry.parts():
        if part.templates is not None:  # each part's pages and mails live where it says
            assert (TEMPLATE_DIR / part.templates).is_dir(), part.name
    assert paths.path_for("feeds:item", slug="x") == "/news/x"
    assert paths.path_template("subscribers:admin_subscriber") == "/subscribers/admin/{id}"


def test_a_fourth_service_needs_one_descriptor_and_no_edit_elsewhere(fourth_service) -> None:
    assert "probe" in registry.servable()
    registry.setup()
    assert paths.path_for("probe:hello", who="ana") == "/probe/hello/ana"
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_site(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        answer = httpx.get(f"http://127.0.0.1:{port}/probe/hello/ana")
        assert answer.status_code == 200 and answer.text == "hello ana at /probe/"
        assert httpx.get(f"http://127.0.0.1:{port}/news/").status_code == 200  # the others
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    parser = build_parser()
    args = parser.parse_args(["probe"])
    assert args.func(args) == 7
    assert parser.parse_args(["serve", "probe"]).service == "probe"
