"""The error model every route documents in ``/openapi.json``.

All errors share one body, ``{"error": {"code", "message"}}`` (chatbot/server/errors.py); the
schema says which statuses a route can answer and why, so generated clients and schemathesis know
them. ``errors(401, 404, ...)`` builds a route's ``responses=`` from the common descriptions below,
and a route may override one with ``errors(..., descriptions={409: "..."})``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ApiErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_api_key, invalid_cursor.")
    message: str = Field(description="Human-readable explanation; never contains secrets.")


class ApiErrorBody(BaseModel):
    error: ApiErrorDetail


DESCRIPTIONS = {
    400: "Bad request.",
    401: "Missing, invalid, expired or revoked credentials (missing_token, invalid_token, invalid_api_key, "
    "revoked_api_key, invalid_identity).",
    403: "Valid credentials without the right (insufficient_scope, forbidden, not_your_conversation).",
    404: "Unknown id (conversation_not_found, message_not_found).",
    409: "Conflict with the current state (idempotency_in_flight, lifecycle conflicts).",
    413: "Request body too large.",
    422: "Invalid request (invalid_request, invalid_cursor, idempotency_key_reused, message errors).",
    429: "Too many requests (rate_limited; see Retry-After).",
    503: "The assistant is still starting (not_ready).",
}


def errors(*statuses: int, descriptions: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with the shared error body and a description."""
    extra = descriptions or {}
    return {
        status: {"model": ApiErrorBody, "description": extra.get(status, DESCRIPTIONS.get(status, "Error."))}
        for status in statuses
    }
