"""No literal service path outside the descriptors: links are made by route name.

A service's prefix is written once, in its descriptor (``services/<name>/service.py``),
and each path once, in its route. Everything else asks for a path by name
(``shared.web.paths.path_for`` in code, ``url_for`` in templates), so moving a service
to another prefix or a page to another path changes one line. This test reads every
string literal of the product's code (docstrings aside: they explain, they do not link)
and every template, and fails on a path under a service prefix.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from kgi import registry

ROOT = Path(__file__).resolve().parents[1]

#: The product's code; tests and benchmarks speak HTTP like any client and may use paths.
CODE = ("kgi", "services", "shared")

#: A path under a service prefix, not part of a longer word, a file name (the feeds'
#: ``/events.ics`` is not under the events service's ``/events``) or another host's URL.
PREFIXES = sorted((p.prefix for p in registry.services_found() if p.prefix), key=len)
SERVICE_PATH = re.compile(
    r"(?<![\w.:/])(" + "|".join(re.escape(prefix) for prefix in reversed(PREFIXES)) + r")(?![\w.-])"
)

#: Where the prefixes are meant to be written.
DESCRIPTORS = {ROOT / "services" / p.name / "service.py" for p in registry.services_found()}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes of the module, its classes and its functions."""
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
        ):
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def literal_paths_in_code(path: Path) -> list[str]:
    """``line: literal`` for each string literal of ``path`` naming a service path."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and SERVICE_PATH.search(node.value)
        ):
            hits.append(f"{node.lineno}: {node.value!r}")
    return hits


def literal_paths_in_template(path: Path) -> list[str]:
    """``line: text`` for each line of a template naming a service path."""
    text = re.sub(r"{#.*?#}", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [
        f"{n}: {line.strip()}"
        for n, line in enumerate(text.splitlines(), 1)
        if SERVICE_PATH.search(line)
    ]


def test_the_pattern_finds_service_paths_and_nothing_else() -> None:
    assert PREFIXES and all(prefix.startswith("/") for prefix in PREFIXES)
    for found in ('href="/news/"', "f'/newsletter/admin/{id}'", '"/subscribers"'):
        assert SERVICE_PATH.search(found), found
    for fine in ("https://partner.example/news/", "/newsroom", "a/news", "./news", "/events.ics"):
        assert not SERVICE_PATH.search(fine), fine


@pytest.mark.parametrize("package", CODE)
def test_no_literal_service_path_in_code(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): hits
        for path in sorted((ROOT / package).rglob("*.py"))
        if path not in DESCRIPTORS and (hits := literal_paths_in_code(path))
    }
    assert not offenders, f"use shared.web.paths.path_for instead: {offenders}"


def test_no_literal_service_path_in_templates() -> None:
    offenders = {
        str(path.relative_to(ROOT)): hits
        for path in sorted((ROOT / "templates").rglob("*"))
        if path.is_file() and (hits := literal_paths_in_template(path))
    }
    assert not offenders, f"use url_for(...) instead: {offenders}"
