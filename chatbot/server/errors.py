"""One JSON error shape for every HTTP failure: ``{"error": {"code", "message"}}``.

Clients (the widget, mobile apps, partners) branch on ``code``; people read ``message``. No
exception text or stack trace ever reaches a client. The domain exceptions of chatbot/errors.py
get their HTTP status here and nowhere else (``as_api_error``), so the layers below never name one.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatbot.errors import Conflict, DomainError, InvalidInput, NotFound, RateLimited

log = logging.getLogger(__name__)

STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
                415: "unsupported_media_type", 422: "invalid_request", 503: "not_ready"}  # fmt: skip


class ApiError(Exception):
    """An HTTP failure raised by the web layer itself (authentication, a route's own checks)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


DOMAIN_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (RateLimited, 429),
)


def as_api_error(error: DomainError) -> ApiError:
    """The HTTP status (and headers) of a domain exception: the one place the mapping is written."""
    status = next((code for kind, code in DOMAIN_STATUS if isinstance(error, kind)), 400)
    headers = None
    if isinstance(error, RateLimited):
        headers = {"Retry-After": str(error.retry_after), "Cache-Control": "no-store"}
    return ApiError(status, error.code, error.message, headers)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")


def error_body_for(path: str, status: int, code: str, message: str) -> dict[str, Any]:
    """Our error shape, or OpenAI's (which adds ``type`` and ``param``) on the OpenAI-compatible routes.

    For refusals made before a route runs (rate limits, body size) so an OpenAI client library
    sees the same error shape from the middleware as from the route itself.
    """
    if path.startswith(OPENAI_PATHS):
        from chatbot.llm.openai_wire import error_body as openai_error_body

        return openai_error_body(status, code, message)
    return error_body(code, message)


def _describe(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors():
        location = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        if item.get("type") == "json_invalid":
            problems.append("the request body is not valid JSON")
        else:
            problems.append(f"{location}: {item.get('msg', 'invalid value')}")
    return "; ".join(problems) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error_body(error.code, error.message), status_code=error.status, headers=error.headers)

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, error: DomainError) -> JSONResponse:
        mapped = as_api_error(error)
        body = error_body_for(request.url.path, mapped.status, mapped.code, mapped.message)
        return JSONResponse(body, status_code=mapped.status, headers=mapped.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        # text that is not valid Unicode has the code clean_text gives bad message text (server/bodies.py)
        bad_text = any(item.get("type") == "invalid_text" for item in error.errors())
        code = "invalid_text" if bad_text else "invalid_request"
        return JSONResponse(error_body(code, _describe(error)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(error.status_code, "http_error")
        message = error.detail if isinstance(error.detail, str) else code.replace("_", " ")
        return JSONResponse(error_body(code, message), status_code=error.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body("internal_error", "Something went wrong on our side."), status_code=500)
