"""OpenAPI documentation from our pydantic models, exact enough to fuzz against.

sanic-ext turns pydantic models into schemas itself, but loses `required`, enums and nested
models. So routes reference components by `$ref`, and the components are generated here from
`model_json_schema()` and converted to the OpenAPI 3.0 dialect that sanic-ext emits
(`nullable` instead of `{"type": "null"}`, no `const`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sanic import Sanic
from sanic_ext import openapi
from sanic_ext.extensions.openapi.definitions import Parameter, RequestBody, Response

F = TypeVar("F", bound=Callable[..., Any])

_MODELS: dict[str, type[BaseModel]] = {}

ERROR_DESCRIPTIONS = {
    400: "Malformed request (problem+json)",
    401: "Not signed in, or the token is invalid (problem+json)",
    403: "Signed in, but not allowed (problem+json)",
    404: "Not found, or not yours (problem+json)",
    409: "Conflicts with the current state (problem+json)",
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


def ref(model: type[BaseModel]) -> dict[str, str]:
    _MODELS[model.__name__] = model
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _to_oas30(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_oas30(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _to_oas30(v) for k, v in node.items() if k not in ("$defs", "title")}
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list) and any(o == {"type": "null"} for o in options):
            rest = [o for o in options if o != {"type": "null"}]
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
    if "examples" in node and isinstance(node["examples"], list):
        node["example"] = node.pop("examples")[0]
    return node


def component_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for name, model in list(_MODELS.items()):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for def_name, definition in schema.get("$defs", {}).items():
            schemas[def_name] = _to_oas30(definition)
        schemas[name] = _to_oas30(schema)
    return schemas


def install(app: Sanic) -> None:
    """Called once the routes are registered: components, security schemes."""
    ref(Problem)
    builder = app.ext.openapi
    for name, schema in component_schemas().items():
        builder.add_component("schemas", name, schema)
    builder.add_security_scheme(
        "bearer", "http", scheme="bearer", bearer_format="JWT",
        description="Access token from /api/v1/auth/tokens, /staff-tokens or /client-tokens",
    )


def doc(
    *,
    summary: str,
    tag: str,
    description: str | None = None,
    body: type[BaseModel] | None = None,
    body_content_types: Iterable[str] = ("application/json",),
    query: type[BaseModel] | None = None,
    path_params: dict[str, dict[str, Any]] | None = None,
    ok: tuple[int, type[BaseModel] | dict[str, Any] | None] = (200, None),
    ok_content_type: str = "application/json",
    errors: Iterable[int] = (),
    secured: bool = True,
    extra_responses: dict[int, tuple[str, dict[str, Any]]] | None = None,
) -> Callable[[F], F]:
    """Document a route: request body, parameters, success and problem+json responses, security."""
    parameters: list[Any] = []
    for name, schema in (path_params or {}).items():
        parameters.append(Parameter(name, schema, location="path", required=True))
    if query is not None:
        for field_name, info in query.model_json_schema()["properties"].items():
            alias = field_name
            parameters.append(
                Parameter(
                    alias,
                    _to_oas30(info),
                    location="query",
                    required=field_name in query.model_json_schema().get("required", []),
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
        all_errors |= {400}
    for code in sorted(all_errors):
        responses.append(
            Response({"application/problem+json": ref(Problem)}, status=code, description=ERROR_DESCRIPTIONS[code])
        )
    for code, (desc, content) in (extra_responses or {}).items():
        responses.append(Response(content, status=code, description=desc))
    request_body = (
        RequestBody({ct: ref(body) for ct in body_content_types}, required=True) if body is not None else None
    )
    return openapi.definition(
        summary=summary,
        description=description,
        tag=tag,
        body=request_body,
        parameter=parameters or None,
        response=responses,
        secured={"bearer": []} if secured else None,
    )
