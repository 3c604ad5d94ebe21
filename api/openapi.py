"""OpenAPI documentation from our pydantic models and the services' result dataclasses, exact
enough to fuzz against.

A response shape is described once: by the dataclass a service returns (its `Annotated[...,
Field(...)]` metadata documents it), read through `pydantic.TypeAdapter`, or by a small pydantic
envelope here in `api/` that adds what only the API has (`next_cursor`). `response_adapter(shape)`
gives the same description as a validator, for tests.

sanic-ext turns pydantic models into schemas itself, but loses `required`, enums and nested
models. So routes reference components by `$ref`, and the components are generated here from
`model_json_schema()` and converted to the OpenAPI 3.0 dialect that sanic-ext emits
(`nullable` instead of `{"type": "null"}`, no `const`, boolean `exclusiveMinimum`).

Path parameters are documented with their real bounds (database keys are positive int64), also
when a route forgot to declare them: a fuzzer that knows the bounds tests right at them
(.ci/quality-gates, docs/quality-gates.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from sanic import Sanic
from sanic_ext import openapi
from sanic_ext.extensions.openapi.builders import OperationStore
from sanic_ext.extensions.openapi.definitions import Parameter, RequestBody, Response

F = TypeVar("F", bound=Callable[..., Any])

_MODELS: dict[str, type] = {}  # pydantic models and dataclasses, by schema name

INT64_MAX = 9_223_372_036_854_775_807
# Database keys: BIGINT primary keys, never zero or negative.
ID_SCHEMA: dict[str, Any] = {"type": "integer", "format": "int64", "minimum": 1, "maximum": INT64_MAX}
# What a path parameter of a Sanic type is documented as when the route does not say.
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "int": ID_SCHEMA,
    "uuid": {"type": "string", "format": "uuid"},
    "str": {"type": "string", "minLength": 1, "maxLength": 200},
    "slug": {"type": "string", "pattern": "^[a-z0-9]+(?:-[a-z0-9]+)*$", "maxLength": 200},
}

ERROR_DESCRIPTIONS = {
    400: "Malformed request (problem+json)",
    401: "Not signed in, or the token is invalid (problem+json)",
    403: "Signed in, but not allowed (problem+json)",
    404: "Not found, or not yours (problem+json)",
    409: "Conflicts with the current state (problem+json)",
    415: "The body is not of a content type this operation takes (problem+json)",
    422: "Invalid input (problem+json)",
    423: "Account locked (problem+json)",
    429: "Rate limited; see Retry-After (problem+json)",
    503: "An external system is unavailable (problem+json)",
}


class Problem(BaseModel):
    """RFC 9457 problem details, with our stable `code` and the request id."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int = Field(ge=100, le=599)
    detail: str
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    request_id: str | None = None
    instance: str | None = None


def ref(model: type) -> dict[str, str]:
    """A reference to the component describing `model` (a pydantic model or a dataclass)."""
    known = _MODELS.setdefault(model.__name__, model)
    if known is not model:
        raise ValueError(f"two shapes are named {model.__name__}: {known!r} and {model!r}")
    return {"$ref": f"#/components/schemas/{model.__name__}"}


@cache
def response_adapter(shape: Any) -> TypeAdapter[Any]:
    """The validator of a documented shape: what tests check a response body against."""
    return TypeAdapter(shape)


_NULL_SCHEMAS = ({"type": "null"}, {"nullable": True})


class _Parameter(Parameter):
    """sanic-ext keeps only the fields a definition class declares; OpenAPI also has these."""

    example: Any


def _to_oas30(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_oas30(n) for n in node]
    if not isinstance(node, dict):
        return node
    converted: dict[str, Any] = {}
    for k, v in node.items():
        if k in ("$defs", "title"):  # schema annotations, not kept
            continue
        if k == "properties" and isinstance(v, dict):
            # Property names are data: a field called `title` (Problem.title) must stay.
            converted[k] = {name: _to_oas30(sub) for name, sub in v.items()}
        else:
            converted[k] = _to_oas30(v)
    node = converted
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list) and any(o in _NULL_SCHEMAS for o in options):
            rest = [o for o in options if o not in _NULL_SCHEMAS]
            del node[key]
            if len(rest) == 1:
                inner = rest[0]
                if "$ref" in inner:  # siblings of $ref are ignored in 3.0: wrap it
                    node["allOf"] = [inner]
                else:
                    node.update(inner)
            else:
                node[key] = rest
            node["nullable"] = True
    if node.get("type") == "null":
        node.pop("type")
        node["nullable"] = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):  # 2020-12 form -> 3.0 form
            node[inclusive] = value
            node[bound] = True
    if "examples" in node and isinstance(node["examples"], list):
        node["example"] = node.pop("examples")[0]
    return node


