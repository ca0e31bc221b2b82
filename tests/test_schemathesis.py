"""Schemathesis against the live site's ``/openapi.json``: every documented operation,
with valid and invalid data, gives no server error and answers as documented. The
internal API is called with the service token, so generated cases reach past the 403."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.subscribers.openapi import openapi_document
from shared.tokens import service_headers

#: Generated cases per operation (valid and invalid data together).
EXAMPLES_PER_OPERATION = 250

#: Cases run per operation, for the report at the end of the module.
CASES: Counter[str] = Counter()

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# Loaded from the module the portal serves (the first test proves the site serves exactly
# this): the site's port is known only once the session runs, and schemathesis's lazy
# ``from_fixture`` loader does not work with pytest 9 (it reads ``Function._nodeid``).
schema = schemathesis.openapi.from_dict(openapi_document())


def test_the_site_serves_this_document(site: str) -> None:
    import httpx

    assert httpx.get(f"{site}/openapi.json").json() == openapi_document()
    assert httpx.get(f"{site}/subscribers/openapi.json").json() == openapi_document()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation(case: schemathesis.Case, site: str) -> None:
    CASES[case.operation.label] += 1
    response = case.call(base_url=site, headers=service_headers(), timeout=30)
    case.validate_response(response, checks=CHECKS)


def test_report_case_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert CASES, "no schemathesis case ran"
    with capsys.disabled():
        print("\nschemathesis cases per operation:")
        for label, count in sorted(CASES.items()):
            print(f"  {count:5d}  {label}")
        print(f"  {sum(CASES.values()):5d}  in all")
