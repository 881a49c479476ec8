"""Fine-tune the cross-encoder reranker on the knowledge base's own question→passage pairs.

Nothing from the development sets is used. For every FAQ entry (the bank's and Ask CFPB's):

* the query is the entry's question, half of the time rewritten the way customers type (lower
  case, no punctuation, no "Kestrel", a few contractions): a fixed, general rewrite, not a
  paraphrase of any test sentence;
* the positive is the entry as the reranker sees it (title and answer, never its own question,
  which would make the task copying), and, for a bank entry whose source is a document, that
  document's chunk closest to the question;
* the hard negatives are the passages the dense index ranks nearest to the question from *other*
  sources (chunks of the same document may answer it too, so they are never negatives).

The loss is listwise: a softmax over (positive, negatives) per query. The encoder starts from the
MiniLM weights the product ships (a fresh one-logit head on top); the embeddings and lowest four
layers stay frozen, which cuts the work of a step on a CPU. A few minutes on 2 idle cores.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chatbot.config import Settings
from chatbot.knowledge.index import KnowledgeIndex, Passage
from chatbot.knowledge.reranker import META_FILE, expected_meta, passage_text, reranker_dir
from chatbot.model_specs import force_offline, resolve_model_spec

CASUAL = [
    (r"\bwhat is\b", "whats"),
    (r"\bhow do i\b", "how do i"),
    (r"\byou\b", "u"),
    (r"\baccount\b", "acct"),
    (r"\bi am\b", "im"),
    (r"\bdo not\b", "dont"),
    (r"\bcan not\b|\bcannot\b", "cant"),
]


@dataclass(frozen=True)
class RerankerConfig:
    epochs: float = 1.0
    negatives: int = 2
    group_batch: int = 8  # queries per step (each with 1 + negatives passages)
    learning_rate: float = 5e-5
    max_length: int = 96
    frozen_layers: int = 4
    cfpb_queries: int = 300  # Ask CFPB entries sampled as queries (all bank entries are used)
    max_steps: int = 0
    seed: int = 13


def casual(question: str, rng: random.Random) -> str:
    """A customer-style rewrite: lower case, no punctuation or bank name, some contractions."""
    text = re.sub(r"\bkestrel( bank)?('s)?\b", "", question.lower())
    text = re.sub(r"[?!.,;:\"“”]", "", text)
    for pattern, replacement in CASUAL:
        if rng.random() < 0.5:
            text = re.sub(pattern, replacement, text)
    return re.sub(r"\s+", " ", text).strip() or question


def training_groups(
    index: KnowledgeIndex, config: RerankerConfig
) -> tuple[list[tuple[str, str, list[str]]], dict[str, int]]:
    """(query, positive text, negative texts) from the index's FAQ entries and chunks."""
    rng = random.Random(config.seed)
    passages = index.passages
    faq = [i for i, p in enumerate(passages) if p.kind == "faq" and p.answer]
    bank = [i for i in faq if not passages[i].source_id.startswith("cfpb-")]
    cfpb = [i for i in faq if passages[i].source_id.startswith("cfpb-")]
    rng.shuffle(cfpb)
    queries = bank + cfpb[: config.cfpb_queries]
    chunks_by_source: dict[str, list[int]] = {}
    for row, candidate in enumerate(passages):
        if candidate.kind == "chunk":
            chunks_by_source.setdefault(candidate.source_id, []).append(row)

    def negatives(row: int) -> list[str]:
        source = passages[row].source_id
        order = np.argsort(-(index.vectors @ index.vectors[row]))[:40]
        found = [int(i) for i in order if passages[int(i)].source_id != source]
        hard = found[: config.negatives * 2]
        return [passage_text(passages[i]) for i in rng.sample(hard, min(config.negatives, len(hard)))]

    groups: list[tuple[str, str, list[str]]] = []
    with_chunk = 0
    for row in queries:
        passage: Passage = passages[row]
        negs = negatives(row)
        groups.append((passage.text, passage_text(passage), negs))
        rows = chunks_by_source.get(passage.source_id)
        if rows:
            best = rows[int(np.argmax(index.vectors[rows] @ index.vectors[row]))]
            groups.append((passage.text, passage_text(passages[best]), negs))
            with_chunk += 1
    counts = {"queries": len(queries), "bank": len(bank), "cfpb": min(len(cfpb), config.cfpb_queries)}
    return groups, counts | {"question_chunk_groups": with_chunk, "groups": len(groups)}


def train_reranker(
    settings: Settings,
    config: RerankerConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``chatbot train reranker``: fine-tune and save into ``reranker_dir(settings)``."""
    force_offline()
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from chatbot.machine import cpu_name

    config = config or RerankerConfig()
    say = progress or (lambda message: None)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    index = KnowledgeIndex.load(settings.data_dir)
    groups, counts = training_groups(index, config)
    if not groups:
        raise ValueError("the knowledge base has no FAQ entries to train the reranker on")
    base = resolve_model_spec(settings.embedding_model)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    encoder = getattr(model, model.base_model_prefix)
    frozen = [encoder.embeddings, *encoder.encoder.layer[: config.frozen_layers]]
    for module in frozen:
        for parameter in module.parameters():
            parameter.requires_grad = False
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.01)
    steps_per_epoch = max(1, -(-len(groups) // config.group_batch))
    total = max(1, int(steps_per_epoch * config.epochs))
    if config.max_steps:
        total = min(total, config.max_steps)
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))
    )
    model.train()
    order: list[int] = []
    losses: list[float] = []
    for step in range(total):
        if len(order) < config.group_batch:
            fresh = list(range(len(groups)))
            rng.shuffle(fresh)
            order.extend(fresh)
        batch = [groups[order.pop()] for _ in range(min(config.group_batch, len(groups)))]
        width = 1 + min(len(negs) for _, _, negs in batch)
        queries, texts = [], []
        for query, positive, negs in batch:
            shown = casual(query, rng) if rng.random() < 0.5 else query
            for text in [positive, *negs[: width - 1]]:
                queries.append(shown)
                texts.append(text)
        encoded = tokenizer(
            queries, texts, truncation="only_second", max_length=config.max_length, padding=True, return_tensors="pt"
        )
        logits = model(**encoded).logits.view(len(batch), width)
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimiser.step()
        scheduler.step()
        optimiser.zero_grad()
        losses.append(float(loss.detach()))
        if step % 10 == 0 or step == total - 1:
            elapsed = time.perf_counter() - started
            say(f"step {step + 1}/{total} loss {np.mean(losses[-10:]):.3f} ({elapsed:.0f}s)")
    folder = reranker_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    meta = expected_meta(settings) | {
        **counts,
        "steps": total,
        "config": config.__dict__,
        "final_loss": round(float(np.mean(losses[-20:])), 4),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": cpu_name(),
    }
    # Written last: its presence means the weights beside it are complete.
    (folder / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    say(f"reranker written to {folder} in {meta['seconds']}s")
    return meta
