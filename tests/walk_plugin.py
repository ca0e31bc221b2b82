"""A pytest plugin that prints which of the project's Python files each test's code runs
in: the "walk" of a flow, the measure of how many rooms a newcomer crosses to follow it
(ARCHITECTURE.md gives the figures). Not loaded by default; ask for it:

    KGI_TEST_DATABASE=sqlite .venv/bin/python -m pytest -p tests.walk_plugin -s \\
        tests/test_signup_flow.py::test_sign_up_confirm_and_welcome

Every thread is followed (the test site serves requests in threads). Tests' own files,
installed packages and module bodies (imports) are not counted: only functions of the
project that ran while the test did.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

#: The project's folder; files outside it, or under these parts of it, are not counted.
PROJECT = Path(__file__).resolve().parent.parent
_NOT_COUNTED = (str(PROJECT / ".venv") + "/", str(PROJECT / "tests") + "/")
_PROJECT_PREFIX = str(PROJECT) + "/"

_walking = False
_files: set[str] = set()


def _profile(frame: FrameType, event: str, _arg: Any) -> None:
    if event != "call" or not _walking:
        return
    name = frame.f_code.co_filename
    if (
        name.startswith(_PROJECT_PREFIX)
        and not name.startswith(_NOT_COUNTED)
        and name.endswith(".py")
        and frame.f_code.co_name != "<module>"
    ):
        _files.add(name[len(_PROJECT_PREFIX) :])


def pytest_configure(config: pytest.Config) -> None:
    """Follow every call, in this thread and in every thread started from now on."""
    sys.setprofile(_profile)
    threading.setprofile(_profile)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Count the files while the test body runs (not its fixtures), then print them."""
    global _walking
    _files.clear()
    _walking = True
    try:
        return (yield)
    finally:
        _walking = False
        print(f"\nWALK {item.name}: {len(_files)} files")
        for name in sorted(_files):
            print(f"  {name}")