def component_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for name, model in list(_MODELS.items()):
        schema = response_adapter(model).json_schema(ref_template="#/components/schemas/{model}")
        for def_name, definition in schema.get("$defs", {}).items():
            schemas[def_name] = _to_oas30(definition)
        schemas[name] = _to_oas30(schema)
    return schemas


def path_param_schema(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """An integer path parameter without bounds gets the database key's: 1..2**63-1."""
    schema = dict(schema or ID_SCHEMA)
    if schema.get("type") == "integer":
        schema.setdefault("format", "int64")
        schema.setdefault("minimum", 1)
        schema.setdefault("maximum", INT64_MAX)
    return schema


def _document_route_parameters(app: Sanic) -> None:
    """Every `<name:type>` of every route is a documented, bounded, required path parameter.

    sanic-ext would otherwise add an undeclared one as a bare `integer`, and a fuzzer then sends
    numbers the database cannot hold.
    """
    store = OperationStore()
    for route in app.router.routes:
        # Before the router is finalised (at server start) only the private `_params` exist.
        params = getattr(route, "params", None) or getattr(route, "_params", {})
        if not params or route.handler not in store:  # not documented with doc(): left to sanic-ext
            continue
        operation = store[route.handler]
        documented = {p.fields.get("name") for p in operation.parameters if p.fields.get("in") == "path"}
        for param in params.values():
            if param.name in documented:
                continue
            label = param.label if param.label in _PATH_SCHEMAS else "str"
            operation.parameters.append(
                Parameter(param.name, cast(Any, dict(_PATH_SCHEMAS[label])), location="path", required=True)
            )


def install(app: Sanic) -> None:
    """Called once the routes are registered: components, path parameters, security schemes."""
    ref(Problem)
    _document_route_parameters(app)
    builder = app.ext.openapi
    for name, schema in component_schemas().items():
        builder.add_component("schemas", name, schema)
    builder.add_security_scheme(
        "bearer",
        "http",
        scheme="bearer",
        bearer_format="JWT",
        description="Access token from /api/v1/auth/tokens, /staff-tokens or /client-tokens",
    )


# api/idempotency.py marks a decorated handler with this attribute ({"required": bool}), so a
# route decorated with `@idempotent()` is documented without saying so twice.
IDEMPOTENCY_MARK = "__idempotency__"
_IDEMPOTENCY_KEY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 257,  # 255 characters, bare or as a quoted Structured Field string (RFC 8941)
    "pattern": r'^[\x21\x23-\x7E]{1,255}$|^"[\x20-\x7E]{1,255}"$',
    "example": "4f7d2c8e-6a1b-4e7f-9b0a-3c5d6e7f8a9b",
}


def _document_idempotency(operation: Any, *, required: bool) -> None:
    operation.parameters.append(
        _Parameter(
            "Idempotency-Key",
            cast(Any, dict(_IDEMPOTENCY_KEY_SCHEMA)),
            location="header",
            required=required,
            description=(
                "A unique key per intended operation (a UUID); a retry with the same key and body "
                "gets the first answer with `Idempotent-Replayed: true` instead of running again. "
                "The same key with another body is 422 IDEMPOTENCY_KEY_REUSED; while the first "
                "request runs, 409 IDEMPOTENCY_KEY_IN_USE. A key is kept 24 hours by default."
            ),
        )
    )
    for code in (400, 409, 422):
        if code not in operation.responses:
            # Added after sanic-ext built the operation, so written as it emits it: under `schema`.
            problem = {"application/problem+json": {"schema": ref(Problem)}}
            operation.responses[code] = Response(problem, status=code, description=ERROR_DESCRIPTIONS[code])


