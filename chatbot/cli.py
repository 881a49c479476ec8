"""``chatbot``: the command line. Every command goes through the same Engine as the server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
from rich.console import Console
from rich.table import Table

from chatbot.agents.cli import agents_app
from chatbot.config import Settings, get_settings
from chatbot.integration.cli import keys_app
from chatbot.store.cli import audit_app, db_app, purge

app = typer.Typer(help="Kestrel Assist: a self-hosted, grounded banking assistant.", no_args_is_help=True)
train_app = typer.Typer(help="Fine-tune the models on the knowledge base.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure the assistant on development sets.", no_args_is_help=True)
bench_app = typer.Typer(help="Speed benchmarks.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.add_typer(bench_app, name="bench")
app.add_typer(agents_app, name="agents")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.command("purge")(purge)
app.add_typer(keys_app, name="keys")
console = Console(stderr=True)


def _turns(settings: Settings, store: Any = None):  # type: ignore[no-untyped-def]
    """A warm engine behind the turn service: the CLI's questions take the customers' path."""
    from chatbot.conversations.turns import TurnService
    from chatbot.dialogue.engine import Engine

    engine = Engine(settings)
    with console.status("Loading models and index…"):
        engine.warm_up()
    return TurnService(settings, engine, store)


@app.command()
def ingest(
    force: Annotated[bool, typer.Option(help="Rebuild everything, ignoring the previous index.")] = False,
    check: Annotated[bool, typer.Option(help="Only report whether the index is stale (exit 1 if so).")] = False,
) -> None:
    """Build or update the retrieval index from the knowledge base (only what changed)."""
    from chatbot.knowledge.embedder import Embedder
    from chatbot.knowledge.index import KnowledgeIndex, build_index, is_stale

    settings = get_settings()
    if check:
        stale = is_stale(settings.knowledge_dir, settings.data_dir, settings.embedding_model, settings.chunk_max_tokens)
        console.print("index is stale" if stale else "index is up to date")
        raise typer.Exit(1 if stale else 0)
    if force:
        import shutil

        shutil.rmtree(KnowledgeIndex.directory(settings.data_dir), ignore_errors=True)
    embedder = Embedder(settings.embedding_model)
    report = build_index(settings.knowledge_dir, settings.data_dir, embedder, settings.chunk_max_tokens)
    if report.up_to_date:
        console.print(
            f"index up to date: {report.passages} passages and {report.section_questions} section questions "
            f"from {report.files_total} files"
        )
    else:
        console.print(
            f"index built: {report.passages} passages and {report.section_questions} section questions from "
            f"{report.files_total} files ({report.files_changed} changed, {report.embedded} embedded) "
            f"in {report.seconds:.1f}s"
        )
    if report.unmatched:
        # A renamed heading leaves its questions out; say which, so the content team can update them.
        console.print(f"[yellow]{len(report.unmatched)} section(s) in questions/ match no heading, left out:[/yellow]")
        for item in report.unmatched:
            console.print(f"  {item}", markup=False)


@app.command()
def search(
    query: Annotated[list[str], typer.Argument(help="The question to search for.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, dense or bm25")] = "hybrid",
) -> None:
    """Print the ranked passages for a query, with ids and scores."""
    from chatbot.dialogue.engine import Engine

    settings = get_settings().model_copy(update={"generation_enabled": False})
    engine = Engine(settings)
    engine.warm_up()
    table = Table("rank", "id", "kind", "cosine", "rrf", "title")
    for rank, hit in enumerate(engine.search(" ".join(query), top_k=top_k, mode=mode), start=1):
        table.add_row(
            str(rank), hit.passage.id, hit.passage.kind, f"{hit.score:.3f}", f"{hit.fused:.4f}", hit.passage.title
        )
    Console().print(table)


@app.command()
def ask(
    question: Annotated[
        list[str] | None, typer.Argument(help="A question; none reads one per line from stdin.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one AnswerObject per line.")] = False,
) -> None:
    """Answer questions with the full engine."""
    from chatbot.errors import InvalidInput

    questions = [" ".join(question)] if question else [line.strip() for line in sys.stdin if line.strip()]
    turns = _turns(get_settings())

    async def run() -> int:
        failures = 0
        for text in questions:
            try:
                answer = await turns.ask_answer(text)
            except InvalidInput as error:
                failures += 1
                if as_json:
                    print(json.dumps({"error": {"code": error.code, "message": error.message}}), flush=True)
                else:
                    console.print(f"[red]{error.message}[/red]")
                continue
            if as_json:
                print(answer.model_dump_json(), flush=True)
            else:
                print(answer.text)
                for source in answer.sources:
                    print(f"  [{source.id}] {source.title} {source.url or ''}".rstrip())
                print(f"  ({answer.kind}, {answer.latency_ms} ms)\n", flush=True)
        return failures

    try:
        failures = asyncio.run(run())
    finally:
        turns.engine.close()
    raise typer.Exit(1 if failures else 0)


@app.command()
def chat() -> None:
    """A terminal chat that streams answers as they are generated."""
    from chatbot.schema import DeltaEvent, ErrorEvent, MessageEvent
    from chatbot.store import Store

    # A stored conversation, like the widget's: follow-ups ("and for gold cards?") are resolved
    # from its earlier turns, and the transcript is there for analytics.
    settings = get_settings()
    store = Store(settings.resolved_database_url)
    turns = _turns(settings, store)
    conversation_id, _ = store.create_conversation("cli")
    out = Console()

    async def run() -> None:
        out.print("[bold]Kestrel Bank assistant[/bold] — ask a question, or press Ctrl-D to leave.")
        while True:
            try:
                text = await asyncio.to_thread(input, "\nyou › ")
            except (EOFError, KeyboardInterrupt):
                return
            out.print("bot › ", end="")
            async for event in turns.ask(text, conversation_id):
                if isinstance(event, DeltaEvent):
                    out.print(event.text, end="")
                elif isinstance(event, ErrorEvent):
                    out.print(f"[red]{event.message}[/red]")
                elif isinstance(event, MessageEvent):
                    message = event.message
                    if message.kind == "extractive":
                        out.print(f"\n[dim](verified answer)[/dim] {message.text}", end="")
                    out.print()
                    for source in message.sources:
                        out.print(f"  [dim]source:[/dim] {source.title} {source.url or ''}")

    try:
        asyncio.run(run())
    finally:
        turns.engine.close()
        store.close()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Proxies whose X-Forwarded-For/-Proto are trusted (comma-separated; default 127.0.0.1)."),
    ] = None,
) -> None:
    """Start the HTTP and WebSocket server (SIGTERM: finish answers in flight, then exit; docs/operations.md)."""
    import uvicorn

    from chatbot.connections import raise_open_file_limit, uvicorn_options
    from chatbot.log_setup import configure_logging
    from chatbot.shutdown import GracefulServer
    from chatbot.tokens import configured_secret_key_problem

    settings = get_settings()
    problem = configured_secret_key_problem(settings)
    if problem is not None:  # before anything starts: a guessable key lets anyone mint agent tokens
        console.print(f"[red]Refusing to start: {problem}[/red]")
        raise typer.Exit(2)
    configure_logging(settings.log_level, settings.pii_public_numbers)
    # Slow clients: header/body deadlines and connection caps around uvicorn's own protocol, the total
    # kept below the open-file limit (raised to its hard limit first).
    config = uvicorn.Config(
        "chatbot.server.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        ws_max_size=settings.max_frame_bytes,  # bigger frames: close 1009 (the app checks too)
        **uvicorn_options(settings, raise_open_file_limit()),  # keep-alive, header/body deadlines, connection caps
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 1,
        proxy_headers=True,  # client address and scheme from X-Forwarded-* of trusted proxies only
        forwarded_allow_ips=forwarded_allow_ips,
    )
    server = GracefulServer(config, settings.shutdown_grace_s)
    server.run()
    if not server.started:
        raise typer.Exit(3)


@app.command("serve-llm")
def serve_llm(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8001,
    model_id: Annotated[str | None, typer.Option(help="Model name to serve under (default: kestrel-<model>).")] = None,
) -> None:
    """Serve the generator (converted model + LoRA) as an OpenAI-compatible API, for CHATBOT_LLM_BASE_URL."""
    from chatbot.llm.openai_server import run

    run(get_settings(), host, port, model_id)


@train_app.command("generator")
def train_generator(
    epochs: Annotated[float, typer.Option(help="Passes over the training pairs.")] = 2.0,
    max_steps: Annotated[int, typer.Option(help="Stop after this many optimiser steps (0: no limit).")] = 0,
    output: Annotated[Path | None, typer.Option(help="Adapter folder (default: the settings' adapter).")] = None,
    batch_size: Annotated[int, typer.Option()] = 8,
    learning_rate: Annotated[float, typer.Option()] = 2e-4,
    seed: Annotated[int, typer.Option()] = 13,
) -> None:
    """LoRA fine-tuning of the generator on FAQ pairs with retrieved context in the prompt."""
    from chatbot.training.generator import TrainConfig, train_generator_adapter

    settings = get_settings()
    config = TrainConfig(
        epochs=epochs, max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed
    )
    result = train_generator_adapter(settings, config, output or Path(settings.generator_adapter))
    console.print(json.dumps(result, indent=2))


@train_app.command("embedder")
def train_embedder(
    epochs: Annotated[int, typer.Option()] = 1,
    max_steps: Annotated[int, typer.Option(help="Stop after this many steps (0: no limit).")] = 0,
    output: Annotated[Path, typer.Option()] = Path("var/models/embedder-finetuned"),
) -> None:
    """Fine-tune the embedder on FAQ pairs (MultipleNegativesRankingLoss)."""
    from chatbot.training.embedder import train_embedder_model

    result = train_embedder_model(get_settings(), output, epochs=epochs, max_steps=max_steps)
    console.print(json.dumps(result, indent=2))


@train_app.command("reranker")
def train_reranker_command(
    if_stale: Annotated[bool, typer.Option(help="Only train when the reranker is missing or stale.")] = False,
    epochs: Annotated[float, typer.Option()] = 1.0,
    max_steps: Annotated[int, typer.Option(help="Stop after this many steps (0: no limit).")] = 0,
    seed: Annotated[int, typer.Option()] = 13,
) -> None:
    """Fine-tune the cross-encoder reranker on the knowledge base's own question-passage pairs (data_dir/reranker)."""
    from chatbot.knowledge.embedder import Embedder
    from chatbot.knowledge.index import build_index, is_stale
    from chatbot.knowledge.reranker import reranker_dir, reranker_state
    from chatbot.training.reranker import RerankerConfig, train_reranker

    settings = get_settings()
    if if_stale and reranker_state(settings) == "ok":
        console.print(f"reranker up to date in {reranker_dir(settings)}")
        return
    if is_stale(settings.knowledge_dir, settings.data_dir, settings.embedding_model, settings.chunk_max_tokens):
        embedder = Embedder(settings.embedding_model)
        build_index(settings.knowledge_dir, settings.data_dir, embedder, settings.chunk_max_tokens, progress=False)
    config = RerankerConfig(epochs=epochs, max_steps=max_steps, seed=seed, max_length=settings.rerank_max_length)
    meta = train_reranker(settings, config, progress=lambda m: console.print(m))
    console.print(json.dumps(meta, indent=2))


