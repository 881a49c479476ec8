from pathlib import Path

from chatbot.config import Settings
from chatbot.evals.answers import run_answer_evaluation
from chatbot.evals.metrics import percentile, rouge_l

DEV = Path(__file__).resolve().parents[2] / "fixtures" / "dev.jsonl"


def test_rouge_l_and_percentiles() -> None:
    assert rouge_l("the wire costs $45", "the wire costs $45") == 1.0
    assert rouge_l("nothing shared", "entirely different") == 0.0
    assert 0 < rouge_l("an international wire costs $45", "outgoing international wires cost $45") < 1
    assert percentile([10, 20, 30, 40], 50) == 20 and percentile([10, 20, 30, 40], 95) == 40


def test_answer_evaluation_reports_every_metric_on_a_small_set(built_index: Settings) -> None:
    report = run_answer_evaluation(built_index, [DEV], variants="product,no-grounding", heldout_limit=0)
    assert (report.questions, report.answerable) == (4, 3)
    assert report.retrieval["hybrid"]["recall@3"] == 1.0
    product = report.variants["product"]
    assert abs(sum(product.kinds.values()) - 1.0) < 1e-9
    assert product.unsupported_rate == 0.0  # grounding check on: no invented figures reach the customer
    assert product.unanswerable_fallback == 1.0
    assert product.rouge_l > 0.3
    table = report.markdown()
    assert "| hybrid |" in table and "unsupported-figure rate" in table and "threshold" in table
