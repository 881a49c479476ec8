"""The one prompt format, shared by inference and fine-tuning so that they never drift apart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SYSTEM_PROMPT = (
    "You are the customer-service assistant of Kestrel Bank. Answer the customer's question using only "
    "the numbered context passages. Copy fees, rates, amounts, times and phone numbers exactly as they "
    "appear in the context. Answer in one to three short sentences. If the context does not contain the "
    "answer, say: I don't have that information."
)

NOT_AVAILABLE = "I don't have that information."


@dataclass(frozen=True)
class ContextPassage:
    title: str
    text: str


def user_prompt(question: str, passages: Sequence[ContextPassage]) -> str:
    blocks = [f"[{number}] {p.title}\n{p.text.strip()}" for number, p in enumerate(passages, start=1)]
    return "Context:\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question.strip()}"


def chat_messages(question: str, passages: Sequence[ContextPassage]) -> list[dict[str, str]]:
    # Always send a system prompt: SmolLM2's chat template otherwise inserts a generic one.
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_prompt(question, passages)},
    ]
