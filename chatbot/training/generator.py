"""LoRA fine-tuning of the generator: read the context, copy the answer, or say it isn't there.

The base SmolLM2-135M-Instruct paraphrases loosely, invents figures and rarely admits that the
context lacks the answer. The fine-tuning data therefore mirrors exactly what the engine shows the
model at run time and what we want back:

* **prompt**: ``chat_messages(question, passages)`` (the one prompt format, shared with the
  engine), where ``passages`` are the FAQ entry itself, rendered by the engine's own
  ``context_passage``, shuffled among ``distractors`` passages that the production retriever
  returns for that question;
* **target**: the curated answer, or for a long Ask CFPB answer its first sentences up to
  ``target_tokens`` tokens, ending on a sentence boundary, so the model learns short answers
  copied from the context;
* **unanswerable** examples (``unanswerable_fraction`` of all examples): the same kind of
  question with only distractors that neither come from the answer's source nor contain its
  figures, and the target is exactly ``NOT_AVAILABLE``, which the engine turns into its
  fallback.

Every FAQ entry of the knowledge base is used except the fixed hold-out of
:mod:`chatbot.training.splits`, which the evaluation scores on. The loss covers only the answer
tokens and the end-of-turn token (the prompt is masked with -100).

The work is split in two steps that can run on different machines: :func:`build_examples` needs
the index and the embedder; :func:`train_on_examples` needs only the base model, so the examples
can be written to JSON (:func:`save_examples`) and trained on a bare GPU machine::

    python -m chatbot.training.generator prepare --out var/train/examples.json
    python -m chatbot.training.generator train --examples var/train/examples.json --epochs 3

``chatbot train generator`` does both in one process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from chatbot.config import Settings
from chatbot.llm.loading import choose_device, resolve_generator_path
from chatbot.llm.prompts import NOT_AVAILABLE, ContextPassage, chat_messages
from chatbot.machine import cpu_name
from chatbot.model_specs import force_offline
from chatbot.training.splits import DEFAULT_FRACTION, holdout_ids

if TYPE_CHECKING:
    from chatbot.dialogue.engine import Engine
    from chatbot.knowledge.index import Passage

log = logging.getLogger(__name__)

EXAMPLES_FORMAT = 1
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainConfig:
    epochs: float = 2.0
    max_steps: int = 0  # > 0 stops after this many optimiser steps (the smoke test uses 2)
    batch_size: int = 8
    learning_rate: float = 2e-4
    seed: int = 13
    # LoRA on every projection of every block. r=8 stores ~2.4 M parameters (4.9 MB in bf16):
    # plenty for teaching a format and a copying habit to a 135 M model, and small enough for git.
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = LLAMA_PROJECTIONS
    warmup_fraction: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 1024  # prompt + answer tokens; longer examples are dropped (none are, in practice)
    # Data.
    holdout_fraction: float = DEFAULT_FRACTION
    distractors: int = 2  # gold + 2 = the engine's default of 3 context passages
    unanswerable_fraction: float = 0.15
    target_tokens: int = 80  # long answers are cut to their first sentences within this many tokens
    full_answer_tokens: int = 120  # answers up to this long are kept whole (all curated bank answers are)
    retrieval_depth: int = 30  # hits considered when picking distractors
    examples: Path | None = None  # train on examples prepared earlier (save_examples) instead of building them
    heldout_examples: Path | None = None  # with ``examples``: the prepared held-out examples, for a held-out loss
    heldout_loss: bool = True  # measure the loss on the held-out entries before training and after each epoch
    init_adapter: Path | None = None  # start from this adapter instead of a fresh LoRA initialisation
    save_dtype: str = "bfloat16"  # LoRA weights on disk: halves the adapter; they are merged into fp32 anyway


@dataclass(frozen=True)
class TrainingExample:
    id: str  # the FAQ entry's id
    question: str
    passages: tuple[ContextPassage, ...]
    target: str
    answerable: bool

    def messages(self) -> list[dict[str, str]]:
        return chat_messages(self.question, self.passages)


@dataclass
class ExampleSet:
    examples: list[TrainingExample]
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- data
def short_target(answer: str, count_tokens: Callable[[str], int], max_tokens: int = 80, full_tokens: int = 120) -> str:
    """The answer the model should write: whole when short, else its first sentences within ``max_tokens``.

    Whitespace is collapsed because ``context_passage`` collapses it when it shortens a passage,
    and the model is meant to copy from the context verbatim. At least one sentence is kept.
    """
    from chatbot.dialogue.engine import SENTENCE_BOUNDARY

    text = " ".join(answer.split())
    if count_tokens(text) <= full_tokens:
        return text
    kept: list[str] = []
    for sentence in SENTENCE_BOUNDARY.split(text):
        candidate = " ".join([*kept, sentence])
        if kept and count_tokens(candidate) > max_tokens:
            break
        kept.append(sentence)
        if count_tokens(candidate) > max_tokens:
            break
    return " ".join(kept)


def _figures_overlap(target: str, passage: ContextPassage) -> bool:
    from chatbot.dialogue.grounding import extract_figures

    figures = extract_figures(target)
    return bool(figures and figures & extract_figures(passage.title + "\n" + passage.text))


def build_examples(settings: Settings, config: TrainConfig) -> tuple[ExampleSet, ExampleSet]:
    """The training examples and, built the same way from the held-out entries, the held-out examples.

    Distractors are retrieved exactly as the engine retrieves context. The held-out set only ever
    measures a loss; it never reaches an optimiser step. Builds or refreshes the index first when
    it is missing or stale, as ``chatbot ingest`` would.
    """
    force_offline()
    from transformers import AutoTokenizer

    from chatbot.dialogue.engine import Engine
    from chatbot.knowledge.index import build_index, is_stale

    started = time.perf_counter()
    # The engine's own search (retriever, fusion weights, mode), without loading the generator.
    engine = Engine(settings.model_copy(update={"generation_enabled": False}))
    if is_stale(settings.knowledge_dir, settings.data_dir, settings.embedding_model, settings.chunk_max_tokens):
        log.info("index missing or stale: building it first")
        build_index(
            settings.knowledge_dir, settings.data_dir, engine.embedder, settings.chunk_max_tokens, progress=False
        )
    engine.warm_up()
    assert engine.index is not None
    index = engine.index
    tokenizer = AutoTokenizer.from_pretrained(resolve_generator_path(settings.generator_model, settings.data_dir))

    def count_tokens(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    faq = [p for p in index.passages if p.kind == "faq" and p.answer]
    held = holdout_ids([p.id for p in faq], config.holdout_fraction, config.seed)
    rng = random.Random(config.seed)
    sets = []
    for held_out in (False, True):
        chosen = [p for p in faq if (p.id in held) == held_out]
        examples, meta = _examples_for(chosen, engine, count_tokens, config, rng)
        files = Counter(Path(p.file).name for p in faq)
        meta = {
            "format": EXAMPLES_FORMAT,
            "split": "held-out" if held_out else "train",
            "faq_entries": len(faq),
            "faq_files": dict(sorted(files.items())),
            "held_out": len(held),
            "holdout_rule": f"sha256('{config.seed}:'+id) mod 1000 < {round(config.holdout_fraction * 1000)}",
            "entries": len(chosen),
            **meta,
            "distractors": config.distractors,
            "retrieval_mode": settings.retrieval_mode,
            "embedding_model": settings.embedding_model,
            "index_passages": len(index.passages),
            "seconds": round(time.perf_counter() - started, 1),
        }
        sets.append(ExampleSet(examples, meta))
    return sets[0], sets[1]


def _examples_for(
    chosen: list[Passage], engine: Engine, count_tokens: Callable[[str], int], config: TrainConfig, rng: random.Random
) -> tuple[list[TrainingExample], dict[str, Any]]:
    from chatbot.dialogue.engine import context_passage

    index, embedder = engine.index, engine.embedder
    assert index is not None
    want_unanswerable = (
        round(len(chosen) * config.unanswerable_fraction / (1 - config.unanswerable_fraction))
        if config.unanswerable_fraction < 1
        else len(chosen)
    )
    unanswerable_ids = sorted(p.id for p in rng.sample(chosen, min(want_unanswerable, len(chosen))))
    targets = {
        p.id: short_target(p.answer or "", count_tokens, config.target_tokens, config.full_answer_tokens)
        for p in chosen
    }
    answer_vectors = dict(zip(unanswerable_ids, embedder.encode([targets[i] for i in unanswerable_ids]), strict=True))

    examples: list[TrainingExample] = []
    skipped: Counter[str] = Counter()
    for gold in _progress(chosen, "retrieving distractors"):
        hits = engine.search(gold.text, config.retrieval_depth)
        others = [h.passage for h in hits if h.passage.id != gold.id]
        gold_view = context_passage(gold)
        target = targets[gold.id]
        if " ".join(target.split()[:5]) not in " ".join(gold_view.text.split()):
            skipped["target not in context"] += 1  # the opening sentence alone outruns the context cut
            continue
        passages = [context_passage(p) for p in others[: config.distractors]]
        passages.insert(rng.randrange(len(passages) + 1), gold_view)
        examples.append(TrainingExample(gold.id, gold.text, tuple(passages), target, True))

        if gold.id in answer_vectors:
            # Only passages that cannot answer: another source, none of the answer's figures, and not
            # close in meaning to the answer (a chunk of the fee schedule can restate a FAQ answer).
            answer_vector = answer_vectors[gold.id]
            clean = [
                view
                for p in others
                if p.source_id != gold.source_id
                and p.answer != gold.answer
                and float(index.vectors[index.by_id[p.id]] @ answer_vector) < 0.6
                and not _figures_overlap(target, view := context_passage(p))
            ]
            if len(clean) < config.distractors + 1:
                skipped["too few clean distractors"] += 1
                continue
            examples.append(
                TrainingExample(gold.id, gold.text, tuple(clean[: config.distractors + 1]), NOT_AVAILABLE, False)
            )
    rng.shuffle(examples)
    return examples, {
        "examples": len(examples),
        "answerable": sum(e.answerable for e in examples),
        "unanswerable": sum(not e.answerable for e in examples),
        "skipped": dict(skipped),
        "shortened_targets": sum(targets[p.id] != " ".join((p.answer or "").split()) for p in chosen),
    }


def save_examples(path: Path, examples: ExampleSet) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {**asdict(e), "passages": [{"title": p.title, "text": p.text} for p in e.passages]} for e in examples.examples
    ]
    path.write_text(json.dumps({"meta": examples.meta, "examples": rows}, ensure_ascii=False), encoding="utf-8")


def load_examples(path: Path) -> ExampleSet:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("meta", {}).get("format") != EXAMPLES_FORMAT:
        raise ValueError(f"{path}: not a training-examples file of format {EXAMPLES_FORMAT}")
    examples = [
        TrainingExample(
            id=row["id"],
            question=row["question"],
            passages=tuple(ContextPassage(p["title"], p["text"]) for p in row["passages"]),
            target=row["target"],
            answerable=bool(row["answerable"]),
        )
        for row in data["examples"]
    ]
    return ExampleSet(examples, data["meta"])


# ---------------------------------------------------------------------------------------- tokens
def encode_example(tokenizer: Any, example: TrainingExample, max_length: int) -> tuple[list[int], list[int]] | None:
    """Input ids and labels: the chat-templated prompt (masked) followed by the answer and ``<|im_end|>``.

    The prompt is encoded exactly as ``GenerationWorker.encode_chat`` does at inference time.
    """
    encoded = tokenizer.apply_chat_template(example.messages(), add_generation_prompt=True, tokenize=True)
    if isinstance(encoded, dict) or hasattr(encoded, "keys"):
        encoded = encoded["input_ids"]
    prompt = [int(t) for t in encoded]
    answer = [int(t) for t in tokenizer.encode(example.target, add_special_tokens=False)]
    answer.append(int(tokenizer.convert_tokens_to_ids("<|im_end|>")))
    if len(prompt) + len(answer) > max_length:
        return None
    return prompt + answer, [-100] * len(prompt) + answer


def _batches(encoded: Sequence[tuple[list[int], list[int]]], batch_size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(len(encoded)))
    rng.shuffle(order)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _collate(rows: Sequence[tuple[list[int], list[int]]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad one batch to its own longest row (dynamic padding); padding is never a label."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (ids, targets) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(targets)] = torch.tensor(targets)
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids.to(device), "labels": labels.to(device), "attention_mask": attention.to(device)}


def _progress(items: Any, description: str, total: int | None = None) -> Any:
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, total=total, mininterval=2.0, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------- training
@torch.no_grad()
def heldout_loss(
    model: Any, rows: Sequence[tuple[list[int], list[int]]], pad_id: int, device: torch.device, batch_size: int = 16
) -> float:
    """Mean loss per answer token over ``rows`` (dropout off): the fine-tuning's held-out signal."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = _collate(rows[start : start + batch_size], pad_id, device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        shifted = batch["labels"][:, 1:]
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]), shifted.reshape(-1), reduction="sum"
        )
        total += float(loss)
        tokens += int((shifted != -100).sum())
    model.train(was_training)
    return total / max(tokens, 1)