class _Report(Protocol):
    def markdown(self) -> str: ...
    def as_dict(self) -> dict[str, Any]: ...


def _report(report: _Report, output: Path | None) -> None:
    """What every eval/bench command does with its result: a table on stdout, JSON in ``output``."""
    print(report.markdown())
    if output:
        output.write_text(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))


@eval_app.command("answers")
def eval_answers(
    dev_set: Annotated[list[Path] | None, typer.Option("--set", help="JSONL dev set(s).")] = None,
    limit: Annotated[int, typer.Option(help="Evaluate only the first N questions of each set (0: all).")] = 0,
    variants: Annotated[str, typer.Option(help="Comma-separated variants, or 'all'.")] = "all",
    heldout: Annotated[int, typer.Option(help="Held-out FAQ pairs for the generator-alone comparison.")] = 40,
    output: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
) -> None:
    """Retrieval recall, answer kinds, ROUGE-L, unsupported-figure rate and latency, per variant."""
    from chatbot.evals.answers import DEFAULT_SETS, run_answer_evaluation

    report = run_answer_evaluation(
        get_settings(), dev_set or DEFAULT_SETS, limit=limit, variants=variants, heldout_limit=heldout
    )
    _report(report, output)


@eval_app.command("retrieval")
def eval_retrieval(
    dev_set: Annotated[list[Path] | None, typer.Option("--set", help="JSONL dev set(s).")] = None,
    modes: Annotated[str, typer.Option(help="Comma-separated: hybrid, dense, bm25.")] = "hybrid",
    output: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
) -> None:
    """Entry and document recall@1/@3 on the answer dev sets, follow-up document recall (no generation)."""
    from chatbot.evals.answers import DEFAULT_SETS
    from chatbot.evals.retrieval import run_retrieval_evaluation

    wanted = tuple(m.strip() for m in modes.split(",") if m.strip())
    _report(run_retrieval_evaluation(get_settings(), dev_set or DEFAULT_SETS, wanted), output)


