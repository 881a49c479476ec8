"""Which generator the engine talks to, chosen once from the settings.

Three implementations share one interface (``stream``, ``complete``, ``start``, ``stop``,
``loaded``, ``queue_depth``), so the engine's grounding check, budget and fallbacks do not care
which one runs:

- ``RemoteGenerator``: an OpenAI-compatible server elsewhere (``CHATBOT_LLM_BASE_URL``);
- ``LlamaCppGenerator``: a ``llama-server`` child process, the CPU default when ``make`` built it;
- ``GenerationWorker``: transformers in this process (CUDA, or a CPU without llama.cpp), batching
  continuously (``ContinuousGenerationWorker``, the CUDA default) or statically.
"""

from __future__ import annotations

import logging

import torch

from chatbot.config import Settings
from chatbot.llm.continuous import ContinuousGenerationWorker
from chatbot.llm.llamacpp import LlamaCppGenerator, LlamaCppUnavailable, llama_cpp_chosen
from chatbot.llm.remote import RemoteGenerator
from chatbot.llm.worker import GenerationWorker

log = logging.getLogger(__name__)

Generator = GenerationWorker | RemoteGenerator  # LlamaCppGenerator is a RemoteGenerator


def create_generator(settings: Settings) -> Generator:
    """The generator the settings ask for, started. With ``generator_backend=auto`` a llama.cpp
    server that cannot start is logged and transformers is used; asked for by name, it raises."""
    if settings.llm_base_url:
        return RemoteGenerator.from_settings(settings)
    if llama_cpp_chosen(settings):
        try:
            generator = LlamaCppGenerator.from_settings(settings)
            generator.start()
            return generator
        except LlamaCppUnavailable as error:
            if settings.generator_backend == "llama.cpp":
                raise
            log.warning("llama.cpp unavailable, generating with transformers", extra={"reason": str(error)})
    worker = transformers_worker(settings)
    worker.start()
    return worker


def continuous_batching(settings: Settings) -> bool:
    """Whether the transformers worker batches continuously: asked for, or ``auto`` on CUDA."""
    if settings.generation_batching != "auto":
        return settings.generation_batching == "continuous"
    return settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available())


def transformers_worker(settings: Settings) -> GenerationWorker:
    """The in-process transformers generator the settings ask for, not started (the engine's fallback
    and ``chatbot serve-llm`` both use it)."""
    if continuous_batching(settings):
        return ContinuousGenerationWorker.from_settings(settings)
    return GenerationWorker.from_settings(settings)
