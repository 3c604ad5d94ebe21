"""The API's error boundary on a tiny app: an IntegrationError that escapes a service is a 503
problem naming the system, and nothing of its internals; the JSON hook writes UTF-8 and exact
decimals."""

from __future__ import annotations

import itertools
import json
import logging
from decimal import Decimal

import pytest
from sanic import HTTPResponse, Request, Sanic
from sanic.compat import Header

from api.app import dumps
from api.errors import PROBLEM_JSON, register_error_handlers
from integrations.errors import MalformedResponse, RequestRejected, SystemTimeout, SystemUnavailable
from services import errors as e

_names = itertools.count()
SECRET_DETAIL = "HTTP 503 from http://10.0.0.7:9000/tax/book_payment body=stack trace"


class Answer:
    def __init__(self, response: HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.content_type = response.content_type
        self.text = (response.body or b"").decode()
        self.json = json.loads(self.text)


async def _answer(error: Exception, headers: dict[str, str] | None = None) -> Answer:
    """The handler `register_error_handlers` chose for `error`, run on a request for /book.

    No server and no ASGI start-up: Sanic rewrites its own methods when an app starts, which
    clashes with the session's real app in the same process."""
    app = Sanic(f"error_boundary_{next(_names)}", configure_logging=False)
    register_error_handlers(app)
    request = Request(b"/book", Header(headers or {}), "1.1", "GET", None, app)  # type: ignore[arg-type]
    handler = app.error_handler.lookup(error)
    assert handler is not None
    try:
        raise error  # as from a route, with a traceback
    except Exception as raised:
        return Answer(await handler(request, raised))


@pytest.mark.parametrize(
    "error",
    [
        SystemUnavailable(SECRET_DETAIL, system="tax", operation="book_payment", status=503),
        SystemTimeout(SECRET_DETAIL, system="tax", operation="book_payment"),
        RequestRejected(SECRET_DETAIL, system="tax", operation="book_payment", code="E42"),
        MalformedResponse(SECRET_DETAIL, system="tax", operation="book_payment"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_an_escaped_integration_error_is_a_503_problem(error):
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("estate.api")
    # import-linter's CLI (tests/unit/test_architecture.py) disables every existing logger
    # in this process through dictConfig; a server process configures logging once.
    was_disabled, logger.disabled = logger.disabled, False
    logger.addHandler(handler)
    try:
        response = await _answer(error, {"Accept-Language": "en"})
    finally:
        logger.removeHandler(handler)
        logger.disabled = was_disabled
    assert response.status == 503
    assert response.content_type == PROBLEM_JSON
    problem = response.json
    assert problem["code"] == "UPSTREAM_UNAVAILABLE" and problem["status"] == 503
    assert problem["system"] == "tax"
    assert problem["title"] == e.UpstreamUnavailable.title_en
    assert problem["type"].endswith("/upstream-unavailable") and problem["instance"] == "/book"
    # nothing of the internals: no operation, no address, no message
    assert "book_payment" not in response.text and "10.0.0.7" not in response.text
    (record,) = [r for r in records if r.getMessage().startswith("integration error")]
    assert (record.system, record.operation) == ("tax", "book_payment")  # type: ignore[attr-defined]
    assert "test_error_boundary.py" in record.frames  # type: ignore[attr-defined]


async def test_the_503_problem_is_chinese_by_default():
    response = await _answer(SystemUnavailable(system="civil_registry", operation="get_person"))
    assert response.status == 503
    assert response.json["title"] == e.UpstreamUnavailable.title_zh
    assert response.json["system"] == "civil_registry"


async def test_missing_credentials_are_authentication_required():
    response = await _answer(e.AuthenticationRequired())
    assert response.status == 401 and response.json["code"] == "AUTHENTICATION_REQUIRED"
    assert response.headers["www-authenticate"].startswith("Bearer")


# --- the JSON hook --------------------------------------------------------------------------------


def test_dumps_writes_utf8_not_escapes():
    body = dumps({"name": "张三", "address": "上海市/浦东新区"})
    assert isinstance(body, bytes)
    assert "张三".encode() in body and "上海市/浦东新区".encode() in body
    assert b"\\u" not in body and b"\\/" not in body


def test_dumps_keeps_decimals_exact():
    body = dumps({"share": Decimal("0.3333333333333333333333"), "area_m2": Decimal("89.50"), 7: "x"})
    assert body == b'{"share":0.3333333333333333333333,"area_m2":89.50,"7":"x"}'
    assert json.loads(body, parse_float=Decimal)["share"] == Decimal("0.3333333333333333333333")


def test_dumps_writes_integers_beyond_64_bits_exactly():
    # A 404 problem echoes the id from the path, and a caller may send any number of digits.
    body = dumps({"right_id": 2**70, "ids": [-(2**64), 2**64 - 1], "name": "张三"})
    assert body == f'{{"right_id":{2**70},"ids":[{-(2**64)},{2**64 - 1}],"name":"张三"}}'.encode()


def test_dumps_refuses_unknown_types_unless_given_a_default():
    with pytest.raises(TypeError):
        dumps({"x": object()})
    with pytest.raises(TypeError):
        dumps({"x": Decimal("NaN")})
    assert dumps({"x": frozenset()}, default=list) == b'{"x":[]}'
