import json
import shutil
from pathlib import Path

from chatbot.knowledge.embedder import Embedder
from chatbot.knowledge.index import KnowledgeIndex, build_index, is_stale
from tests.conftest import FIXTURE_KB


def test_incremental_rebuild_embeds_only_what_changed(tmp_path: Path, embedder: Embedder) -> None:
    kb, data = tmp_path / "kb", tmp_path / "data"
    shutil.copytree(FIXTURE_KB, kb)

    first = build_index(kb, data, embedder, 200, progress=False)
    assert not first.up_to_date and first.embedded == first.passages > 0
    assert not is_stale(kb, data, embedder.model_spec, 200)

    again = build_index(kb, data, embedder, 200, progress=False)
    assert again.up_to_date and again.embedded == 0

    with (kb / "faq" / "bank.jsonl").open("a") as handle:
        entry = {"id": "fx-100", "question": "Do you charge for paper statements?", "answer": "Yes, $2 a month.",
                 "source": "wires"}  # fmt: skip
        handle.write(json.dumps(entry) + "\n")
    assert is_stale(kb, data, embedder.model_spec, 200)
    changed = build_index(kb, data, embedder, 200, progress=False)
    assert (changed.files_changed, changed.embedded, changed.passages) == (1, 1, first.passages + 1)
    assert "fx-100" in KnowledgeIndex.load(data).by_id

    # A different chunk budget changes every chunk: the whole index is rebuilt.
    assert is_stale(kb, data, embedder.model_spec, 64)
    rebuilt = build_index(kb, data, embedder, 64, progress=False)
    assert rebuilt.files_changed == rebuilt.files_total


def test_saved_index_round_trips(built_index, embedder: Embedder) -> None:  # type: ignore[no-untyped-def]
    index = KnowledgeIndex.load(built_index.data_dir)
    assert index.manifest["faq_entries"] == 5
    assert index.vectors.shape == (len(index.passages), 384)
    faq = index.passages[index.by_id["fx-001"]]
    assert faq.kind == "faq" and faq.source_id == "wires" and faq.url == "https://bank.example/help/wires"
