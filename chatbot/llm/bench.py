"""``chatbot bench generate``: how fast the product's generator decodes, on CPU and on a GPU.

Numbers come from the product's own path: ``GenerationWorker.generate_batch`` (left padding, the
manual KV-cache loop, the repetition penalty) on the model ``load_generator`` returns, adapter
merged. Each measurement decodes exactly ``new_tokens`` tokens (end-of-sequence is disabled for
the benchmark, so an early stop cannot flatter a run) after a prompt of about ``prompt_tokens``
tokens, built with the real system prompt and context passages:

* **time to first token**: from handing over the request to the first text piece (the prefill
  of the whole prompt plus one decode step), batch 1;
* **decode tokens/s**: tokens after the first, divided by the time after the first, at batch 1,
  and summed over the rows at batch ``batch_size`` (the worker's default of 8);

one warm-up run, then the median of ``repeats`` runs.

On the CPU the product generates with llama.cpp when ``make`` built ``llama-server``
(``chatbot/llm/llamacpp.py``): that path is measured end to end as the engine uses it (the merged
GGUF, the HTTP stream, its sampling), ``llama.cpp server (product)``, next to llama.cpp's own
``llama-bench`` on the same file, threads and prompt length (prompt processing, then decoding at
that depth), the reference the issue's ratio is against. When ``llama_cpp`` (the optional extra
``bench``) is importable, the base GGUF is also measured through it in this process. On a shared,
noisy machine only ratios measured in one run are meaningful.

**Concurrency**: the product's generator (whichever backend the settings choose) gets ``c``
simultaneous requests of ``new_tokens`` tokens each, for every ``c`` in ``concurrency``;
reported are the aggregate decode tokens/s (all tokens over the wall time) and the time to first
token's p50/p95 across the requests. That is what continuous batching is for.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from chatbot.config import Settings
from chatbot.evals.metrics import percentile
from chatbot.llm.continuous import ContinuousGenerationWorker
from chatbot.llm.generators import Generator
from chatbot.llm.llamacpp import LlamaCppGenerator, find_llama_server, llama_cpp_chosen
from chatbot.llm.loading import LoadedModel, gguf_file, load_generator
from chatbot.llm.prompts import ContextPassage, chat_messages
from chatbot.llm.worker import GenerationWorker, _Request
from chatbot.machine import cpu_name

# Banking-flavoured filler, so the prompt tokenises like real context (figures, names, punctuation).
FILLER = (
    "An outgoing international wire transfer costs $45 and a domestic wire costs $25.",
    "Wires requested before 5:00 p.m. ET on a business day are sent the same day.",
    "The High-Yield Savings account earns 4.10% APY on balances of $1 or more.",
    "Freeze your card in the mobile app and call our 24/7 card line at 1-800-555-0199.",
    "A replacement card arrives in 5 to 7 business days; expedited delivery takes 2 business days.",
    "Kestrel Everyday Checking has a $10 monthly maintenance fee, waived with $500 in direct deposits.",
    "Mobile check deposits made before 9:00 p.m. ET are available the next business day.",
    "The overdraft fee is $29 per item, at most three per day, and none for items of $5 or less.",
)


@dataclass
class Measurement:
    backend: str  # "transformers" or "llama.cpp"
    device: str  # "cpu" or "cuda"
    device_name: str
    precision: str
    prompt_tokens: int
    new_tokens: int
    ttft_ms: float
    decode_tps_batch1: float
    decode_tps_batched: float | None  # summed over the rows of one batch
    batch_size: int | None
    runs: int
    threads: int | None = None


@dataclass
class ConcurrencyPoint:
    backend: str
    device: str
    concurrency: int
    new_tokens: int
    prompt_tokens: int
    aggregate_tps: float  # every request's tokens over the wall time of the whole round
    ttft_p50_ms: float
    ttft_p95_ms: float
    seconds: float


PRODUCT_CPP = "llama.cpp server (product)"
TRANSFORMERS_STATIC = "transformers, static batching"
TRANSFORMERS_CONTINUOUS = "transformers, continuous batching"
REFERENCE_CPP = "llama.cpp (llama-bench)"


@dataclass
class BenchReport:
    machine: dict[str, Any]
    measurements: list[Measurement]
    concurrency: list[ConcurrencyPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def _ratios(self, numerator: str, denominator: str) -> dict[str, float]:
        by_backend = {m.backend: m for m in self.measurements if m.device == "cpu"}
        top, bottom = by_backend.get(numerator), by_backend.get(denominator)
        if top is None or bottom is None:
            return {}
        return {
            "decode_tps_batch1": round(top.decode_tps_batch1 / bottom.decode_tps_batch1, 3),
            "ttft_speedup": round(bottom.ttft_ms / top.ttft_ms, 3),  # >1: the numerator reaches the first token sooner
        }

    def ratios(self) -> dict[str, float]:
        """transformers / llama.cpp (llama-cpp-python) on the CPU, this run (>1: transformers is faster)."""
        return self._ratios("transformers", "llama.cpp")

    def product_ratios(self) -> dict[str, float]:
        """The product's llama.cpp path / llama.cpp's own llama-bench, this run (the issue's >= 1.0)."""
        return self._ratios(PRODUCT_CPP, REFERENCE_CPP)

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "measurements": [asdict(m) for m in self.measurements],
            "ratios_transformers_over_llama_cpp": self.ratios(),
            "ratios_product_over_llama_bench": self.product_ratios(),
            "concurrency": [asdict(c) for c in self.concurrency],
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
        }

    def markdown(self) -> str:
        lines = [
            "| backend | device | precision | prompt tokens | time to first token (ms) "
            "| decode tok/s, batch 1 | decode tok/s, batched (sum) |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for m in self.measurements:
            batched = f"{m.decode_tps_batched:.1f} (batch {m.batch_size})" if m.decode_tps_batched else "—"
            lines.append(
                f"| {m.backend} | {m.device_name} | {m.precision} | {m.prompt_tokens} | {m.ttft_ms:.0f} "
                f"| {m.decode_tps_batch1:.1f} | {batched} |"
            )
        for label, ratios in (
            ("transformers / llama.cpp (llama-cpp-python)", self.ratios()),
            ("the product's llama.cpp path / llama-bench", self.product_ratios()),
        ):
            if ratios:
                lines.append("")
                lines.append(
                    f"{label} on the CPU: decode speed × {ratios['decode_tps_batch1']:.2f}, "
                    f"time to first token {ratios['ttft_speedup']:.2f}× as fast."
                )
        if self.concurrency:
            lines += [
                "",
                "| generator | device | concurrent requests | aggregate decode tok/s | first token p50 / p95 (ms) |",
                "| --- | --- | ---: | ---: | ---: |",
            ]
            lines += [
                f"| {c.backend} | {c.device} | {c.concurrency} | {c.aggregate_tps:.1f} "
                f"| {c.ttft_p50_ms:.0f} / {c.ttft_p95_ms:.0f} |"
                for c in self.concurrency
            ]
        machine = self.machine
        lines.append("")
        lines.append(
            f"Machine: {machine['cpu']}, {machine['cpu_count']} cores, torch threads {machine['torch_threads']}"
            + (f", GPU {machine['gpu']}" if machine.get("gpu") else "")
            + f"; {self.measurements[0].new_tokens if self.measurements else 0} new tokens, "
            f"median of {self.measurements[0].runs if self.measurements else 0} runs after one warm-up."
        )
        lines.extend(f"Note: {note}" for note in self.notes)
        return "\n".join(lines)


class _Clock:
    """Stands in for a request's event loop and queue: notes when text pieces arrive, drops them."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.done: float | None = None
        self.pieces = 0
        self._lock = threading.Lock()

    def call_soon_threadsafe(self, callback: Any, item: object) -> None:
        now = time.perf_counter()
        with self._lock:
            if isinstance(item, str):
                self.pieces += 1
                if self.first is None:
                    self.first = now
            else:
                self.done = now

    def put_nowait(self, item: object) -> None:  # the worker hands this to call_soon_threadsafe
        pass


def bench_messages(worker: GenerationWorker, prompt_tokens: int) -> list[dict[str, str]]:
    """A real chat prompt (system prompt, numbered passages, question) of about ``prompt_tokens`` tokens."""
    sentences: list[str] = []
    messages = chat_messages("How much does an international wire cost?", [])
    while len(worker.encode_chat(messages)) < prompt_tokens:
        sentences.append(FILLER[len(sentences) % len(FILLER)])
        passages = [ContextPassage(f"Kestrel Bank help, part {n + 1}", " ".join(sentences[n::3])) for n in range(3)]
        messages = chat_messages("How much does an international wire cost?", passages)
    return messages


def bench_prompt(worker: GenerationWorker, prompt_tokens: int) -> list[int]:
    """``bench_messages`` as token ids."""
    return worker.encode_chat(bench_messages(worker, prompt_tokens))


def _timed_batch(worker: GenerationWorker, prompt: list[int], rows: int, new_tokens: int) -> tuple[float, float]:
    """Run one batch; return (seconds to the first piece, decode tokens/s summed over rows)."""
    clocks = [_Clock() for _ in range(rows)]
    requests = [_Request(list(prompt), new_tokens, cast(Any, clock), cast(Any, clock)) for clock in clocks]
    started = time.perf_counter()
    worker.generate_batch(requests)
    if worker.loaded.device.type == "cuda":
        torch.cuda.synchronize()
    ended = time.perf_counter()
    first = max(c.first or ended for c in clocks)
    ttft = (clocks[0].first or ended) - started
    decode = rows * (new_tokens - 1) / max(ended - first, 1e-9)
    return ttft, decode


def measure_transformers(
    loaded: LoadedModel, prompt_tokens: int, new_tokens: int, batch_size: int, repeats: int
) -> Measurement:
    worker = GenerationWorker(loaded, max_batch_size=batch_size)
    prompt = bench_prompt(worker, prompt_tokens)
    config = loaded.model.generation_config
    saved_eos = config.eos_token_id
    config.eos_token_id = -1  # never produced: every run decodes exactly new_tokens tokens
    try:
        _timed_batch(worker, prompt, 1, new_tokens)  # warm-up: allocator, kernels, caches
        single = [_timed_batch(worker, prompt, 1, new_tokens) for _ in range(repeats)]
        batched: list[tuple[float, float]] = []
        if batch_size > 1:
            _timed_batch(worker, prompt, batch_size, new_tokens)
            batched = [_timed_batch(worker, prompt, batch_size, new_tokens) for _ in range(repeats)]
    finally:
        config.eos_token_id = saved_eos
    device = loaded.device
    return Measurement(
        backend="transformers",
        device=device.type,
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        precision=str(loaded.dtype).removeprefix("torch."),
        prompt_tokens=len(prompt),
        new_tokens=new_tokens,
        ttft_ms=statistics.median(t for t, _ in single) * 1000,
        decode_tps_batch1=statistics.median(r for _, r in single),
        decode_tps_batched=statistics.median(r for _, r in batched) if batched else None,
        batch_size=batch_size if batched else None,
        runs=repeats,
        threads=torch.get_num_threads() if device.type == "cpu" else None,
    )


def measure_llama_cpp(gguf: Path, prompt: list[int], new_tokens: int, repeats: int) -> Measurement:
    """The same GGUF and the same prompt token ids through llama.cpp, greedy, batch 1, on the CPU."""
    from llama_cpp import Llama

    threads = os.cpu_count() or 1
    llm = Llama(
        model_path=str(gguf),
        n_ctx=max(1024, len(prompt) + new_tokens + 8),
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        n_gpu_layers=0,
        verbose=False,
    )

    def once() -> tuple[float, float]:
        llm.reset()
        started = time.perf_counter()
        llm.eval(prompt)
        token = llm.sample(temp=0.0)
        first = time.perf_counter()
        for _ in range(new_tokens - 1):
            llm.eval([token])
            token = llm.sample(temp=0.0)
        ended = time.perf_counter()
        return first - started, (new_tokens - 1) / max(ended - first, 1e-9)

    once()
    runs = [once() for _ in range(repeats)]
    return Measurement(
        backend="llama.cpp",
        device="cpu",
        device_name=cpu_name(),
        precision=gguf.stem.rsplit(".", 1)[-1] + " (GGUF)",
        prompt_tokens=len(prompt),
        new_tokens=new_tokens,
        ttft_ms=statistics.median(t for t, _ in runs) * 1000,
        decode_tps_batch1=statistics.median(r for _, r in runs),
        decode_tps_batched=None,
        batch_size=None,
        runs=repeats,
        threads=threads,
    )


async def _timed_stream(generator: Generator, messages: list[dict[str, str]], new_tokens: int) -> tuple[float, float]:
    """One request through the generator's ``stream``: (seconds to its first piece, seconds to its end)."""
    started = time.perf_counter()
    first: float | None = None
    async for _ in generator.stream(messages, new_tokens):
        if first is None:
            first = time.perf_counter()
    ended = time.perf_counter()
    return (first or ended) - started, ended - started


async def _concurrency_round(
    generator: Generator, messages: list[dict[str, str]], new_tokens: int, concurrency: int
) -> tuple[float, list[float], float]:
    """``concurrency`` requests at once: (aggregate tokens/s, each request's first-token seconds, wall seconds).

    Each request's context differs from every other's, in this round and in earlier ones (as two
    customers' passages do): only the system prompt is shared, so a backend's prefix cache reuses
    what it would reuse in the product, not the whole prompt."""
    started = time.perf_counter()
    timings = await asyncio.gather(
        *(_timed_stream(generator, _own_context(messages), new_tokens) for _ in range(concurrency))
    )
    wall = time.perf_counter() - started
    return concurrency * new_tokens / wall, [first for first, _ in timings], wall


def _own_context(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """``messages`` with the user turn (context and question) made unique by a short reference at its start."""
    own = [dict(m) for m in messages]
    user = next(m for m in reversed(own) if m["role"] == "user")
    user["content"] = f"Reference {uuid.uuid4().hex[:8]}.\n{user['content']}"
    return own


def measure_concurrency(
    generator: Generator,
    backend: str,
    device: str,
    messages: list[dict[str, str]],
    prompt_tokens: int,
    new_tokens: int,
    levels: tuple[int, ...],
) -> list[ConcurrencyPoint]:
    """Aggregate decode speed and first-token latency at each concurrency level (one warm-up round)."""

    async def rounds() -> list[ConcurrencyPoint]:
        await _concurrency_round(generator, messages, new_tokens, 1)
        points = []
        for level in levels:
            tps, firsts, wall = await _concurrency_round(generator, messages, new_tokens, level)
            points.append(
                ConcurrencyPoint(
                    backend=backend,
                    device=device,
                    concurrency=level,
                    new_tokens=new_tokens,
                    prompt_tokens=prompt_tokens,
                    aggregate_tps=tps,
                    ttft_p50_ms=percentile(firsts, 50) * 1000,
                    ttft_p95_ms=percentile(firsts, 95) * 1000,
                    seconds=wall,
                )
            )
        return points

    return asyncio.run(rounds())


def measure_llama_server(
    settings: Settings,
    messages: list[dict[str, str]],
    prompt_tokens: int,
    new_tokens: int,
    repeats: int,
    concurrency: tuple[int, ...],
) -> tuple[Measurement, list[ConcurrencyPoint], Path]:
    """The product's CPU path: the merged GGUF in ``llama-server``, streamed over HTTP as the engine does
    (returned with the concurrency points and the GGUF it served).

    Every request decodes exactly ``new_tokens`` (``ignore_eos``) and processes its whole prompt
    (``cache_prompt`` off: repeating one prompt would otherwise measure a cache hit, not a prefill).
    """
    slots = max((settings.llama_parallel, *concurrency))
    generator = LlamaCppGenerator.from_settings(settings.model_copy(update={"llama_parallel": slots}))
    generator.benchmark_options = {"ignore_eos": True, "cache_prompt": False}
    generator.start()
    try:

        async def singles() -> list[tuple[float, float]]:
            await _timed_stream(generator, messages, new_tokens)  # warm-up
            return [await _timed_stream(generator, messages, new_tokens) for _ in range(repeats)]

        runs = asyncio.run(singles())
        points = measure_concurrency(generator, PRODUCT_CPP, "cpu", messages, prompt_tokens, new_tokens, concurrency)
    finally:
        generator.stop()
    measurement = Measurement(
        backend=PRODUCT_CPP,
        device="cpu",
        device_name=cpu_name(),
        precision=_gguf_precision(generator.server.model),
        prompt_tokens=prompt_tokens,
        new_tokens=new_tokens,
        ttft_ms=statistics.median(first for first, _ in runs) * 1000,
        decode_tps_batch1=statistics.median((new_tokens - 1) / max(end - first, 1e-9) for first, end in runs),
        decode_tps_batched=None,
        batch_size=None,
        runs=repeats,
        threads=settings.llama_threads or os.cpu_count(),
    )
    return measurement, points, generator.server.model


def _gguf_precision(gguf: Path) -> str:
    """``Q4_1 (GGUF)`` for a base file; ``Q8_0, LoRA merged (GGUF)`` for ``<base>+<adapter>.Q8_0.gguf``."""
    if "+" in gguf.stem:
        return gguf.stem.rsplit(".", 1)[-1] + ", LoRA merged (GGUF)"
    return gguf.stem.rsplit(".", 1)[-1] + " (GGUF)"


def measure_llama_bench(
    binary: Path,
    gguf: Path,
    prompt_tokens: int,
    new_tokens: int,
    repeats: int,
    threads: int = 0,
    flash_attention: str = "auto",
) -> Measurement:
    """llama.cpp's own ``llama-bench`` on the same file, threads and flash-attention setting as the
    server: prompt processing of ``prompt_tokens``, then decoding ``new_tokens`` at that depth;
    first token = prefill + one step."""
    threads = threads or os.cpu_count() or 1

    def rate(*arguments: str) -> float:
        command = [str(binary), "-m", str(gguf), "-t", str(threads), "-fa", flash_attention, "-r", str(repeats)]
        command += ["-o", "json", *arguments]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
        return float(json.loads(result.stdout)[0]["avg_ts"])

    prefill = rate("-p", str(prompt_tokens), "-n", "0")
    decode = rate("-p", "0", "-n", str(new_tokens), "-d", str(prompt_tokens))
    return Measurement(
        backend=REFERENCE_CPP,
        device="cpu",
        device_name=cpu_name(),
        precision=_gguf_precision(gguf),
        prompt_tokens=prompt_tokens,
        new_tokens=new_tokens,
        ttft_ms=(prompt_tokens / prefill + 1 / decode) * 1000,
        decode_tps_batch1=decode,
        decode_tps_batched=None,
        batch_size=None,
        runs=repeats,
        threads=threads,
    )


def machine_info() -> dict[str, Any]:
    import transformers

    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import llama_cpp

        info["llama_cpp_python"] = llama_cpp.__version__
    except ImportError:
        pass
    return info


def run_generation_benchmark(
    settings: Settings,
    new_tokens: int = 64,
    prompt_tokens: int = 400,
    batch_size: int = 8,
    repeats: int = 3,
    devices: tuple[str, ...] | None = None,
    llama_cpp: bool = True,
    concurrency: tuple[int, ...] = (),
) -> BenchReport:
    """Benchmark the generator on the CPU, on CUDA when present, and with llama.cpp when installed;
    ``concurrency`` levels are measured for the product's generator on each device."""
    if new_tokens < 2:
        raise ValueError("new_tokens must be at least 2: decode speed is measured after the first token")
    started = time.perf_counter()
    wanted = devices or (("cpu", "cuda") if torch.cuda.is_available() else ("cpu",))
    report = BenchReport(machine=machine_info(), measurements=[])
    cpu_prompt: list[int] | None = None
    cpu_messages: list[dict[str, str]] = []
    for device in wanted:
        loaded = load_generator(
            settings.generator_model, settings.data_dir, adapter=settings.generator_adapter, device=device
        )
        report.measurements.append(measure_transformers(loaded, prompt_tokens, new_tokens, batch_size, repeats))
        encoder = GenerationWorker(loaded)  # never started: its tokenizer and chat template only
        messages = bench_messages(encoder, prompt_tokens)
        prompt = encoder.encode_chat(messages)
        if device == "cpu":
            cpu_prompt, cpu_messages = prompt, messages
        if concurrency and not (device == "cpu" and llama_cpp_chosen(settings)):
            # Both of the transformers worker's batching modes, so one run compares them.
            widest = max(batch_size, *concurrency)
            workers: list[tuple[str, GenerationWorker]] = [
                (TRANSFORMERS_STATIC, GenerationWorker(loaded, max_batch_size=widest)),
                (
                    TRANSFORMERS_CONTINUOUS,
                    ContinuousGenerationWorker(
                        loaded, max_batch_size=widest, max_waiting=0, context_tokens=len(prompt) + new_tokens + 32
                    ),
                ),
            ]
            config = loaded.model.generation_config
            saved_eos, config.eos_token_id = config.eos_token_id, -1  # exactly new_tokens per request
            try:
                for label, worker in workers:
                    try:
                        report.concurrency += measure_concurrency(
                            worker, label, device, messages, len(prompt), new_tokens, concurrency
                        )
                    finally:
                        worker.stop()
            finally:
                config.eos_token_id = saved_eos
        del loaded
        if device == "cuda":
            torch.cuda.empty_cache()
    if llama_cpp and cpu_prompt is not None and "cpu" in wanted:
        binary = find_llama_server(settings.llama_server_binary)
        if binary is None or gguf_file(settings.generator_model) is None:
            report.notes.append(
                "the product's llama.cpp path not measured: "
                + ("no llama-server (make llama-server)." if binary is None else "the generator is not a GGUF file.")
            )
        else:
            product, points, model = measure_llama_server(
                settings, cpu_messages, len(cpu_prompt), new_tokens, repeats, concurrency
            )
            report.measurements.append(product)
            report.concurrency += points
            reference = binary.with_name("llama-bench")
            if reference.is_file():
                report.measurements.append(
                    measure_llama_bench(
                        reference,
                        model,
                        len(cpu_prompt),
                        new_tokens,
                        repeats,
                        settings.llama_threads,
                        settings.llama_flash_attention,
                    )
                )
            else:
                report.notes.append(f"llama-bench not found beside {binary}: no reference for the ratio.")
    if llama_cpp and cpu_prompt is not None:
        gguf = gguf_file(settings.generator_model)
        try:
            import llama_cpp as _  # noqa: F401
        except ImportError:
            report.notes.append("llama.cpp not measured: llama-cpp-python is not installed (pip install '.[bench]').")
        else:
            if gguf is None:
                report.notes.append("llama.cpp not measured: the generator is not a GGUF file.")
            else:
                report.measurements.append(measure_llama_cpp(gguf, cpu_prompt, new_tokens, repeats))
    report.seconds = time.perf_counter() - started
    return report