@eval_app.command("dialogue")
def eval_dialogue(
    generation: Annotated[bool, typer.Option(help="Generate retrieval answers (slower; routing is the same).")] = False,
    banking77: Annotated[bool, typer.Option(help="Also run the injection detector on BANKING77 test.")] = True,
    sweep: Annotated[bool, typer.Option(help="Sweep the flow threshold and clarification margin.")] = True,
    output: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
) -> None:
    """Follow-up retrieval recall, routing accuracy, injection refusals, false refusals, clarification rate."""
    from chatbot.evals.dialogue import run_dialogue_evaluation

    report = run_dialogue_evaluation(get_settings(), generation=generation, banking77=banking77, sweep=sweep)
    _report(report, output)


@eval_app.command("resolution")
def eval_resolution(
    dev_set: Annotated[
        Path | None, typer.Option("--set", help="JSONL conversations (default evaluation/dev_resolution.jsonl).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Only the first N conversations (0: all).")] = 0,
    ids: Annotated[str, typer.Option(help="Only these conversation ids (comma-separated).")] = "",
    generation: Annotated[
        bool | None, typer.Option("--generation/--no-generation", help="Default: the settings.")
    ] = None,
    failures: Annotated[int, typer.Option(help="Failed turns listed after the tables.")] = 40,
    output: Annotated[
        Path | None, typer.Option("--out", "--output", help="Write every turn's verdict as JSON here.")
    ] = None,
) -> None:
    """Resolved turns (right route, every key fact, no unsupported or misattributed figure) by kind, route and tag;
    failures by cause; latency per kind."""
    from chatbot.evals.resolution import RESOLUTION_SET, run_resolution_evaluation

    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    report = run_resolution_evaluation(get_settings(), dev_set or RESOLUTION_SET, limit, wanted, generation)
    report.failures_shown = failures
    _report(report, output)


