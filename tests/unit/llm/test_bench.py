"""The generation benchmark on a tiny configuration: structure and positive numbers, never timings."""

import json
from pathlib import Path

import pytest
import torch

from chatbot.config import Settings
from chatbot.llm.bench import (
    PRODUCT_CPP,
    REFERENCE_CPP,
    TRANSFORMERS_CONTINUOUS,
    TRANSFORMERS_STATIC,
    run_generation_benchmark,
)
from chatbot.llm.llamacpp import find_llama_server


def test_benchmark_report_structure(converted_generator: str) -> None:
    settings = Settings(generator_model=converted_generator, generator_adapter="")
    report = run_generation_benchmark(
        settings, new_tokens=4, prompt_tokens=32, batch_size=2, repeats=1, devices=("cpu",), concurrency=(1, 3)
    )
    [measured] = [m for m in report.measurements if m.backend == "transformers"]
    # Not a GGUF: the product generates with transformers, whose concurrency is measured, both ways.
    assert [(c.backend, c.concurrency) for c in report.concurrency] == [
        (TRANSFORMERS_STATIC, 1),
        (TRANSFORMERS_STATIC, 3),
        (TRANSFORMERS_CONTINUOUS, 1),
        (TRANSFORMERS_CONTINUOUS, 3),
    ]
    assert all(c.aggregate_tps > 0 and 0 < c.ttft_p50_ms <= c.ttft_p95_ms for c in report.concurrency)
    assert measured.device == "cpu" and measured.precision == "float32"
    assert measured.ttft_ms > 0 and measured.decode_tps_batch1 > 0
    assert measured.decode_tps_batched is not None and measured.decode_tps_batched > 0 and measured.batch_size == 2
    assert measured.prompt_tokens >= 32 and measured.new_tokens == 4
    assert report.machine["cpu_count"] >= 1 and report.machine["torch_threads"] >= 1
    # The converted folder is not a GGUF file, so llama.cpp is skipped with a reason.
    assert report.notes
    as_dict = json.loads(json.dumps(report.as_dict()))
    assert as_dict["measurements"][0]["backend"] == "transformers"
    table = report.markdown()
    assert "time to first token" in table and "| transformers |" in table


def test_benchmark_rejects_a_single_new_token(converted_generator: str) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        run_generation_benchmark(Settings(generator_model=converted_generator), new_tokens=1)


@pytest.mark.slow  # about a minute on 2 cores: CI runs it in the slow suite, `make test` keeps under 20 min
@pytest.mark.skipif(find_llama_server() is None, reason="llama-server is not built: run `make llama-server`")
def test_the_products_llama_cpp_path_is_measured_against_llama_bench(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, llama_parallel=1)
    report = run_generation_benchmark(
        settings, new_tokens=4, prompt_tokens=32, batch_size=1, repeats=1, devices=("cpu",), concurrency=(2,)
    )
    by_backend = {m.backend: m for m in report.measurements}
    product, reference = by_backend[PRODUCT_CPP], by_backend[REFERENCE_CPP]
    assert product.precision == reference.precision == "F16, LoRA merged (GGUF)"  # the same file
    assert product.prompt_tokens == reference.prompt_tokens == by_backend["transformers"].prompt_tokens
    assert product.decode_tps_batch1 > 0 and reference.decode_tps_batch1 > 0 and product.ttft_ms > 0
    assert set(report.product_ratios()) == {"decode_tps_batch1", "ttft_speedup"}
    # On a CPU with llama.cpp built, the concurrency rows are the product's llama.cpp path, not transformers.
    assert [(c.backend, c.concurrency) for c in report.concurrency] == [(PRODUCT_CPP, 2)]
    assert "the product's llama.cpp path / llama-bench" in report.markdown()


@pytest.mark.slow
def test_llama_cpp_is_measured_on_the_same_gguf_when_installed() -> None:
    pytest.importorskip("llama_cpp")
    report = run_generation_benchmark(
        Settings(generator_adapter=""), new_tokens=4, prompt_tokens=32, batch_size=1, repeats=1, devices=("cpu",)
    )
    cpp = [m for m in report.measurements if m.backend == "llama.cpp"]
    assert cpp and cpp[0].decode_tps_batch1 > 0 and cpp[0].ttft_ms > 0
    assert set(report.ratios()) == {"decode_tps_batch1", "ttft_speedup"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_benchmark_measures_cuda_in_bfloat16(converted_generator: str) -> None:
    settings = Settings(generator_model=converted_generator, generator_adapter="")
    report = run_generation_benchmark(
        settings, new_tokens=4, prompt_tokens=32, batch_size=2, repeats=1, llama_cpp=False
    )
    cuda = [m for m in report.measurements if m.device == "cuda"]
    assert cuda and cuda[0].precision == "bfloat16" and cuda[0].decode_tps_batch1 > 0
