"""Folding the shipped LoRA adapter into the shipped GGUF (what llama.cpp serves on a CPU)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader
from gguf.quants import dequantize

from chatbot.config import Settings
from chatbot.llm.gguf_lora import (
    MERGE_KEY,
    AdapterMergeError,
    lora_deltas,
    merge_adapter_into_gguf,
    merged_gguf,
    permute_rotary,
)
from chatbot.model_specs import resolve_model_spec

DEFAULTS = Settings()
BASE = Path(resolve_model_spec(DEFAULTS.generator_model))
ADAPTER = Path(DEFAULTS.generator_adapter)


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return merged_gguf(BASE, ADAPTER, tmp_path_factory.mktemp("merged"))


def _tensors(path: Path) -> dict[str, np.ndarray]:
    return {t.name: dequantize(t.data, t.tensor_type) for t in GGUFReader(str(path)).tensors}


def test_merged_projections_are_base_plus_the_permuted_delta(merged: Path) -> None:
    base, out = _tensors(BASE), _tensors(merged)
    deltas = lora_deltas(ADAPTER)
    assert len(deltas) == 30 * 7  # every projection of every block
    for (block, module), heads in [((0, "q_proj"), 9), ((11, "k_proj"), 3), ((29, "v_proj"), None)]:
        name = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v"}[module]
        tensor = f"blk.{block}.{name}.weight"
        delta = deltas[(block, module)]
        expected = base[tensor] + (permute_rotary(delta, heads) if heads else delta)
        error = np.linalg.norm(out[tensor] - expected)
        # F16 storage keeps the fine-tuning: the rounding error is a small fraction of the delta.
        assert error < 0.25 * np.linalg.norm(delta), tensor
        if heads:  # the rotary permutation matters: the delta in transformers' row order is wrong here
            assert np.linalg.norm(out[tensor] - (base[tensor] + delta)) > 5 * error


def test_everything_else_is_copied(merged: Path) -> None:
    base_reader, out_reader = GGUFReader(str(BASE)), GGUFReader(str(merged))
    assert [t.name for t in base_reader.tensors] == [t.name for t in out_reader.tensors]
    base = {t.name: t for t in base_reader.tensors}
    for tensor in out_reader.tensors:
        if tensor.name in ("token_embd.weight", "output_norm.weight", "blk.3.attn_norm.weight"):
            assert tensor.tensor_type == base[tensor.name].tensor_type
            assert np.array_equal(tensor.data, base[tensor.name].data)
    for key in ("tokenizer.chat_template", "tokenizer.ggml.eos_token_id", "llama.attention.head_count_kv"):
        assert out_reader.fields[key].contents() == base_reader.fields[key].contents()
    assert len(out_reader.fields["tokenizer.ggml.tokens"].contents()) == 49152


@pytest.mark.slow  # about a minute on 2 cores: CI runs it in the slow suite, `make test` keeps under 20 min
def test_merge_is_made_once_and_again_when_the_adapter_changes(merged: Path, tmp_path: Path) -> None:
    before = merged.stat().st_mtime_ns
    assert merged_gguf(BASE, ADAPTER, merged.parent) == merged
    assert merged.stat().st_mtime_ns == before  # unchanged inputs: not rewritten

    changed = tmp_path / "generator-lora"
    shutil.copytree(ADAPTER, changed)
    config = json.loads((changed / "adapter_config.json").read_text())
    config["lora_alpha"] = 2 * config["lora_alpha"]
    (changed / "adapter_config.json").write_text(json.dumps(config))
    remade = merged_gguf(BASE, changed, tmp_path / "models")
    assert GGUFReader(str(remade)).fields[MERGE_KEY].contents() != GGUFReader(str(merged)).fields[MERGE_KEY].contents()
    doubled = _tensors(remade)["blk.5.ffn_down.weight"] - _tensors(BASE)["blk.5.ffn_down.weight"]
    single = _tensors(merged)["blk.5.ffn_down.weight"] - _tensors(BASE)["blk.5.ffn_down.weight"]
    assert np.linalg.norm(doubled - 2 * single) < 0.25 * np.linalg.norm(doubled)


def test_unsupported_adapters_are_refused_by_name(tmp_path: Path) -> None:
    dora = tmp_path / "dora"
    shutil.copytree(ADAPTER, dora)
    config = json.loads((dora / "adapter_config.json").read_text())
    config["use_dora"] = True
    (dora / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterMergeError, match="DoRA"):
        merge_adapter_into_gguf(BASE, dora, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()
    with pytest.raises(AdapterMergeError, match="weight_type"):
        merge_adapter_into_gguf(BASE, ADAPTER, tmp_path / "out.gguf", weight_type="Q2_K")
