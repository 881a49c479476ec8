"""The customer's turn, owned end to end: every channel's message goes through ``TurnService``.

A turn is: validate the text (``clean_text``, once), apply the per-conversation rate limit, redact
personal data, store the message, show it to the agents, then — while the assistant has the
conversation — read the conversation's history, ask the engine (a pure pipeline that neither reads
nor writes the store), store the answer, show it to the agents, and hand over to a person when the
answer says so. The WebSocket, REST and OpenAI-compatible routes only translate frames and HTTP to
and from these methods; ``chatbot ask``, ``chatbot chat`` and the evaluation use ``ask``, the same
steps without a web layer, so the evaluation measures what customers get.

Two steps, because the channels need the pause between them: ``accept`` stores the message (the
WebSocket acknowledges it then; a conversation with a person stops there), ``reply`` answers it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from chatbot.config import Settings
from chatbot.conversations.handoff import HandoffService, handoff_reason
from chatbot.conversations.text import clean_text
from chatbot.dialogue.engine import Engine, EngineOptions
from chatbot.errors import InvalidInput, NotFound
from chatbot.guard.pii import redact
from chatbot.limits import ConversationLimits
from chatbot.schema import AnswerObject, EngineEvent, ErrorEvent, MessageEvent, StartEvent
from chatbot.store import ConversationNotFound, Store
from chatbot.store.repository import StoredMessage
from chatbot.telemetry import observe_answer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class History:
    """What the engine is told of the conversation so far."""

    turns: list[str]  # the previous customer turns, oldest first (the current one left out)
    cited: list[str]  # the source ids of the assistant's last answer, if it was the last to speak
    # ...and the passages it quoted first from each (the section of a procedure a follow-up asks more about)
    passages: list[str] = field(default_factory=list)
    # ...and the curated entry it returned whole, if it did (not returned whole again: the customer asks for more)
    quoted_whole: str | None = None


@dataclass(frozen=True)
class Accepted:
    """A stored customer message, and the conversation's status after it (``bot`` means the assistant answers)."""

    message: StoredMessage
    status: str


