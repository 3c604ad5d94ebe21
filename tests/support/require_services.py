"""Pytest plugin for CI's second pass: with TEST_REQUIRE_SERVICES=1, a test skipped for want of
PostgreSQL or Redis fails instead, so a misconfigured run cannot go green by skipping them.

Loaded explicitly: `python -m pytest -p tests.support.require_services` (see .ci/run). Without
the variable it changes nothing.

A skip counts as "for want of a service" when its reason says so: it names TEST_DATABASE_URL or
TEST_REDIS_URL, or says the test needs PostgreSQL or Redis (the convention is
`pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL")`). Other skips stay skips, including
those that merely mention a backend ("SKIP LOCKED is PostgreSQL's" on the SQLite variant).
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from typing import Any

import pytest

_SERVICE = r"\b(?:postgres(?:ql)?|redis)\b"
_MISSING_SERVICE = re.compile(
    r"TEST_(?:DATABASE|REDIS)_URL"
    rf"|\b(?:needs?|requires?|without|no)\b[^.;:]{{0,20}}{_SERVICE}"
    rf"|{_SERVICE}[^.;:]{{0,20}}\b(?:not|un)\s*(?:available|reachable|running|configured|set)\b",
    re.IGNORECASE,
)


def _enabled() -> bool:
    return os.environ.get("TEST_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr) if longrepr is not None else None


def _fail_if_service_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = _skip_reason(report)
    if reason is None or not _MISSING_SERVICE.search(reason):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"TEST_REQUIRE_SERVICES=1 but the test was skipped for a missing service: {reason}\n"
        "Check TEST_DATABASE_URL and TEST_REDIS_URL and that both servers answer."
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if _enabled():
        _fail_if_service_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if _enabled():
        _fail_if_service_skip(report)
    return report
