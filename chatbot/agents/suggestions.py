"""Suggested replies for an agent: the best curated FAQ answers and one grounded draft by the fine-tuned model.

Everything goes through the Engine (its retriever and ``Engine.draft``), so a suggestion is
found, generated and grounding-checked exactly like an answer to a customer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from chatbot.dialogue.engine import Engine, source_ref
from chatbot.schema import SourceRef

MAX_SUGGESTIONS = 3


@dataclass(frozen=True)
class SuggestionItem:
    kind: str  # "faq" | "generated" | "extractive" (the model declined or failed the check)
    text: str
    sources: list[SourceRef] = field(default_factory=list)


async def suggest(engine: Engine, query: str, limit: int = MAX_SUGGESTIONS) -> list[SuggestionItem]:
    """Up to ``limit`` suggestions: FAQ answers above the relevance threshold, best first, then the draft."""
    settings = engine.settings
    hits = await asyncio.to_thread(engine.search, query, max(settings.retrieval_top_k, 10))
    faqs: list[SuggestionItem] = []
    seen: set[str] = set()
    for hit in sorted((h for h in hits if h.passage.kind == "faq"), key=lambda h: -h.score):
        answer = (hit.passage.answer or "").strip()
        if hit.score < settings.relevance_threshold or not answer or answer in seen:
            continue
        seen.add(answer)
        faqs.append(SuggestionItem("faq", answer, [source_ref(hit)]))
    draft = await engine.draft(query)
    if draft is None or draft.text.strip() in seen:
        return faqs[:limit]
    return [*faqs[: limit - 1], SuggestionItem(draft.kind, draft.text, list(draft.sources))]
