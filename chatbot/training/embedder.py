"""Fine-tune the sentence embedder on the bank's own question/answer pairs, and measure whether it helps.

all-MiniLM-L6-v2 was trained on general web pairs; customers' banking questions ("can they just
refuse a stale check?") and the FAQ's wording differ in ways a domain pass may close. Training
pairs, from every FAQ entry outside the hold-out of :mod:`chatbot.training.splits`:

* (question, answer) for every entry;
* (question, gold chunk) where the entry names a document as its source: the chunk of that
  document closest to the answer, so questions also land on the documentation.

The loss is MultipleNegativesRankingLoss (every other positive in the batch is a negative), with
a batch sampler that never puts the same text twice in one batch (a question with two positives
would otherwise be its own false negative).

:func:`evaluate_embedder` measures retrieval with any embedder, so the base and the fine-tuned
model are compared on the same footing (dense retrieval only, to isolate the embedder):

* ``heldout_question_to_answer``: each held-out FAQ question against the answers of all FAQ
  entries; the question→own-entry match in the production index would be trivial, since the
  index embeds exactly that question;
* ``dev_paraphrase_to_entry``: the paraphrased questions of the development sets against every
  passage of the index re-embedded with that model, as a temporary index would be (a hit is the
  expected FAQ entry), overall and for the paraphrases of held-out entries only.

The fine-tuned model is ~90 MB and is not shipped; see the model card for the numbers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.config import PROJECT_ROOT, Settings
from chatbot.model_specs import force_offline, resolve_model_spec
from chatbot.training.splits import holdout_ids

log = logging.getLogger(__name__)

DEV_SETS = (PROJECT_ROOT / "evaluation" / "dev_bank.jsonl", PROJECT_ROOT / "evaluation" / "dev_cfpb.jsonl")


def training_pairs(settings: Settings, seed: int = 13) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(anchor, positive) pairs from the non-held-out FAQ entries, and counts describing them."""
    from chatbot.knowledge.embedder import Embedder
    from chatbot.knowledge.index import KnowledgeIndex, build_index, is_stale

    embedder = Embedder(settings.embedding_model)
    if is_stale(settings.knowledge_dir, settings.data_dir, settings.embedding_model, settings.chunk_max_tokens):
        build_index(settings.knowledge_dir, settings.data_dir, embedder, settings.chunk_max_tokens, progress=False)
    index = KnowledgeIndex.load(settings.data_dir)
    faq = [p for p in index.passages if p.kind == "faq" and p.answer]
    held = holdout_ids([p.id for p in faq], seed=seed)
    train = [p for p in faq if p.id not in held]
    chunks_by_source: dict[str, list[int]] = {}
    for row, passage in enumerate(index.passages):
        if passage.kind == "chunk":
            chunks_by_source.setdefault(passage.source_id, []).append(row)
    with_document = [p for p in train if p.source_id in chunks_by_source]
    answers = embedder.encode([p.answer or "" for p in with_document])
    pairs = [(p.text, p.answer or "") for p in train]
    for passage, vector in zip(with_document, answers, strict=True):
        rows = chunks_by_source[passage.source_id]
        best = rows[int(np.argmax(index.vectors[rows] @ vector))]
        pairs.append((passage.text, index.passages[best].text))
    counts = {
        "faq_entries": len(faq),
        "held_out": len(held),
        "train_entries": len(train),
        "question_answer_pairs": len(train),
        "question_chunk_pairs": len(with_document),
    }
    return pairs, counts