class TurnService:
    """``handoff`` (publishing to agents, handoff) and ``limits`` are absent outside the server (CLI, evaluation)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        store: Store | None = None,
        handoff: HandoffService | None = None,
        limits: ConversationLimits | None = None,
    ) -> None:
        self.settings, self.engine, self.store, self.handoff, self.limits = settings, engine, store, handoff, limits

    # ------------------------------------------------------------------ step 1: the customer's message
    def clean(self, text: object) -> str:
        """The text as the turn will use it; InvalidInput (422 / an error frame) when it cannot be sent."""
        return clean_text(text, self.settings.max_message_chars)

    def redact(self, cleaned: str) -> str:
        redacted = redact(cleaned, self.settings.pii_public_numbers)
        if redacted.changed:
            log.info("redacted customer message", extra={"redacted": redacted.found})
        return redacted.text

    async def accept(self, conversation_id: str, text: object) -> Accepted:
        """Clean, rate-limit, redact and store a customer message; deliver it to agents.

        Raises InvalidInput for text that cannot be sent, RateLimited (the message is not stored: the
        client sends it again later) and NotFound. A message to a closed conversation reopens it with
        the assistant.
        """
        assert self.store is not None, "accept needs a store"
        cleaned = self.clean(text)
        if self.limits is not None:
            await self.limits.check(conversation_id)
        body = self.redact(cleaned)
        try:
            stored = await asyncio.to_thread(self.store.add_message, conversation_id, "user", body)
        except ConversationNotFound:
            raise NotFound("conversation_not_found", f"No conversation with id {conversation_id!r}.") from None
        if self.handoff is None:
            return Accepted(stored, "bot")
        return Accepted(stored, await self.handoff.after_customer_message(stored))

    # ------------------------------------------------------------------ step 2: the assistant's answer
    async def history(self, conversation_id: str | None, current: str) -> History:
        """The conversation's previous customer turns, and what the assistant's answer to the last one cited."""
        turns_kept = self.settings.history_turns
        if self.store is None or conversation_id is None or turns_kept == 0:
            return History([], [])
        try:
            stored = await asyncio.to_thread(self.store.messages, conversation_id, 2 * turns_kept + 1)
        except LookupError:
            return History([], [])
        turns = [m.text for m in stored if m.role == "user"]
        if turns and turns[-1] == current:
            turns = turns[:-1]
        if stored and stored[-1].role == "user" and stored[-1].text == current:
            stored = stored[:-1]
        # Only an answer of the assistant's that the customer is replying to: after an agent's message
        # (or none), the follow-up leans on nothing the assistant cited.
        last = stored[-1] if stored else None
        cited: list[str] = []
        passages: list[str] = []
        whole: str | None = None
        if last is not None and last.role == "assistant":
            cited = [str(source["id"]) for source in last.sources if source.get("id")]
            passages = [str(source["passage"]) for source in last.sources if source.get("passage")]
            if last.kind == "faq" and passages:
                whole = passages[0]
        return History(turns[-turns_kept:], cited, passages, whole)

    async def reply(
        self, conversation_id: str | None, text: str, options: EngineOptions | None = None
    ) -> AsyncIterator[EngineEvent]:
        """The engine's answer to an accepted (cleaned, redacted, stored) message: ``start``, ``delta``*, ``message``.

        The answer is stored before its ``message`` event is yielded; it is shown to the agents, and
        the conversation handed over when the answer says so, after that event (so the customer sees
        the answer before the ``handoff`` frame). Consume the stream to its end.
        """
        history = await self.history(conversation_id, text)
        final: AnswerObject | None = None
        async for event in self.engine.respond(
            text,
            history=history.turns,
            options=options,
            cited=history.cited,
            passages=history.passages,
            quoted_whole=history.quoted_whole,
        ):
            if isinstance(event, StartEvent):
                event.conversation_id = conversation_id
            elif isinstance(event, MessageEvent):
                final = event.message
                final.conversation_id = conversation_id
                if self.store is not None and conversation_id is not None:
                    await asyncio.to_thread(self.store.add_answer, final)
            yield event
        if final is not None:
            await self.answered(final)

    async def answered(self, answer: AnswerObject) -> None:
        """After the answer is stored: count it, show it to agents, hand over when the engine says so."""
        observe_answer(answer.kind, answer.latency_ms)  # answer_latency_seconds{kind} on /metrics
        if self.handoff is None or self.store is None or answer.conversation_id is None:
            return
        message = await asyncio.to_thread(self.store.message, answer.id)
        if message is not None:
            self.handoff.publish_message(message)
        if answer.handoff:
            await self.handoff.start_handoff(answer.conversation_id, handoff_reason(answer))

    async def answer(
        self, conversation_id: str | None, text: str, options: EngineOptions | None = None
    ) -> AnswerObject:
        """``reply`` for callers that want only the final answer (REST, OpenAI without streaming)."""
        final: AnswerObject | None = None
        async for event in self.reply(conversation_id, text, options):
            if isinstance(event, MessageEvent):
                final = event.message
        if final is None:
            raise RuntimeError("the engine ended without an answer")
        return final

    # ------------------------------------------------------------------ the whole turn, without a web layer
    async def ask(
        self, text: object, conversation_id: str | None = None, options: EngineOptions | None = None
    ) -> AsyncIterator[EngineEvent]:
        """One whole turn as a stream, for the CLI and the evaluation: an ``error`` event for bad text.

        With a stored conversation (``chatbot chat``, the dialogue evaluation) the message is
        accepted and answered exactly as on the server; without one (``chatbot ask``, the answer
        evaluation) it is cleaned, redacted and answered with no history.
        """
        try:
            if conversation_id is not None and self.store is not None:
                accepted = await self.accept(conversation_id, text)
                body, status = accepted.message.text, accepted.status
            else:
                body, status = self.redact(self.clean(text)), "bot"
        except InvalidInput as error:
            yield ErrorEvent(code=error.code, message=error.message)
            return
        if status != "bot":
            return  # a person has the conversation: nothing for the assistant to say
        async for event in self.reply(conversation_id, body, options):
            yield event

    async def ask_answer(
        self, text: object, conversation_id: str | None = None, options: EngineOptions | None = None
    ) -> AnswerObject:
        """``ask`` for callers that want only the final answer; raises InvalidInput on bad text."""
        final: AnswerObject | None = None
        async for event in self.ask(text, conversation_id, options):
            if isinstance(event, ErrorEvent):
                raise InvalidInput(event.code, event.message)
            if isinstance(event, MessageEvent):
                final = event.message
        if final is None:
            raise RuntimeError("no answer: a person has this conversation")
        return final
