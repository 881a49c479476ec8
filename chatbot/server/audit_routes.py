"""``GET /v1/audit``: the audit log for admins, newest first, a page at a time.

Auditors (or the bank's SIEM) read who did what: agent sign-ins, claims, replies, closes, notes,
analytics views, API-key and operator actions, purges. The log holds ids and counts, never
transcript text (chatbot/store/audit.py). The cursor is the ``seq`` of the last event of the
previous page, so a page never shifts while new events arrive. Reading the log is itself an
audited action.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from chatbot.integration.openapi import errors
from chatbot.server.agent_routes import AdminReader, client_ip
from chatbot.server.errors import ApiError

audit_router = APIRouter(tags=["audit"])
MAX_CURSOR_DIGITS = 18  # fits a 64-bit integer


class AuditEventOut(BaseModel):
    seq: int = Field(description="Position in the log; pass it as ?cursor= to read older events.")
    created_at: str = Field(description="When it happened (ISO 8601, UTC).")
    actor_type: str = Field(description="agent, admin, api_key, operator or system.")
    actor_id: str | None = Field(description="The agent or API key id, the operator's OS user, or null.")
    action: str = Field(description="What was done, e.g. conversation.claim, agent.login_failed, retention.purge.")
    target_type: str | None
    target_id: str | None
    ip: str | None = Field(description="The client address, where the action came over the network.")
    detail: dict[str, Any] = Field(description="Ids and counts only; never message text or secrets.")


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_cursor: int | None = Field(description="Pass as ?cursor= for the next (older) page; null at the end.")


def parse_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > MAX_CURSOR_DIGITS or int(cursor) < 1:
        raise ApiError(422, "invalid_cursor", "cursor must be the next_cursor of a previous page (a positive integer).")
    return int(cursor)


@audit_router.get("/v1/audit", response_model=AuditPage, responses=errors(401, 403, 422, 429))
async def audit_log(
    admin: AdminReader,
    request: Request,
    cursor: Annotated[str | None, Query(max_length=40, description="next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Events per page (at most page_size_max).")] = 50,
    action: Annotated[str | None, Query(min_length=1, max_length=60, description="Only this action.")] = None,
    actor_id: Annotated[str | None, Query(min_length=1, max_length=60, description="Only this actor.")] = None,
) -> dict[str, Any]:
    """Admin or an API key with scope admin: audit events, newest first, cursor-paginated, filterable."""
    before = parse_cursor(cursor)
    maximum = request.app.state.settings.page_size_max
    if limit > maximum:
        raise ApiError(422, "invalid_request", f"limit must be between 1 and {maximum}.")
    store = request.app.state.store
    rows = await asyncio.to_thread(store.audit_events, before, limit + 1, action, actor_id)
    page = rows[:limit]
    next_cursor = page[-1].seq if len(rows) > limit else None
    await asyncio.to_thread(
        store.audit, admin.role, admin.id, "audit.view", "audit_log", None, client_ip(request),
        {"events": len(page), "cursor": before},
    )  # fmt: skip
    return {"events": [event.as_dict() for event in page], "next_cursor": next_cursor}
