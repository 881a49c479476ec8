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

one warm-up run, then the median of ``repeats`` runs. When ``llama_cpp`` (the optional extra
``bench``) is importable, the same GGUF file is measured with llama.cpp in the same process and
the ratio is printed: on a shared, noisy machine only ratios measured in one run are meaningful.
"""

from __future__ import annotations

import os
import platform
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from chatbot.config import Settings
from chatbot.llm.loading import LoadedModel, load_generator
from chatbot.llm.prompts import ContextPassage, chat_messages
from chatbot.llm.worker import GenerationWorker, _Request
from chatbot.machine import cpu_name
from chatbot.model_specs import resolve_model_spec

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
class BenchReport:
    machine: dict[str, Any]
    measurements: list[Measurement]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def ratios(self) -> dict[str, float]:
        """transformers / llama.cpp on the CPU, from this one run (>1 means transformers is faster)."""
        by_backend = {m.backend: m for m in self.measurements if m.device == "cpu"}
        hf, cpp = by_backend.get("transformers"), by_backend.get("llama.cpp")
        if hf is None or cpp is None:
            return {}
        return {
            "decode_tps_batch1": round(hf.decode_tps_batch1 / cpp.decode_tps_batch1, 3),
            "ttft_speedup": round(cpp.ttft_ms / hf.ttft_ms, 3),  # >1: transformers reaches the first token sooner
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "measurements": [asdict(m) for m in self.measurements],
            "ratios_transformers_over_llama_cpp": self.ratios(),
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
        ratios = self.ratios()
        if ratios:
            lines.append("")
            lines.append(
                f"transformers / llama.cpp on the CPU: decode speed × {ratios['decode_tps_batch1']:.2f}, "
                f"time to first token {ratios['ttft_speedup']:.2f}× as fast."
            )
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


def bench_prompt(worker: GenerationWorker, prompt_tokens: int) -> list[int]:
    """A real chat prompt (system prompt, numbered passages, question) of about ``prompt_tokens`` tokens."""
    sentences: list[str] = []
    ids = worker.encode_chat(chat_messages("How much does an international wire cost?", []))
    while len(ids) < prompt_tokens:
        sentences.append(FILLER[len(sentences) % len(FILLER)])
        passages = [ContextPassage(f"Kestrel Bank help, part {n + 1}", " ".join(sentences[n::3])) for n in range(3)]
        ids = worker.encode_chat(chat_messages("How much does an international wire cost?", passages))
    return ids


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


def gguf_path(settings: Settings) -> Path | None:
    path = Path(resolve_model_spec(settings.generator_model))
    return path if path.suffix == ".gguf" and path.is_file() else None


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
) -> BenchReport:
    """Benchmark the generator on the CPU, on CUDA when present, and with llama.cpp when installed."""
    if new_tokens < 2:
        raise ValueError("new_tokens must be at least 2: decode speed is measured after the first token")
    started = time.perf_counter()
    wanted = devices or (("cpu", "cuda") if torch.cuda.is_available() else ("cpu",))
    report = BenchReport(machine=machine_info(), measurements=[])
    cpu_prompt: list[int] | None = None
    for device in wanted:
        loaded = load_generator(
            settings.generator_model, settings.data_dir, adapter=settings.generator_adapter, device=device
        )
        report.measurements.append(measure_transformers(loaded, prompt_tokens, new_tokens, batch_size, repeats))
        if device == "cpu":
            cpu_prompt = bench_prompt(GenerationWorker(loaded), prompt_tokens)
        del loaded
        if device == "cuda":
            torch.cuda.empty_cache()
    if llama_cpp and cpu_prompt is not None:
        gguf = gguf_path(settings)
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
