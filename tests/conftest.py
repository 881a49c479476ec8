"""Shared fixtures: a small fixture knowledge base, indexed once, and one warm engine.

Everything is real: the MiniLM embedder, the SmolLM2 generator (converted once into the project's
data dir by ``make``), FAISS, SQLite. Only the knowledge base is small, so the suite stays fast.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatbot.config import PROJECT_ROOT, Settings
from chatbot.dialogue.engine import Engine
from chatbot.knowledge.embedder import Embedder
from chatbot.knowledge.index import build_index
from chatbot.llm.loading import resolve_generator_path
from tests.support.services import PostgresServer, RedisServer, postgres_bin, postgres_server, redis_bin, redis_server

FIXTURE_KB = Path(__file__).parent / "fixtures" / "kb"
DEFAULTS = Settings()
_DATABASE_NUMBERS = itertools.count()
PROJECT_DATA_DIR = Path(os.environ.get("CHATBOT_DATA_DIR", PROJECT_ROOT / "var"))


@pytest.fixture(scope="session")
def converted_generator() -> str:
    """The default generator, converted once into the project's data dir (as `make` does)."""
    data_dir = Path(os.environ.get("CHATBOT_DATA_DIR", PROJECT_ROOT / "var"))
    return resolve_generator_path(DEFAULTS.generator_model, data_dir)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    model = Embedder(DEFAULTS.embedding_model)
    model.warm_up()
    return model


@pytest.fixture(scope="session")
def kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("kb") / "kb"
    shutil.copytree(FIXTURE_KB, target)
    return target


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, kb_dir: Path, converted_generator: str) -> Settings:
    data_dir = tmp_path_factory.mktemp("data")
    return Settings(
        data_dir=data_dir,
        knowledge_dir=kb_dir,
        generator_model=converted_generator,
        database_url=f"sqlite:///{data_dir / 'test.db'}",
        max_new_tokens=48,
        # The suite's engine always generates: its tests are about generation itself. Skipping the
        # generator where it would be overruled, and its time budget, are tested in test_extractive.py.
        generation_min_score=0.0,
        generation_budget_ms=0,
        nlu_dir=PROJECT_DATA_DIR / "nlu",  # the intent classifier `make` builds, not one trained per session
    )


@pytest.fixture(scope="session")
def built_index(settings: Settings, embedder: Embedder) -> Settings:
    build_index(settings.knowledge_dir, settings.data_dir, embedder, settings.chunk_max_tokens, progress=False)
    return settings


@pytest.fixture(scope="session")
def engine(built_index: Settings) -> Iterator[Engine]:
    warm = Engine(built_index)
    warm.warm_up()
    yield warm
    warm.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (tests/support/services.py); skipped where it is not installed."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed: apt-get install postgresql (make test does it where it may)")
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the session's PostgreSQL server for one test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:40] + f"_{os.getpid()}"
    name += f"_{next(_DATABASE_NUMBERS)}"
    return postgres.create_database(name)


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    """A real Redis server for the session (tests/support/services.py); skipped where it is not installed."""
    if redis_bin() is None:
        pytest.skip("Redis is not installed: apt-get install redis-server (make test does it where it may)")
    with redis_server() as server:
        yield server
