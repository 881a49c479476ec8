"""Fine-tuning: the hold-out split, the training examples, and short real training runs (no mocks)."""

import json
import math
from pathlib import Path

import pytest

from chatbot.config import Settings
from chatbot.dialogue.engine import context_passage
from chatbot.knowledge.index import KnowledgeIndex
from chatbot.llm.loading import load_generator
from chatbot.llm.prompts import NOT_AVAILABLE
from chatbot.training.generator import (
    TrainConfig,
    build_examples,
    encode_example,
    load_examples,
    save_examples,
    short_target,
    train_generator_adapter,
)
from chatbot.training.splits import holdout_ids


def test_holdout_is_deterministic_about_a_tenth_and_stable_as_the_set_grows() -> None:
    ids = [f"faq-{n}" for n in range(5000)]
    held = holdout_ids(ids)
    assert held == holdout_ids(list(reversed(ids)))
    assert 0.08 < len(held) / len(ids) < 0.12
    # Adding entries never moves an existing entry across the split.
    grown = holdout_ids([*ids, *(f"new-{n}" for n in range(1000))])
    assert grown & set(ids) == held
    assert holdout_ids(ids, seed=14) != held
    assert holdout_ids(ids, fraction=0.0) == set()


def test_long_answers_are_cut_on_a_sentence_boundary() -> None:
    def words(text: str) -> int:
        return len(text.split())

    answer = "First sentence has five words. Second one is here too.\n\nThird sentence is right here. Fourth."
    assert short_target(answer, words, max_tokens=11, full_tokens=12) == (
        "First sentence has five words. Second one is here too."
    )
    assert short_target("Short   answer,\nkept whole.", words) == "Short answer, kept whole."
    # One sentence is always kept, even when it alone is over the budget.
    assert short_target(answer, words, max_tokens=2, full_tokens=2) == "First sentence has five words."


def test_examples_use_the_engine_prompt_and_teach_not_available(built_index: Settings, tmp_path: Path) -> None:
    config = TrainConfig(unanswerable_fraction=0.5, holdout_fraction=0.0)
    train, heldout = build_examples(built_index, config)
    index = KnowledgeIndex.load(built_index.data_dir)
    assert heldout.examples == [] and train.meta["held_out"] == 0
    answerable = [e for e in train.examples if e.answerable]
    unanswerable = [e for e in train.examples if not e.answerable]
    assert len(answerable) == train.meta["faq_entries"] == 5
    assert unanswerable, "some examples must teach the model to say the context lacks the answer"
    for example in answerable:
        gold = context_passage(index.passages[index.by_id[example.id]])
        assert gold in example.passages and len(example.passages) == 1 + config.distractors
        assert example.target in " ".join(gold.text.split())
    for example in unanswerable:
        gold = context_passage(index.passages[index.by_id[example.id]])
        assert example.target == NOT_AVAILABLE and gold not in example.passages

    save_examples(tmp_path / "examples.json", train)
    assert load_examples(tmp_path / "examples.json").examples == train.examples

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built_index.generator_model)
    encoded = encode_example(tokenizer, answerable[0], max_length=2048)
    assert encoded is not None
    ids, labels = encoded
    answer = [t for t in labels if t != -100]
    assert labels[: len(ids) - len(answer)] == [-100] * (len(ids) - len(answer))  # the prompt is masked
    assert tokenizer.decode(answer) == answerable[0].target + "<|im_end|>"
    assert encode_example(tokenizer, answerable[0], max_length=10) is None


def test_two_training_steps_write_an_adapter_that_loads(built_index: Settings, tmp_path: Path) -> None:
    output = tmp_path / "adapter"
    output.mkdir()
    (output / "README.md").write_text("model card")
    result = train_generator_adapter(built_index, TrainConfig(max_steps=2, batch_size=2), output)
    assert result["steps"] == 2 and result["examples"] >= 5 and result["device"] == "cpu"
    assert math.isfinite(result["final_loss"]) and result["final_loss"] > 0
    assert {p.name for p in output.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors", "training.json"}
    assert (output / "README.md").read_text() == "model card"  # PEFT must not overwrite the model card
    assert json.loads((output / "training.json").read_text())["steps"] == 2
    assert result["adapter_bytes"] < 8_000_000
    loaded = load_generator(built_index.generator_model, built_index.data_dir, adapter=str(output), device="cpu")
    assert loaded.adapter == str(output)


def test_shipped_adapter_matches_the_prompt_format() -> None:
    folder = Path(__file__).resolve().parents[3] / "models" / "generator-lora"
    if not (folder / "adapter_config.json").exists():
        pytest.skip("no adapter shipped")
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and set(config["target_modules"]) >= {"q_proj", "v_proj"}
    assert (folder / "README.md").exists()


def test_embedder_fine_tuning_runs_two_steps(built_index: Settings, tmp_path: Path) -> None:
    from chatbot.training.embedder import evaluate_embedder, train_embedder_model

    result = train_embedder_model(built_index, tmp_path / "embedder", max_steps=2)
    assert result["steps"] == 2 and result["pairs"] >= 5
    assert (tmp_path / "embedder" / "config_sentence_transformers.json").exists()
    scores = evaluate_embedder(built_index, str(tmp_path / "embedder"), dev_sets=())
    assert 0.0 <= scores["heldout_question_to_answer"].get("recall@1", 0.0) <= 1.0
