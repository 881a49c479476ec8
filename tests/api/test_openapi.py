"""``/openapi.json`` is complete and accurate: every route the docs name exists with that method, and every
route in the schema says what it does and which errors it can answer.

The docs' convention (docs/agent-api.md, docs/integration-api.md, README.md): a route is written as
`` `METHOD /path` `` in backticks (table cells and prose), or as a line ``METHOD /path`` inside a fenced
block; query strings (``?after=…``, ``[?after=…]``) and path-parameter names (``{id}`` vs
``{conversation_id}``) do not matter. WebSocket routes (``WS /ws/…``) are not HTTP and not in the schema.
New routes from any router are covered without editing this file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chatbot.config import PROJECT_ROOT, Settings
from chatbot.server.app import create_app

DOCUMENTS = [
    PROJECT_ROOT / "README.md",
    PROJECT_ROOT / "docs" / "agent-api.md",
    PROJECT_ROOT / "docs" / "integration-api.md",
]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
IN_BACKTICKS = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)")
IN_FENCE = re.compile(r"^\s*(GET|POST|PUT|PATCH|DELETE) (/\S*)")


def normalise(path: str) -> str:
    path = re.split(r"[?\[]", path, maxsplit=1)[0]
    return re.sub(r"\{[^}/]*\}", "{}", path.rstrip("/") or "/")


def documented_routes(text: str) -> set[tuple[str, str]]:
    routes = set()
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        for method, path in IN_BACKTICKS.findall(line):
            routes.add((method, normalise(path)))
        match = IN_FENCE.match(line) if fenced else None
        if match:
            routes.add((match.group(1), normalise(match.group(2))))
    return routes


@pytest.fixture(scope="module")
def schema(built_index: Settings) -> dict:  # type: ignore[type-arg]
    return create_app(built_index).openapi()  # the schema needs no lifespan: no model is loaded


def operations(schema: dict) -> dict[tuple[str, str], dict]:  # type: ignore[type-arg]
    return {
        (method.upper(), normalise(path)): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method.upper() in METHODS
    }


def test_the_parser_reads_both_conventions() -> None:
    text = (
        "| `GET /v1/things/{id}/parts[?after=p_1]` | x |\nsee `POST /v1/things?x=1` and `WS /ws/chat`\n"
        "```\nDELETE /v1/things/{thing_id}\n  GET /v1/other\n```\nGET /not-in-a-fence\n"
    )
    assert documented_routes(text) == {
        ("GET", "/v1/things/{}/parts"),
        ("POST", "/v1/things"),
        ("DELETE", "/v1/things/{}"),
        ("GET", "/v1/other"),
    }


def test_every_documented_route_is_in_the_schema(schema: dict) -> None:  # type: ignore[type-arg]
    known = operations(schema)
    checked = 0
    for document in DOCUMENTS:
        routes = documented_routes(Path(document).read_text(encoding="utf-8"))
        assert routes, f"{document.name} documents no route (or the convention changed)"
        missing = sorted(f"{m} {p}" for m, p in routes if (m, p) not in known)
        assert not missing, f"{document.name} documents routes the API does not have: {missing}"
        checked += len(routes)
    assert checked >= 25


def test_every_route_has_a_description_and_documented_errors(schema: dict) -> None:  # type: ignore[type-arg]
    problems = []
    for (method, path), operation in sorted(operations(schema).items()):
        if not (operation.get("description") or "").strip():
            problems.append(f"{method} {path}: no description (docstring)")
        if not operation.get("summary"):
            problems.append(f"{method} {path}: no summary")
        errors = [status for status in operation.get("responses", {}) if not status.startswith("2")]
        if not errors:
            problems.append(f"{method} {path}: no documented error response")
        if not operation.get("tags"):
            problems.append(f"{method} {path}: no tag")
    assert not problems, "\n".join(problems)


def test_documented_errors_use_the_shared_error_body(schema: dict) -> None:  # type: ignore[type-arg]
    error_ref = "#/components/schemas/ApiErrorBody"
    assert "ApiErrorBody" in schema["components"]["schemas"]
    ours = operations(schema)[("GET", "/v1/conversations")]
    for status in ("401", "403", "422"):
        content = ours["responses"][status]["content"]["application/json"]["schema"]
        assert content == {"$ref": error_ref}


def test_the_served_schema_is_the_generated_one(built_index: Settings) -> None:
    from fastapi.testclient import TestClient

    app = create_app(built_index.model_copy(update={"generation_enabled": False}))
    with TestClient(app) as client:
        served = client.get("/openapi.json")
        assert served.status_code == 200
        assert served.json() == json.loads(json.dumps(app.openapi()))
