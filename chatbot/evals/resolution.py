"""`chatbot eval resolution`: the share of customer turns the assistant resolves, and why the rest fail.

What a bank judges first is whether each answer is right, so this is the headline measure.
``evaluation/dev_resolution.jsonl`` holds conversations (a single question is a conversation of one
turn; the format is in evaluation/README.md). Every conversation is played turn by turn through the
customer path: ``Engine.answer`` with a stored conversation, so a follow-up is resolved from the
conversation's history exactly as in the widget.

A turn is **resolved** when all of these hold:

- the route is right: the answer's kind and intent map to the expected route (``route_of``); a
  ``flow`` is also right for an ``answer`` turn when it has every fact and cites a gold document or
  urgent-help (procedures stated in both places are labelled ``answer``), and a quoted answer (FAQ or
  extractive) for a ``flow`` turn when it has every fact and cites urgent-help (a follow-up inside an
  emergency);
- every fact group is matched: one of its alternatives occurs in the answer (case-insensitive,
  whitespace-normalised; ``$29`` also matches ``$29.00``, never ``$290`` or ``$29.5``);
- no ``forbid`` string occurs in it;
- no figure in it is missing from its cited sources (``check_grounding``, the figure check);
- no sentence of a generated answer puts a figure on the wrong product (``check_claim``'s
  ``misattributed_figure``; FAQ, extractive and flow answers quote their source, so they attribute
  figures as it does);
- when the turn sets ``handoff_offer``, the answer hands off or offers a person.

Routes, from the AnswerObject:

- ``answer``: kind ``faq``, ``generated``, ``extractive`` or ``fallback`` (a fallback is an answer
  that failed, not another route);
- ``flow``: kind ``flow`` with a procedure's intent;
- ``smalltalk``: kind ``flow`` with intent ``greeting``, ``goodbye`` or ``thanks`` (``policy.SMALL_TALK``);
- ``account_data``: intent ``account_data``, whatever the kind (the routing branch answers it as a
  ``flow`` whose text says the assistant cannot see accounts and where to look), or a kind
  ``account_data`` should one be added — the contract between this evaluation and that route;
- ``handoff`` / ``refusal`` / ``clarify``: kind ``handoff`` / ``refusal`` / ``clarification``.

A failed turn gets one **cause**, the first that applies in this order: ``wrong_route``,
``misattributed_figure``, ``unsupported_figure``, ``forbidden_text``, then for missing facts
``fallback`` (nothing answered), ``wrong_source`` (no gold source cited), ``declined`` (generation on,
the generator declined or was overruled and the extractive answer lacks the facts), ``missing_facts``
(right source, wrong sentences), and last ``no_handoff_offer``. The two figure problems are also
counted on their own, whatever the cause, since the target for both is zero.

It is a benchmark, not a test: a full run with generation on takes minutes on a CPU. ``--limit``
and ``--ids`` select conversations for quick runs.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from chatbot.config import PROJECT_ROOT, Settings
from chatbot.conversations.turns import TurnService
from chatbot.dialogue.engine import Engine
from chatbot.dialogue.grounding import SENTENCES, ProductNames, check_claim, check_grounding, product_names
from chatbot.dialogue.policy import HANDOFF_REPLY, SMALL_TALK
from chatbot.evals.answers import SourceTexts, machine_description
from chatbot.evals.metrics import percentile
from chatbot.schema import AnswerObject
from chatbot.store.repository import Store

RESOLUTION_SET = PROJECT_ROOT / "evaluation" / "dev_resolution.jsonl"
ROUTES = ("answer", "flow", "handoff", "refusal", "smalltalk", "clarify", "account_data")
ACCOUNT_DATA = "account_data"
URGENT_HELP = "urgent-help"  # the document the flows quote
CAUSES = (
    "wrong_route",
    "misattributed_figure",
    "unsupported_figure",
    "forbidden_text",
    "fallback",
    "wrong_source",
    "declined",
    "missing_facts",
    "no_handoff_offer",
)
COMPOSED = ("generated", "extractive")


@dataclass(frozen=True)
class ResolutionTurn:
    text: str
    route: str
    gold: tuple[str, ...] = ()
    facts: tuple[tuple[str, ...], ...] = ()
    forbid: tuple[str, ...] = ()
    handoff_offer: bool = False
    followup: bool = False


@dataclass(frozen=True)
class ResolutionConversation:
    id: str
    tags: tuple[str, ...]
    turns: tuple[ResolutionTurn, ...]


def load_resolution_set(path: Path = RESOLUTION_SET) -> list[ResolutionConversation]:
    """Read and validate the set: a wrong route name or a fact that is not a list of groups is an
    error at load time, not a silently unresolved turn."""
    conversations = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        where = f"{path}:{number}"
        if record["id"] in seen:
            raise ValueError(f"{where}: duplicate id {record['id']!r}")
        seen.add(record["id"])
        turns = []
        for turn in record["turns"]:
            if turn["route"] not in ROUTES:
                raise ValueError(f"{where}: unknown route {turn['route']!r} (one of {', '.join(ROUTES)})")
            facts = turn.get("facts", [])
            if not all(isinstance(group, list) and group for group in facts):
                raise ValueError(f"{where}: facts must be a list of non-empty lists of alternatives")
            turns.append(
                ResolutionTurn(
                    text=turn["text"],
                    route=turn["route"],
                    gold=tuple(turn.get("gold", ())),
                    facts=tuple(tuple(group) for group in facts),
                    forbid=tuple(turn.get("forbid", ())),
                    handoff_offer=bool(turn.get("handoff_offer", False)),
                    followup=bool(turn.get("followup", False)),
                )
            )
        conversations.append(ResolutionConversation(record["id"], tuple(record.get("tags", ())), tuple(turns)))
    return conversations


def route_of(answer: AnswerObject) -> str:
    """The route an answer took, by the table in the module docstring."""
    intent = answer.intent.name if answer.intent is not None else ""
    if answer.kind == ACCOUNT_DATA or intent == ACCOUNT_DATA:
        return "account_data"
    if answer.kind == "clarification":
        return "clarify"
    if answer.kind in {"refusal", "handoff"}:
        return answer.kind
    if answer.kind == "flow":
        return "smalltalk" if intent in SMALL_TALK else "flow"
    return "answer"


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("’", "'")).strip().lower()


def contains(answer: str, alternative: str) -> bool:
    """``alternative`` occurs in ``answer``, case- and whitespace-insensitively; a whole-dollar amount
    also matches its cents form ("$29" matches "$29.00") and a figure never matches inside a longer
    one ("$29" does not match "$290" or "$2,900")."""
    text, wanted = _normalise(answer), _normalise(alternative)
    if not wanted:
        return True
    pattern = re.escape(wanted)
    if re.fullmatch(r"\$[\d,]+", wanted):
        pattern += r"(?:\.00)?"
    if wanted[-1:].isdigit():
        pattern += r"(?![\d]|[.,]\d)"
    if wanted[:1].isdigit() or wanted[:1] == "$":
        pattern = r"(?<![\d$.,])" + pattern
    return re.search(pattern, text) is not None


@dataclass
class TurnResult:
    conversation: str
    turn: int
    text: str
    tags: list[str]
    followup: bool
    expected: str
    route: str
    kind: str
    intent: str
    sources: list[str]
    answer: str
    latency_ms: int
    resolved: bool
    cause: str  # "" when resolved
    missing_facts: list[list[str]] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    unsupported_figures: list[str] = field(default_factory=list)
    misattributed: list[dict[str, str]] = field(default_factory=list)
    gold_cited: bool | None = None
    handoff: bool = False
    quick_replies: list[str] = field(default_factory=list)


def _same_procedure(turn: ResolutionTurn, route: str, missing: list[list[str]], cited: list[str], kind: str) -> bool:
    """A procedure the bank states both in urgent-help and in a product document (a blocked PIN, a card
    kept by an ATM) is labelled ``answer``; its flow, quoting the same procedure with every fact, is right too.
    The other way round as well: a follow-up inside an emergency is labelled ``flow`` ("do my actual
    plastic cards still work?" after a stolen phone), and an answer quoting urgent-help's own sentences
    (kind ``faq`` or ``extractive``, never generated) with every fact is that procedure. Only for a follow-up:
    a first turn reporting the emergency needs the procedure itself, and many of its facts (the 24/7 number,
    "freeze") are in several of urgent-help's sections."""
    if missing:
        return False
    if turn.route == "answer" and route == "flow":
        return bool(set(cited) & ({*turn.gold, URGENT_HELP} if turn.gold else {URGENT_HELP}))
    return (
        turn.route == "flow"
        and turn.followup
        and route == "answer"
        and kind in ("faq", "extractive")
        and URGENT_HELP in cited
    )


def score_turn(
    turn: ResolutionTurn,
    answer: AnswerObject,
    source_texts: Sequence[str],
    generation: bool,
    names: ProductNames | None = None,
) -> tuple[bool, str, dict[str, Any]]:
    """The verdict on one answer: (resolved, cause, details), by the rules in the module docstring."""
    route = route_of(answer)
    missing = [list(group) for group in turn.facts if not any(contains(answer.text, alt) for alt in group)]
    forbidden = [text for text in turn.forbid if contains(answer.text, text)]
    cited = [s.id for s in answer.sources]
    gold_cited = bool(set(turn.gold) & set(cited)) if turn.gold else None
    unsupported: list[str] = []
    misattributed: list[dict[str, str]] = []
    if answer.kind not in {"fallback", "refusal", "handoff", "clarification"} and answer.text:
        unsupported = check_grounding(answer.text, source_texts).unsupported
    if answer.kind == "generated":  # quoted answers (faq, extractive, flow) attribute as their source does
        previous = ""
        for sentence in SENTENCES.split(answer.text):
            if sentence.strip():
                verdict = check_claim(sentence, source_texts, previous=previous, names=names)
                if verdict.reason == "misattributed_figure":
                    misattributed.append({"sentence": sentence, "detail": verdict.detail, "source": verdict.evidence})
            previous += " " + sentence
    offered = answer.handoff or HANDOFF_REPLY in answer.quick_replies
    if route != turn.route and not _same_procedure(turn, route, missing, cited, answer.kind):
        cause = "wrong_route"
    elif misattributed:
        cause = "misattributed_figure"
    elif unsupported:
        cause = "unsupported_figure"
    elif forbidden:
        cause = "forbidden_text"
    elif missing and answer.kind == "fallback":
        cause = "fallback"
    elif missing and gold_cited is False:
        cause = "wrong_source"
    elif missing and generation and answer.kind == "extractive":
        cause = "declined"
    elif missing:
        cause = "missing_facts"
    elif turn.handoff_offer and not offered:
        cause = "no_handoff_offer"
    else:
        cause = ""
    details = {
        "route": route,
        "missing_facts": missing,
        "forbidden": forbidden,
        "unsupported_figures": unsupported,
        "misattributed": misattributed,
        "gold_cited": gold_cited,
    }
    return not cause, cause, details


@dataclass
class ResolutionReport:
    set: str
    conversations: int
    turns: int
    settings: dict[str, Any]
    machine: str
    seconds: float
    resolved: float
    by_kind: dict[str, dict[str, float]]
    by_route: dict[str, dict[str, float]]
    by_tag: dict[str, dict[str, float]]
    causes: dict[str, int]
    figure_problems: dict[str, int]
    latency_ms: dict[str, dict[str, float]]
    results: list[TurnResult] = field(default_factory=list)
    failures_shown: int = 40  # failed turns listed after the tables

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        failures = self.failures_shown
        resolved = round(self.resolved * self.turns)
        lines = [
            f"Resolution on {self.set}: {self.conversations} conversations, {self.turns} turns; "
            + ", ".join(f"{k} {v}" for k, v in self.settings.items()),
            f"Machine: {self.machine}. Wall time {self.seconds / 60:.1f} min.",
            "",
            f"**Resolved: {self.resolved:.1%}** ({resolved} of {self.turns} turns)",
            "",
            f"Answers with a figure their sources lack: {self.figure_problems['unsupported_figure']}; "
            f"with a figure put on the wrong product: {self.figure_problems['misattributed_figure']}",
        ]
        lines += _table("answer kind", self.by_kind, latency=self.latency_ms)
        lines += _table("expected route", self.by_route)
        lines += _table("tag", self.by_tag)
        lines += ["", "| failure cause | turns | share of failures |", "|---|---|---|"]
        failed = max(1, sum(self.causes.values()))
        for cause in CAUSES:
            if self.causes.get(cause):
                lines.append(f"| {cause} | {self.causes[cause]} | {self.causes[cause] / failed:.0%} |")
        composed = self.latency_ms.get("composed")
        if composed:
            lines += [
                "",
                f"Composed answers (generated + extractive), {composed['n']:.0f}: p50 {composed['p50']:.0f} ms, "
                f"p95 {composed['p95']:.0f} ms",
            ]
        shown = [r for r in self.results if not r.resolved][:failures]
        if shown:
            lines += ["", f"First {len(shown)} failures:", ""]
            for r in shown:
                what = {
                    "wrong_route": f"expected {r.expected}, got {r.route}",
                    "missing_facts": f"missing {r.missing_facts}",
                    "wrong_source": f"missing {r.missing_facts}; cited {r.sources}",
                    "declined": f"missing {r.missing_facts}",
                    "fallback": f"missing {r.missing_facts}",
                    "forbidden_text": f"contains {r.forbidden}",
                    "unsupported_figure": f"unsupported {r.unsupported_figures}",
                    "misattributed_figure": "; ".join(m["sentence"] for m in r.misattributed),
                    "no_handoff_offer": "no person offered",
                }.get(r.cause, "")
                answer = r.answer.replace("\n", " ")
                lines.append(f"- {r.conversation}#{r.turn} [{r.cause}; {r.kind}] {r.text!r}: {what} — {answer[:160]!r}")
        return "\n".join(lines)


def _table(label: str, rows: dict[str, dict[str, float]], latency: dict[str, dict[str, float]] | None = None) -> list:
    head = f"| {label} | turns | resolved |" + (" p50 / p95 ms |" if latency is not None else "")
    lines = ["", head, "|---|---|---|" + ("---|" if latency is not None else "")]
    for name, row in rows.items():
        line = f"| {name} | {row['turns']:.0f} | {row['resolved']:.1%} |"
        if latency is not None:
            stats = latency.get(name)
            line += f" {stats['p50']:.0f} / {stats['p95']:.0f} |" if stats else " – |"
        lines.append(line)
    return lines


def _shares(groups: dict[str, list[bool]]) -> dict[str, dict[str, float]]:
    return {name: {"turns": len(v), "resolved": sum(v) / len(v)} for name, v in groups.items() if v}


async def _play(
    turns: TurnService, store: Store, conversations: Iterable[ResolutionConversation], progress: tqdm
) -> list[tuple[ResolutionConversation, int, AnswerObject]]:
    """Each conversation through the customer path (the turn service), turn by turn, in a stored conversation."""
    answers = []
    for conversation in conversations:
        conversation_id, _ = store.create_conversation("eval")
        for number, turn in enumerate(conversation.turns):
            answers.append((conversation, number, await turns.ask_answer(turn.text, conversation_id)))
            progress.update(1)
    return answers


def select(
    conversations: list[ResolutionConversation], limit: int = 0, ids: Sequence[str] = ()
) -> list[ResolutionConversation]:
    if ids:
        wanted = set(ids)
        unknown = wanted - {c.id for c in conversations}
        if unknown:
            raise ValueError(f"unknown conversation ids: {', '.join(sorted(unknown))}")
        conversations = [c for c in conversations if c.id in wanted]
    return conversations[:limit] if limit else conversations


def run_resolution_evaluation(
    settings: Settings,
    path: Path = RESOLUTION_SET,
    limit: int = 0,
    ids: Sequence[str] = (),
    generation: bool | None = None,
) -> ResolutionReport:
    started = time.perf_counter()
    conversations = select(load_resolution_set(path), limit, ids)
    generate = settings.generation_enabled if generation is None else generation
    settings = settings.model_copy(update={"generation_enabled": generate})
    names = product_names(Path(settings.knowledge_dir))
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'resolution.db'}")
        engine = Engine(settings)
        engine.warm_up()
        try:
            assert engine.index is not None
            sources = SourceTexts(engine.index)
            total = sum(len(c.turns) for c in conversations)
            with tqdm(total=total, desc="turns", unit="turn") as progress:
                played = asyncio.run(_play(TurnService(settings, engine, store), store, conversations, progress))
        finally:
            engine.close()
            store.close()
    results = []
    for conversation, number, answer in played:
        turn = conversation.turns[number]
        ok, cause, details = score_turn(turn, answer, sources.for_answer(answer), generate, names)
        results.append(
            TurnResult(
                conversation=conversation.id,
                turn=number + 1,
                text=turn.text,
                tags=list(conversation.tags),
                followup=turn.followup,
                expected=turn.route,
                route=details["route"],
                kind=answer.kind,
                intent=answer.intent.name if answer.intent is not None else "",
                sources=[s.id for s in answer.sources],
                answer=answer.text,
                latency_ms=answer.latency_ms,
                resolved=ok,
                cause=cause,
                missing_facts=details["missing_facts"],
                forbidden=details["forbidden"],
                unsupported_figures=details["unsupported_figures"],
                misattributed=details["misattributed"],
                gold_cited=details["gold_cited"],
                handoff=answer.handoff,
                quick_replies=list(answer.quick_replies),
            )
        )
    by_kind: dict[str, list[bool]] = defaultdict(list)
    by_route: dict[str, list[bool]] = defaultdict(list)
    by_tag: dict[str, list[bool]] = defaultdict(list)
    latency: dict[str, list[float]] = defaultdict(list)
    for r in results:
        by_kind[r.kind].append(r.resolved)
        by_route[r.expected].append(r.resolved)
        for tag in r.tags:
            by_tag[tag].append(r.resolved)
        if r.followup:
            by_tag["(follow-up turns)"].append(r.resolved)
        latency[r.kind].append(r.latency_ms)
        if r.kind in COMPOSED:
            latency["composed"].append(r.latency_ms)
    n = max(1, len(results))
    return ResolutionReport(
        set=str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path),
        conversations=len(conversations),
        turns=len(results),
        settings={
            "generation": "on" if generate else "off",
            "adapter": str(settings.generator_adapter or "none") if generate else "–",
            "limit": limit,
            "ids": len(ids),
        },
        machine=machine_description(),
        seconds=time.perf_counter() - started,
        resolved=sum(r.resolved for r in results) / n,
        by_kind=_shares(dict(sorted(by_kind.items()))),
        by_route=_shares({route: by_route[route] for route in ROUTES if route in by_route}),
        by_tag=_shares(dict(sorted(by_tag.items()))),
        causes=dict(Counter(r.cause for r in results if r.cause)),
        figure_problems={
            "unsupported_figure": sum(bool(r.unsupported_figures) for r in results),
            "misattributed_figure": sum(bool(r.misattributed) for r in results),
        },
        latency_ms={
            kind: {"p50": percentile(v, 50), "p95": percentile(v, 95), "n": len(v)} for kind, v in latency.items()
        },
        results=results,
    )