@eval_app.command("claims")
def eval_claims(
    claims: Annotated[Path | None, typer.Option(help="Labelled sentences (default evaluation/claims.jsonl).")] = None,
    output: Annotated[Path | None, typer.Option("--out", "--output", help="Write the results as JSON here.")] = None,
) -> None:
    """The claim check's precision and recall (unsupported = positive) per kind, beside the old figure check."""
    from chatbot.evals.claims import CLAIMS_SET, run_claims_evaluation

    report = run_claims_evaluation(get_settings(), claims or CLAIMS_SET)
    _report(report, output)


@eval_app.command("pii")
def eval_pii(
    corpus: Annotated[Path | None, typer.Option(help="JSONL corpus (default evaluation/pii.jsonl).")] = None,
    split: Annotated[str, typer.Option(help="Comma-separated splits: dev, test, all.")] = "dev,test",
    output: Annotated[Path | None, typer.Option("--out", "--output", help="Write the results as JSON here.")] = None,
) -> None:
    """PII redaction: recall per kind and overall, false-positive rate, spurious entities, per split."""
    from chatbot.evals.pii import DEFAULT_CORPUS, run_pii_evaluation

    report = run_pii_evaluation(corpus or DEFAULT_CORPUS, tuple(s.strip() for s in split.split(",") if s.strip()))
    _report(report, output)


# --- intent classification (chatbot/nlu) -----------------------------------------------------------
nlu_app = typer.Typer(help="The intent classifier on its own.", no_args_is_help=True)
app.add_typer(nlu_app, name="nlu")


