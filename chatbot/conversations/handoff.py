"""The handoff lifecycle as the server runs it: store first, then tell everyone who should know.

Every operation writes to the database before any frame leaves (a message that was acknowledged
or delivered is always stored), then publishes through the DeliveryHub: the customer's sockets
get ``handoff`` and ``agent_message`` frames, agents get ``queue``, ``message`` and ``presence``.
REST routes and both WebSockets call these methods, so a claim over REST and a claim race between
two consoles behave the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from chatbot.agents.hub import DeliveryHub
from chatbot.config import Settings
from chatbot.conversations.text import clean_text
from chatbot.errors import Conflict, NotFound
from chatbot.guard.pii import redact
from chatbot.integration.webhooks import emit
from chatbot.schema import AnswerObject
from chatbot.store import AgentRecord, ConversationNotFound, ConversationRecord, LifecycleConflict, NoteRecord, Store
from chatbot.store.repository import StoredMessage

T = TypeVar("T")

log = logging.getLogger(__name__)

QUEUE_STATUSES = ("waiting", "assigned")


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def duration_text(seconds: int) -> str:
    """How a wait is told to a customer: rounded, never falsely precise."""
    if seconds < 60:
        return "less than a minute"
    if seconds < 3600:
        minutes = round(seconds / 60)
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(seconds / 3600)
    return f"up to {hours} hour{'s' if hours != 1 else ''}"


def handoff_reason(answer: AnswerObject) -> str:
    """Why the engine handed over, in the vocabulary of docs/agent-api.md."""
    if answer.kind == "handoff":
        return "human_agent_intent"
    if answer.kind == "flow":
        return f"flow:{answer.intent.name}" if answer.intent else "flow"
    return answer.kind  # "fallback", or another kind a future route hands over from


def message_out(message: StoredMessage) -> dict[str, Any]:
    return message.as_dict()


def note_out(note: NoteRecord) -> dict[str, Any]:
    return {"id": note.id, "agent_name": note.agent_name, "text": note.text, "created_at": iso(note.created_at)}


def not_found(conversation_id: str) -> NotFound:
    return NotFound("conversation_not_found", f"No conversation with id {conversation_id!r}.")


CONFLICT_MESSAGES = {
    "already_assigned": "Another agent has already claimed this conversation.",
    "conversation_closed": "This conversation is closed.",
    "not_assigned_to_you": "This conversation is assigned to another agent.",
    "not_in_handoff": "This conversation is already with the assistant.",
}


def conflict(error: LifecycleConflict) -> Conflict:
    return Conflict(error.code, CONFLICT_MESSAGES.get(error.code, "The conversation changed meanwhile."))


class HandoffService:
    def __init__(self, settings: Settings, store: Store, hub: DeliveryHub) -> None:
        self.settings, self.store, self.hub = settings, store, hub
        self._watcher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ frames
    def conversation_out(self, record: ConversationRecord) -> dict[str, Any]:
        overdue = (
            record.status == "waiting"
            and record.handoff_requested_at is not None
            and datetime.now(UTC) - record.handoff_requested_at > timedelta(seconds=self.settings.handoff_flag_after_s)
        )
        agent = {"id": record.assigned_agent_id, "name": record.assigned_agent_name}
        return {
            "id": record.id,
            "status": record.status,
            "channel": record.channel,
            "handoff_reason": record.handoff_reason,
            "handoff_requested_at": iso(record.handoff_requested_at),
            "flagged": record.flagged or overdue,
            "assigned_agent": agent if record.assigned_agent_id else None,
            "last_message": message_out(record.last_message) if record.last_message else None,
            "created_at": iso(record.created_at),
            "updated_at": iso(record.updated_at),
            "closed_at": iso(record.closed_at),
            "closed_by": record.closed_by,
            "customer_online": self.hub.customer_online(record.id),
        }

    def notice(self, record: ConversationRecord) -> tuple[str, int | None]:
        """The text shown to the customer for a status, and the expected wait in seconds (waiting only)."""
        if record.status == "waiting":
            if self.hub.agents_online() > 0:
                wait = self.settings.expected_wait_s
                return (
                    f"I'm connecting you with a member of our team. The expected wait is {duration_text(wait)}. "
                    "You can keep writing here: they will see everything in this conversation.",
                    wait,
                )
            wait = self.settings.offline_wait_s
            # A day's wait is no answer to a stolen card or a scam in progress: the notice repeats the
            # 24/7 line (knowledge_base/documents/lost-or-stolen-cards.md and security.md).
            return (
                "No one from our team is online right now. Leave a message here and an agent will read it and "
                f"reply in this conversation; the expected wait is {duration_text(wait)}. If your card is lost or "
                "stolen, or you think someone is using your account or has tricked you into sharing a code, call "
                f"our 24/7 card and fraud line now at {self.settings.emergency_phone}.",
                wait,
            )
        if record.status == "assigned":
            return f"{record.assigned_agent_name or 'A member of our team'} from our team has joined the chat.", None
        if record.status == "closed":
            return (
                "Our team has closed this conversation. Thank you for contacting Kestrel Bank; write here again "
                "at any time if you need more help.",
                None,
            )
        return "You're back with the Kestrel Bank assistant. Ask me anything, or ask for a person at any time.", None

    def handoff_frame(self, record: ConversationRecord) -> dict[str, Any]:
        text, wait = self.notice(record)
        return {
            "type": "handoff",
            "conversation_id": record.id,
            "status": record.status,
            "agent_name": record.assigned_agent_name if record.status == "assigned" else None,
            "agents_online": self.hub.agents_online(),
            "expected_wait_s": wait,
            "text": text,
        }

    async def queue_frame(self) -> dict[str, Any]:
        return {"type": "queue", "conversations": await self.list_conversations(QUEUE_STATUSES, None, 100)}

    async def broadcast_queue(self) -> None:
        self.hub.to_agents(await self.queue_frame())

    def publish_message(self, message: StoredMessage) -> None:
        """Every stored message reaches the agents' consoles; agent messages also reach the customer."""
        out = message_out(message)
        self.hub.to_agents({"type": "message", "conversation_id": message.conversation_id, "message": out})
        if message.role == "agent":
            self.hub.to_customer(message.conversation_id, {"type": "agent_message", "message": out})

    async def _status_changed(self, record: ConversationRecord) -> dict[str, Any]:
        """Store the notice as a system message, tell the customer and refresh every agent's queue."""
        frame = self.handoff_frame(record)
        note = await asyncio.to_thread(self.store.add_message, record.id, "system", frame["text"], "status")
        self.hub.to_customer(record.id, frame)
        self.publish_message(note)
        await self.broadcast_queue()
        return frame

    # ------------------------------------------------------------------ reads
    async def record(self, conversation_id: str) -> ConversationRecord:
        try:
            return await asyncio.to_thread(self.store.conversation, conversation_id)
        except ConversationNotFound:
            raise not_found(conversation_id) from None

    async def list_conversations(
        self, statuses: tuple[str, ...], assigned_to: str | None, limit: int
    ) -> list[dict[str, Any]]:
        await self.flag_overdue(broadcast=False)
        records = await asyncio.to_thread(self.store.list_conversations, statuses, assigned_to, limit)
        return [self.conversation_out(r) for r in records]

    async def flag_overdue(self, broadcast: bool = True) -> list[str]:
        cutoff = datetime.now(UTC) - timedelta(seconds=self.settings.handoff_flag_after_s)
        flagged = await asyncio.to_thread(self.store.flag_overdue, cutoff)
        if flagged:
            log.info("waiting conversations flagged", extra={"conversations": flagged})
            if broadcast:
                await self.broadcast_queue()
        return flagged

    # ------------------------------------------------------------------ customer side
    async def after_customer_message(self, stored: StoredMessage) -> str:
        """Deliver a stored customer message to agents; reopen a closed conversation. Returns the status.

        The turn service (chatbot/conversations/turns.py) has cleaned, limited, redacted and stored it.
        """
        self.publish_message(stored)
        conversation_id = stored.conversation_id
        record = await self.record(conversation_id)
        if record.status == "closed" and await asyncio.to_thread(self.store.reopen, conversation_id):
            record = await self.record(conversation_id)
            self.hub.to_customer(conversation_id, self.handoff_frame(record))
            await self.broadcast_queue()
        return record.status

    async def start_handoff(self, conversation_id: str, reason: str) -> tuple[dict[str, Any], bool]:
        """bot → waiting; idempotent: a second request returns the current state without a new notice.

        Returns the ``handoff`` frame and whether the status changed (then every socket of the
        customer got the frame already).
        """
        try:
            changed, record = await asyncio.to_thread(self.store.request_handoff, conversation_id, reason)
        except ConversationNotFound:
            raise not_found(conversation_id) from None
        if changed:
            log.info("handoff requested", extra={"conversation": conversation_id, "reason": reason})
            await emit(self.settings, self.store, "handoff.requested", conversation_id, reason=reason, status="waiting")
            return await self._status_changed(record), True
        return self.handoff_frame(record), False

    def presence(self, conversation_id: str, typing: bool = False) -> None:
        self.hub.to_agents(
            {
                "type": "presence",
                "conversation_id": conversation_id,
                "customer_online": self.hub.customer_online(conversation_id),
                "typing": typing,
            }
        )

    # ------------------------------------------------------------------ agent side
    async def audit(
        self, agent: AgentRecord, action: str, target_type: str, target_id: str, ip: str | None, **detail: Any
    ) -> None:
        """An audit event for an agent's or admin's action (ids only); a failed write never undoes the action."""
        try:
            await asyncio.to_thread(self.store.audit, agent.role, agent.id, action, target_type, target_id, ip, detail)
        except Exception:
            log.exception("audit event not recorded", extra={"action": action})

    @staticmethod
    async def _lifecycle(conversation_id: str, change: Callable[[], T]) -> T:
        """Run a store lifecycle change off the event loop; NotFound / Conflict when it cannot happen."""
        try:
            return await asyncio.to_thread(change)
        except ConversationNotFound:
            raise not_found(conversation_id) from None
        except LifecycleConflict as error:
            raise conflict(error) from None

    async def claim(self, conversation_id: str, agent: AgentRecord, ip: str | None = None) -> dict[str, Any]:
        outcome, record = await self._lifecycle(conversation_id, lambda: self.store.claim(conversation_id, agent.id))
        if outcome != "already_mine":
            log.info("conversation claimed", extra={"conversation": conversation_id, "outcome": outcome})
            action = "conversation.take_over" if outcome == "taken_over" else "conversation.claim"
            await self.audit(agent, action, "conversation", conversation_id, ip)
            await emit(self.settings, self.store, "conversation.assigned", conversation_id, agent_id=agent.id,
                       outcome=outcome)  # fmt: skip
            await self._status_changed(record)
        return self.conversation_out(record)

    async def return_to_bot(self, conversation_id: str, agent: AgentRecord, ip: str | None = None) -> dict[str, Any]:
        is_admin = agent.role == "admin"
        record = await self._lifecycle(
            conversation_id, lambda: self.store.return_to_bot(conversation_id, agent.id, is_admin)
        )
        await self.audit(agent, "conversation.return", "conversation", conversation_id, ip)
        await self._status_changed(record)
        return self.conversation_out(record)

    async def close(self, conversation_id: str, agent: AgentRecord, ip: str | None = None) -> dict[str, Any]:
        is_admin = agent.role == "admin"
        record = await self._lifecycle(
            conversation_id, lambda: self.store.close_conversation(conversation_id, agent.id, is_admin)
        )
        await self.audit(agent, "conversation.close", "conversation", conversation_id, ip)
        await emit(self.settings, self.store, "conversation.closed", conversation_id, agent_id=agent.id, by="agent")
        await self._status_changed(record)
        return self.conversation_out(record)

    def _agent_text(self, text: object) -> str:
        cleaned = clean_text(text, self.settings.max_message_chars)  # InvalidInput: 422 or an error frame
        return redact(cleaned, self.settings.pii_public_numbers).text  # agents' messages are stored redacted too

    async def agent_message(
        self,
        conversation_id: str,
        agent: AgentRecord,
        text: object,
        suggestion_id: str | None = None,
        ip: str | None = None,
    ) -> dict[str, Any]:
        body = self._agent_text(text)
        record = await self.record(conversation_id)
        if record.status == "closed":
            raise conflict(LifecycleConflict("conversation_closed", record.status))
        if record.status != "assigned" or record.assigned_agent_id != agent.id:
            raise Conflict("not_assigned_to_you", "Claim the conversation before replying to the customer.")
        outcome = None
        if suggestion_id is not None:
            suggestion = await asyncio.to_thread(self.store.suggestion, suggestion_id)
            if suggestion is None or suggestion.conversation_id != conversation_id:
                raise NotFound("suggestion_not_found", f"No suggestion {suggestion_id!r} in this conversation.")
            outcome = "sent" if " ".join(body.split()) == " ".join(suggestion.text.split()) else "edited"
        message = await asyncio.to_thread(self.store.add_message, conversation_id, "agent", body, None, agent.id)
        await asyncio.to_thread(
            self.store.resolve_suggestions, conversation_id, suggestion_id, outcome or "ignored", message.id
        )
        await self.audit(agent, "conversation.reply", "conversation", conversation_id, ip, message_id=message.id)
        if suggestion_id is not None:
            await self.audit(
                agent, "suggestion.outcome", "suggestion", suggestion_id, ip,
                conversation_id=conversation_id, message_id=message.id, outcome=outcome,
            )  # fmt: skip
        self.publish_message(message)
        return message_out(message)

    async def add_note(
        self, conversation_id: str, agent: AgentRecord, text: object, ip: str | None = None
    ) -> dict[str, Any]:
        body = self._agent_text(text)
        try:
            note = await asyncio.to_thread(self.store.add_note, conversation_id, agent.id, body)
        except ConversationNotFound:
            raise not_found(conversation_id) from None
        await self.audit(agent, "conversation.note", "conversation", conversation_id, ip, note_id=note.id)
        out = note_out(note)
        self.hub.to_agents({"type": "note", "conversation_id": conversation_id, "note": out})
        return out

    # ------------------------------------------------------------------ background
    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def _watch(self) -> None:
        """Flag waiting conversations nobody took in time, and push the flag to open consoles."""
        period = min(30.0, max(1.0, self.settings.handoff_flag_after_s / 4))
        while True:
            await asyncio.sleep(period)
            try:
                await self.flag_overdue()
            except Exception:  # a database hiccup must not end the watcher
                log.exception("flagging overdue handoffs failed")
