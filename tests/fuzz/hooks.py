"""Schemathesis extensions for .ci/quality-gates, loaded with `SCHEMATHESIS_HOOKS=tests.fuzz.hooks`.

Checks that hold for every response of this API, on top of schemathesis' own (no 5xx, documented
status codes, bodies matching their schema):

- a problem+json body is a JSON object with a stable machine `code` (STYLE.md, convention 7);
- an error (4xx, 5xx) is a problem+json body, whatever produced it: our handlers, Sanic's
  routing and body parsing, or the rate limiter. The one documented exception is /health/ready,
  whose 503 is a health report.
"""

from __future__ import annotations

import json
import re
from typing import Any

import schemathesis

PROBLEM_JSON = "application/problem+json"
CODE_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]*$")
# Error responses documented with another media type: (path template, status).
NOT_PROBLEMS = {("/health/ready", 503)}


def _content_type(response: Any) -> str:
    values = response.headers.get("content-type") or [""]
    return str(values[0]).split(";")[0].strip().lower()


def _body(response: Any) -> Any:
    try:
        return json.loads(response.content or b"")
    except ValueError:
        return None


@schemathesis.check
def problem_json_has_code(ctx: Any, response: Any, case: Any) -> bool | None:
    """A problem+json body without a machine-readable `code` cannot be handled by a client."""
    if _content_type(response) != PROBLEM_JSON:
        return None
    body = _body(response)
    if not isinstance(body, dict):
        raise AssertionError(f"problem+json body is not a JSON object: {response.content[:200]!r}")
    code = body.get("code")
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise AssertionError(f"problem+json body has no valid `code` (got {code!r}): {body}")
    if body.get("status") != response.status_code:
        raise AssertionError(f"problem+json `status` {body.get('status')!r} != HTTP {response.status_code}")
    return None


@schemathesis.check
def errors_are_problem_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error, whoever raised it, uses the one envelope (api/errors.py)."""
    if response.status_code < 400:
        return None
    if (case.operation.path, response.status_code) in NOT_PROBLEMS:
        return None
    if _content_type(response) != PROBLEM_JSON:
        raise AssertionError(
            f"HTTP {response.status_code} is {_content_type(response) or 'without a content type'}, "
            f"not {PROBLEM_JSON}: {response.content[:200]!r}"
        )
    return None