@train_app.command("intents")
def train_intents(
    if_stale: Annotated[bool, typer.Option(help="Only train when the artifact is missing or stale.")] = False,
    seed: Annotated[int, typer.Option()] = 13,
) -> None:
    """Train the intent classifier (BANKING77 + CLINC150 train/val) into data_dir/nlu, with a progress bar."""
    from chatbot.knowledge.embedder import Embedder
    from chatbot.nlu.artifact import artifact_state, build_artifact
    from chatbot.nlu.encoder import SentenceEncoder
    from chatbot.nlu.model import ModelConfig

    settings = get_settings()
    state = artifact_state(settings)
    if if_stale and state == "ok":
        console.print(f"intent classifier up to date in {settings.resolved_nlu_dir}")
        return
    encoder = SentenceEncoder(Embedder(settings.embedding_model))
    meta = build_artifact(settings, encoder, ModelConfig(seed=seed), progress=lambda m: console.print(m))
    console.print(json.dumps(meta, indent=2))


@nlu_app.command("parse")
def nlu_parse(
    text: Annotated[list[str] | None, typer.Argument(help="The message; none reads one per line from stdin.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON result per line.")] = False,
) -> None:
    """Name the intent of a message: the best intent, its confidence and the top 5."""
    from chatbot.conversations.text import clean_text
    from chatbot.errors import InvalidInput
    from chatbot.nlu import IntentClassifier

    settings = get_settings()
    texts = [" ".join(text)] if text else [line.strip() for line in sys.stdin if line.strip()]
    classifier = IntentClassifier(settings)
    with console.status("Loading the intent classifier…"):
        classifier.warm_up()
    failures = 0
    for raw in texts:
        try:
            cleaned = clean_text(raw, settings.max_message_chars)
        except InvalidInput as error:
            failures += 1
            if as_json:
                print(json.dumps({"error": {"code": error.code, "message": error.message}}), flush=True)
            else:
                console.print(f"[red]{error.message}[/red]")
            continue
        result = classifier.parse(cleaned)
        if as_json:
            print(json.dumps({"text": cleaned, **result.as_dict()}), flush=True)
        else:
            others = ", ".join(f"{r.name} {r.confidence:.2f}" for r in result.ranking[1:])
            print(f"{result.intent.name}\t{result.intent.confidence:.3f}\t{cleaned}\t({others})", flush=True)
    raise typer.Exit(1 if failures else 0)


@eval_app.command("intents")
def eval_intents(
    limit: Annotated[int, typer.Option(help="Evaluate a fixed random sample of N test examples (0: all).")] = 0,
    latency_samples: Annotated[int, typer.Option(help="Single messages timed for parse latency.")] = 300,
    output: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
) -> None:
    """BANKING77 test: accuracy and macro-F1 (77-way and as shipped), parse latency p50/p95."""
    from chatbot.evals.intents import evaluate_intents

    report = evaluate_intents(get_settings(), limit=limit, latency_samples=latency_samples)
    _report(report, output)


@eval_app.command("oos")
def eval_oos(
    output: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
) -> None:
    """CLINC150 banking + credit cards with out-of-scope: in-scope accuracy, OOS recall and precision."""
    from chatbot.evals.intents import evaluate_oos

    report = evaluate_oos(get_settings())
    _report(report, output)


@bench_app.command("generate")
def bench_generate(
    new_tokens: Annotated[int, typer.Option(help="Tokens decoded per measurement.")] = 64,
    prompt_tokens: Annotated[int, typer.Option(help="Prompt length for time to first token.")] = 400,
    concurrency: Annotated[
        str, typer.Option(help="Comma-separated numbers of simultaneous requests to measure (empty: none).")
    ] = "1,4,8",
    output: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
) -> None:
    """Decode tokens/s and time to first token: transformers on CPU (and GPU when present), the
    product's llama.cpp path against llama-bench, and the product's generator under concurrency."""
    from chatbot.llm.bench import run_generation_benchmark

    try:
        levels = tuple(int(level) for level in concurrency.split(",") if level.strip())
    except ValueError:
        raise typer.BadParameter(
            "a comma-separated list of whole numbers, e.g. 1,4,8", param_hint="--concurrency"
        ) from None
    if any(level < 1 for level in levels):
        raise typer.BadParameter("each level must be at least 1", param_hint="--concurrency")
    report = run_generation_benchmark(
        get_settings(), new_tokens=new_tokens, prompt_tokens=prompt_tokens, concurrency=levels
    )
    _report(report, output)


if __name__ == "__main__":
    app()