def train_embedder_model(settings: Settings, output: Path, epochs: int = 1, max_steps: int = 0) -> dict[str, Any]:
    """``chatbot train embedder``: fine-tune with MultipleNegativesRankingLoss; save to ``output``."""
    force_offline()
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    from chatbot.llm.loading import choose_device

    started = time.perf_counter()
    pairs, counts = training_pairs(settings)
    device = choose_device(settings.device)
    model = SentenceTransformer(resolve_model_spec(settings.embedding_model), device=str(device))
    dataset = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    batch_size = min(32, len(pairs))
    scratch = output.parent / (output.name + ".checkpoints")
    arguments = SentenceTransformerTrainingArguments(
        output_dir=str(scratch),
        num_train_epochs=epochs,
        max_steps=max_steps if max_steps > 0 else -1,
        per_device_train_batch_size=batch_size,
        learning_rate=2e-5,
        warmup_ratio=0.1,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        logging_steps=10,
        seed=13,
        bf16=device.type == "cuda",
        use_cpu=device.type == "cpu",
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=arguments, train_dataset=dataset, loss=MultipleNegativesRankingLoss(model)
    )
    outcome = trainer.train()
    output.mkdir(parents=True, exist_ok=True)
    model.save(str(output))
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)
    result: dict[str, Any] = {
        "base_model": settings.embedding_model,
        "output": str(output),
        "device": str(device),
        "pairs": len(pairs),
        **counts,
        "epochs": epochs,
        "steps": int(outcome.global_step),
        "batch_size": batch_size,
        "final_loss": round(float(outcome.training_loss), 4),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    (output / "training.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _recall(ranked: np.ndarray, gold: Sequence[int], ks: Sequence[int] = (1, 3)) -> dict[str, float]:
    if not len(gold):
        return {}  # nothing to score (a tiny knowledge base may hold out no entry)
    gold_array = np.asarray(gold)[:, None]
    return {f"recall@{k}": round(float((ranked[:, :k] == gold_array).any(axis=1).mean()), 4) for k in ks}


def evaluate_embedder(
    settings: Settings, model_spec: str, dev_sets: Sequence[Path] = DEV_SETS, seed: int = 13
) -> dict[str, Any]:
    """Dense-retrieval recall@1/@3 with ``model_spec`` (see the module docstring for the two tasks)."""
    force_offline()
    from chatbot.evals.answers import load_dev_set
    from chatbot.knowledge.embedder import Embedder
    from chatbot.knowledge.index import KnowledgeIndex

    index = KnowledgeIndex.load(settings.data_dir)
    embedder = Embedder(model_spec)
    faq_rows = [i for i, p in enumerate(index.passages) if p.kind == "faq" and p.answer]
    held = holdout_ids([index.passages[i].id for i in faq_rows], seed=seed)
    held_rows = [i for i in faq_rows if index.passages[i].id in held]

    answers = embedder.encode([index.passages[i].answer or "" for i in faq_rows])
    questions = embedder.encode([index.passages[i].text for i in held_rows])
    position = {row: n for n, row in enumerate(faq_rows)}
    ranked = np.argsort(-(questions @ answers.T), axis=1)[:, :3]
    result: dict[str, Any] = {
        "model": model_spec,
        "heldout_question_to_answer": {
            "questions": len(held_rows),
            "candidates": len(faq_rows),
            **_recall(ranked, [position[i] for i in held_rows]),
        },
    }

    dev = [q for path in dev_sets if path.exists() for q in load_dev_set(path) if q.answer_id in index.by_id]
    if dev:
        passages = embedder.encode([p.embed_text for p in index.passages])
        queries = embedder.encode([q.question for q in dev])
        ranked_dev = np.argsort(-(queries @ passages.T), axis=1)[:, :3]
        gold = [index.by_id[str(q.answer_id)] for q in dev]
        on_held = [n for n, q in enumerate(dev) if q.answer_id in held]
        result["dev_paraphrase_to_entry"] = {"questions": len(dev), **_recall(ranked_dev, gold)}
        if on_held:
            result["dev_paraphrase_to_entry_heldout_only"] = {
                "questions": len(on_held),
                **_recall(ranked_dev[on_held], [gold[n] for n in on_held]),
            }
    return result


def compare_embedders(settings: Settings, fine_tuned: Path) -> dict[str, Any]:
    """Base vs fine-tuned embedder, same tasks, same index passages."""
    return {
        "base": evaluate_embedder(settings, settings.embedding_model),
        "fine_tuned": evaluate_embedder(settings, str(fine_tuned)),
    }


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var/models/embedder-finetuned")
    print(json.dumps(compare_embedders(Settings(), target), indent=2))
