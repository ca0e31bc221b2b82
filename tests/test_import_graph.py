"""The project's imports point one way: no cycles, no imports made for their side effects.

Every ``.py`` file under ``kgi/``, ``services/`` and ``shared/`` is parsed with ``ast``
(nothing is imported, so a module with import-time side effects cannot hide them here).
Imports inside functions count as much as those at the top: a cycle moved into a function
still couples both modules, it only fails later and more quietly. Imports under
``if TYPE_CHECKING:`` are left out, because they never run.

The last tests check what replaced the side-effect import: the broker set up explicitly,
with actors imported before that still sending to Redis.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: The project's own packages; imports of anything else are not followed.
PACKAGES = ("kgi", "services", "shared")

#: Where the broker is set up; nothing may import it only for what importing it does.
BROKER_MODULE = "shared.broker"


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target``, at ``path``:``line``."""

    source: str
    target: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}  ({self.path}:{self.line})"


def module_files() -> dict[str, Path]:
    """Every project module by its dotted name (a package by its ``__init__.py``)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[ast.AST]:
    """The import statements under ``if TYPE_CHECKING:``, which never run."""
    skipped: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(ast.walk(child))
    return skipped


def _project_module(name: str, modules: dict[str, Path]) -> str | None:
    """The longest project module ``name`` lies in (``a.b.c`` for ``import a.b.c.d``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _base_of(node: ast.ImportFrom, module: str, path: Path) -> str:
    """The absolute module a ``from ... import`` reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Edge]:
    """The project modules ``module`` imports, wherever in the file the import stands.

    A module that imports other modules by name at run time (``importlib.import_module``)
    is taken to import every project module a string in it names: that is a dependency
    too, and a cycle through it is as real as one through an import statement."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped = _type_checking_nodes(tree)
    relative = str(path.relative_to(ROOT))
    dynamic = any(
        isinstance(node, ast.Attribute) and node.attr == "import_module" for node in ast.walk(tree)
    )
    for node in ast.walk(tree):
        if node in skipped:
            continue
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            targets = [_project_module(alias.name, modules) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(node, module, path)
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name``
            # imports mod.
            targets = [
                _project_module(f"{base}.{alias.name}", modules)
                if f"{base}.{alias.name}" in modules
                else _project_module(base, modules)
                for alias in node.names
            ]
        elif dynamic and isinstance(node, ast.Constant) and node.value in modules:
            targets = [node.value]
        for target in targets:
            if target is not None and target != module:
                yield Edge(module, target, relative, getattr(node, "lineno", 0))


def import_graph() -> dict[str, list[Edge]]:
    """Each project module with the edges to the project modules it imports."""
    modules = module_files()
    return {name: list(imports_of(name, path, modules)) for name, path in modules.items()}


def strongly_connected(graph: dict[str, list[Edge]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (no recursion limit): the components with a cycle."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[Edge]]] = [(root, iter(graph[root]))]
        index[root] = lowlink[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            edge = next(edges, None)
            if edge is not None:
                if edge.target not in index:
                    index[edge.target] = lowlink[edge.target] = len(index)
                    stack.append(edge.target)
                    on_stack.add(edge.target)
                    work.append((edge.target, iter(graph.get(edge.target, []))))
                elif edge.target in on_stack:
                    lowlink[node] = min(lowlink[node], index[edge.target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
            if lowlink[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_the_graph_sees_imports_inside_functions() -> None:
    """The walk finds a function-level import (the kind that used to hide cycles)."""
    edges = {(e.source, e.target) for e in import_graph()["kgi.cli"]}
    assert ("kgi.cli", "kgi.site") in edges  # imported inside cmd_serve


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = strongly_connected(graph)
    report = []
    for component in cycles:
        members = set(component)
        inside = [e for m in component for e in graph[m] if e.target in members]
        report.append(
            "cycle among " + ", ".join(component) + ":\n" + "\n".join(f"    {e}" for e in inside)
        )
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(report)


def test_no_side_effect_imports_of_the_broker() -> None:
    """The broker is set up by calling shared.broker.setup_broker(), never by importing."""
    offenders = []
    for path in module_files().values():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            text = lines[node.lineno - 1]
            bare = isinstance(node, ast.Import) and BROKER_MODULE in names
            unused = any(n.startswith(BROKER_MODULE) for n in names) and "F401" in text
            if bare or unused:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text.strip()}")
    assert not offenders, "imports of the broker for their side effect:\n" + "\n".join(offenders)


def test_only_entry_points_import_actors() -> None:
    """Web and domain modules send by actor name (shared.tasks.enqueue); only the
    ``kgi`` entry points and the actors modules themselves may import actors modules."""
    offenders = [
        str(edge)
        for module, edges in import_graph().items()
        for edge in edges
        if edge.target.endswith(".actors")
        and not module.startswith("kgi.")
        and not module.endswith(".actors")
        # The broker set-up loads the actors by name so each process can send to them.
        and module != BROKER_MODULE
    ]
    assert not offenders, "modules that import actors:\n" + "\n".join(offenders)


def test_tarjan_finds_every_cycle() -> None:
    """The cycle finder itself, on a made-up graph: two cycles and a tail that is none."""

    def edges(source: str, *targets: str) -> list[Edge]:
        return [Edge(source, target, "x.py", 1) for target in targets]

    graph = {
        "a": edges("a", "b"),
        "b": edges("b", "c"),
        "c": edges("c", "a", "d"),
        "d": edges("d", "e"),
        "e": edges("e", "d"),
        "f": edges("f", "a"),
    }
    assert sorted(strongly_connected(graph)) == [["a", "b", "c"], ["d", "e"]]


#: Run in a fresh interpreter: the actors are imported before the broker is set up (as
#: the scheduler does), which this test process, set up in conftest, can no longer show.
SEND_BEFORE_AND_AFTER_SETUP = """
import json

import dramatiq.broker

from kgi import registry
from services.feeds import actors as feeds_actors
from services.newsletter import dispatch  # noqa: F401  (the domain side of send_issue)
from shared.tasks import BrokerNotSetUp, enqueue

assert dramatiq.broker.global_broker is None, "an import installed a broker"
try:
    feeds_actors.fetch_source.send(1)
except BrokerNotSetUp:
    refused = True
else:
    refused = False

broker = registry.setup()
assert registry.setup() is broker
print(json.dumps({
    "refused_before_setup": refused,
    "global_is_ours": dramatiq.get_broker() is broker,
    "actor_bound_to_ours": feeds_actors.fetch_source.broker is broker,
    # The Redis broker files each message under an id of its own, not the message id.
    "fetch_source": feeds_actors.fetch_source.send(7).options["redis_message_id"],
    "send_issue": enqueue("send_issue", 8).options["redis_message_id"],
}))
"""


def test_actors_imported_before_the_set_up_send_to_redis(environment: Any) -> None:
    """Messages of actors declared before setup_broker() reach our Redis queues, both
    sent by the actor and by name; before the set-up a send is refused, not lost."""
    import redis

    from shared.broker import BROKER_NAMESPACE

    result = subprocess.run(
        [sys.executable, "-c", SEND_BEFORE_AND_AFTER_SETUP],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    sent = json.loads(result.stdout.strip().splitlines()[-1])
    assert sent["refused_before_setup"]
    assert sent["global_is_ours"] and sent["actor_bound_to_ours"]

    client = redis.Redis.from_url(environment.redis.url)
    for queue, actor_name, argument in (
        ("feeds", "fetch_source", 7),
        ("newsletter", "send_issue", 8),
    ):
        key = f"{BROKER_NAMESPACE}:{queue}"
        redis_id = sent[actor_name]
        assert client.lrange(key, 0, -1) == [redis_id.encode()], f"{actor_name} not queued"
        message = json.loads(client.hget(f"{key}.msgs", redis_id) or b"{}")
        assert (message["actor_name"], message["args"]) == (actor_name, [argument])
    # Nothing went to the namespace of a default broker Dramatiq would have made up.
    assert not client.keys("dramatiq:*")


def test_every_process_kind_sets_up_the_same_broker() -> None:
    """registry.setup() is idempotent, sets up Dramatiq's global broker and declares
    every service's actors on it."""
    import dramatiq

    from kgi import registry

    broker = registry.setup()
    assert registry.setup() is broker
    assert dramatiq.get_broker() is broker
    assert {
        "fetch_source",
        "fetch_due_sources",
        "send_issue",
        "supervise_dispatch",
        "send_subscriber_mail",
        "sweep_outbox",
        "purge_expired_signups",
    } <= broker.get_declared_actors()
    assert all(broker.get_actor(name).broker is broker for name in broker.get_declared_actors())


#: The most lines a module of the project may have: past this, it holds more than one
#: job and wants splitting (ARCHITECTURE.md, where to add a thing).
MAX_MODULE_LINES = 400


def test_no_module_of_the_project_is_over_the_size_of_one_job() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n >= MAX_MODULE_LINES} == {}