def train_on_examples(
    model_path: str,
    examples: ExampleSet,
    config: TrainConfig,
    output: Path,
    device: torch.device,
    base_model_name: str = "",
    heldout: ExampleSet | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter on prepared examples and write it to ``output``; return what was done.

    With ``heldout`` examples, the loss on them is measured before training and after each epoch.
    """
    force_offline()
    import peft
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    encoded = [encode_example(tokenizer, e, config.max_length) for e in examples.examples]
    kept = [(e, r) for e, r in zip(examples.examples, encoded, strict=True) if r is not None]
    rows = [r for _, r in kept]
    if not rows:
        raise ValueError("no training examples: is there any FAQ entry outside the hold-out?")
    heldout_rows = [
        r
        for r in (encode_example(tokenizer, e, config.max_length) for e in (heldout.examples if heldout else []))
        if r is not None
    ]

    # fp32 master weights everywhere; on a GPU the matmuls run in bf16 under autocast.
    base: Any = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    base.config.use_cache = False
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    if config.init_adapter is not None:
        from peft import PeftModel

        # Continue training an existing adapter (a short corrective pass, e.g. on a CPU).
        model: Any = PeftModel.from_pretrained(base, str(config.init_adapter), is_trainable=True)
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.data = parameter.data.float()
    else:
        model = get_peft_model(base, lora)
    model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]

    steps_per_epoch = math.ceil(len(rows) / config.batch_size)
    total_steps = max(1, math.ceil(config.epochs * steps_per_epoch))
    if config.max_steps > 0:
        total_steps = min(total_steps, config.max_steps)
    warmup = max(1, round(config.warmup_fraction * total_steps))

    def schedule(step: int) -> float:
        # Linear warm-up, then cosine decay to a tenth of the peak rate.
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    use_bf16 = device.type == "cuda"
    if use_bf16:
        torch.backends.cuda.matmul.allow_tf32 = True

    heldout_curve: list[dict[str, float]] = []
    if heldout_rows:
        heldout_curve.append({"epoch": 0.0, "loss": round(heldout_loss(model, heldout_rows, pad_id, device), 4)})
    rng = random.Random(config.seed)
    losses: list[float] = []
    answer_tokens = 0
    model.train()
    bar = _progress(range(total_steps), "training", total=total_steps)
    batches: list[list[int]] = []
    for step in bar:
        if not batches:
            batches = _batches(rows, config.batch_size, rng)
        batch = _collate([rows[i] for i in batches.pop(0)], pad_id, device)
        answer_tokens += int((batch["labels"] != -100).sum())
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}", refresh=False)
        done = step + 1
        if heldout_rows and (done % steps_per_epoch == 0 or done == total_steps):
            value = heldout_loss(model, heldout_rows, pad_id, device)
            heldout_curve.append({"epoch": round(done / steps_per_epoch, 3), "loss": round(value, 4)})
            log.info("epoch %.2f: train loss %.4f, held-out loss %.4f", done / steps_per_epoch, losses[-1], value)
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - started

    tail = losses[-min(20, len(losses)) :]
    result: dict[str, Any] = {
        "base_model": base_model_name or model_path,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "precision": "bf16 autocast, fp32 weights" if use_bf16 else "fp32",
        "examples": len(rows),
        "answerable": sum(e.answerable for e, _ in kept),
        "unanswerable": sum(not e.answerable for e, _ in kept),
        "dropped_too_long": len(encoded) - len(rows),
        "epochs": round(total_steps / steps_per_epoch, 3),
        "steps": total_steps,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "lora": {
            "r": config.lora_r,
            "alpha": config.lora_alpha,
            "dropout": config.lora_dropout,
            "target_modules": list(config.target_modules),
            "trainable_parameters": sum(p.numel() for p in trainable),
        },
        "answer_tokens_seen": answer_tokens,
        "loss_first": round(losses[0], 4),
        "final_loss": round(sum(tail) / len(tail), 4),  # mean of the last 20 steps: one batch is noisy
        "last_step_loss": round(losses[-1], 4),
        "heldout_examples": len(heldout_rows),
        "heldout_loss": heldout_curve,
        "wall_seconds": round(train_seconds, 1),
        "seed": config.seed,
        "data": examples.meta,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _save_adapter(model, output, config.save_dtype, base_model_name or model_path)
    adapter_file = output / "adapter_model.safetensors"
    result["adapter_bytes"] = adapter_file.stat().st_size
    result["adapter_sha256"] = hashlib.sha256(adapter_file.read_bytes()).hexdigest()
    (output / "training.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _save_adapter(model: Any, output: Path, save_dtype: str, base_name: str) -> None:
    """Write adapter_config.json and adapter_model.safetensors, leaving the folder's model card alone.

    PEFT's ``save_pretrained`` also writes or rewrites a README.md, so it saves to a scratch folder
    and only the two adapter files are copied over.
    """
    dtype = getattr(torch, save_dtype)
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.to(dtype)
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        model.save_pretrained(scratch)
        shutil.copyfile(Path(scratch) / "adapter_model.safetensors", output / "adapter_model.safetensors")
        # Record the model spec rather than this machine's path to the converted folder.
        adapter_config = json.loads((Path(scratch) / "adapter_config.json").read_text(encoding="utf-8"))
        adapter_config["base_model_name_or_path"] = base_name
        (output / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n", encoding="utf-8")


def _base_model_name(settings: Settings) -> str:
    """A machine-independent name for the base model (recorded in the adapter's config)."""
    spec = settings.generator_model
    return spec if spec.startswith("package:") or "/" not in spec else Path(spec).name


def train_generator_adapter(settings: Settings, config: TrainConfig, output: Path) -> dict[str, Any]:
    """``chatbot train generator``: build the examples (or load ``config.examples``) and train the adapter."""
    if config.examples:
        examples = load_examples(config.examples)
        heldout = load_examples(config.heldout_examples) if config.heldout_examples else None
    else:
        examples, heldout = build_examples(settings, config)
        if not config.heldout_loss:
            heldout = None
    log.info("training on %d examples (%s)", len(examples.examples), json.dumps(examples.meta))
    model_path = resolve_generator_path(settings.generator_model, settings.data_dir)
    device = choose_device(settings.device)
    return train_on_examples(model_path, examples, config, output, device, _base_model_name(settings), heldout=heldout)


# ---------------------------------------------------------------------------------------- two-step CLI
def main(argv: Sequence[str] | None = None) -> None:
    """``prepare`` where the index is, ``train`` where the GPU is (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m chatbot.training.generator")
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="Build the training and held-out examples; write them as JSON.")
    prepare.add_argument("--out", type=Path, default=Path("var/train/examples.json"))
    prepare.add_argument("--heldout-out", type=Path, default=Path("var/train/heldout.json"))
    train = commands.add_parser("train", help="Train the adapter on prepared examples.")
    train.add_argument("--examples", type=Path, default=Path("var/train/examples.json"))
    train.add_argument("--heldout", type=Path, default=None, help="Held-out examples for a held-out loss.")
    train.add_argument("--output", type=Path, default=None, help="Adapter folder (default: the settings' adapter).")
    train.add_argument("--epochs", type=float, default=2.0)
    train.add_argument("--max-steps", type=int, default=0)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--learning-rate", type=float, default=2e-4)
    for sub in (prepare, train):
        sub.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if args.command == "prepare":
        examples, heldout = build_examples(settings, TrainConfig(seed=args.seed))
        save_examples(args.out, examples)
        save_examples(args.heldout_out, heldout)
        print(json.dumps({"train": examples.meta, "held-out": heldout.meta}, indent=2))
        return
    config = TrainConfig(
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        examples=args.examples,
        heldout_examples=args.heldout,
    )
    result = train_generator_adapter(settings, config, args.output or Path(settings.generator_adapter))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