def doc(
    *,
    summary: str,
    tag: str,
    description: str | None = None,
    body: type[BaseModel] | None = None,
    body_content_types: Iterable[str] = ("application/json",),
    query: type[BaseModel] | None = None,
    path_params: dict[str, dict[str, Any]] | None = None,
    ok: tuple[int, type | dict[str, Any] | None] = (200, None),
    ok_content_type: str = "application/json",
    errors: Iterable[int] = (),
    secured: bool = True,
    extra_responses: dict[int, tuple[str, dict[str, Any]]] | None = None,
    operation_id: str | None = None,
    links: dict[str, dict[str, Any]] | None = None,
    examples: dict[str, Any] | None = None,
    body_required: bool = True,
    idempotency: bool | None = None,
) -> Callable[[F], F]:
    """Document a route: request body, parameters, success and problem+json responses, security.

    `path_params` maps a name to its schema; an integer without bounds gets the key bounds
    (`ID_SCHEMA`), and one left out is added from the route by `install`. `operation_id` names
    the operation (otherwise sanic-ext's `get~blueprint.handler`) so `links` can point at it:
    `links={"GetProperty": {"operationId": "getMyProperty",
    "parameters": {"right_id": "$response.body#/items/0/id"}}}` is attached to the success
    response, for stateful testing. `examples` maps a path or query parameter name to an example
    value. `body_required=False` for a body the route accepts being absent.

    `idempotency` documents the `Idempotency-Key` request header and its problems (400, 409,
    422; 400 also when a required key is missing); None (the default) documents it when the
    handler is decorated with
    `api.idempotency.idempotent` (below `@requires`), False never.
    """
    parameters: list[Any] = []
    examples = examples or {}
    for name, schema in (path_params or {}).items():
        extra = {"example": examples[name]} if name in examples else {}
        bounded = cast(Any, path_param_schema(schema))
        parameters.append(_Parameter(name, bounded, location="path", required=True, **extra))
    if query is not None:
        query_schema = query.model_json_schema()
        required = set(query_schema.get("required", []))
        for field_name, info in query_schema["properties"].items():
            extra = {"example": examples[field_name]} if field_name in examples else {}
            parameters.append(
                _Parameter(
                    field_name,
                    _to_oas30(info),
                    location="query",
                    required=field_name in required,
                    **extra,
                )
            )
    status, model = ok
    ok_schema: Any = ref(model) if isinstance(model, type) else model
    responses = [
        Response(
            {ok_content_type: ok_schema} if ok_schema is not None else None,
            status=status,
            description="Success",
        )
    ]
    all_errors = set(errors) | {422} | ({401} if secured else set())
    if body is not None:
        all_errors |= {400, 415}
    for code in sorted(all_errors):
        problem = {"application/problem+json": ref(Problem)}
        responses.append(Response(problem, status=code, description=ERROR_DESCRIPTIONS[code]))
    for code, (desc, content) in (extra_responses or {}).items():
        responses.append(Response(content, status=code, description=desc))
    request_body = (
        RequestBody({ct: ref(body) for ct in body_content_types}, required=body_required)
        if body is not None
        else None
    )
    define = openapi.definition(
        operation=operation_id,
        summary=summary,
        description=description,
        tag=tag,
        body=request_body,
        response=responses,
        secured={"bearer": []} if secured else None,
    )

    def decorator(handler: F) -> F:
        handler = define(handler)
        # Added as built: `openapi.definition(parameter=...)` would re-make a dict schema into
        # an object schema whose properties are the schema's keywords.
        operation = OperationStore()[handler]
        operation.parameters.extend(parameters)
        success = operation.responses[status]
        if links:  # likewise, a response definition keeps no `links` of its own
            success._fields["links"] = links
        if ok_schema is None:  # no body (204): sanic-ext would document `*/*` content
            success._fields.pop("content", None)
        marked = getattr(handler, IDEMPOTENCY_MARK, None)
        if idempotency or (idempotency is None and marked is not None):
            _document_idempotency(operation, required=bool(marked and marked.get("required")))
        return handler

    return decorator
