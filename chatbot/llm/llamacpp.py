"""Generation on the CPU with llama.cpp: a ``llama-server`` process the engine starts and owns.

Why a server process and not bindings: on this model and a 2-core CPU transformers decodes at
about a fifth of llama.cpp's speed (docs/benchmarks.md), and ``llama-server`` brings what the
in-process worker would otherwise have to re-implement — continuous batching over parallel slots
(requests join and leave the running batch at token granularity), the system prompt's KV reused
across requests (``cache_prompt``), n-gram speculative decoding — behind the OpenAI-compatible
API that ``RemoteGenerator`` already speaks, with its timeouts, cancellation and fallbacks.

The binary is built from the llama.cpp sources that ``llama-cpp-python``'s release on PyPI
vendors (``scripts/build-llama-server.sh``, run by ``make``). The model is the settings' GGUF
with the LoRA adapter folded in (``chatbot/llm/gguf_lora.py``).

The server listens on 127.0.0.1 on a free port and requires a random key made for this process
(passed in its environment, never on its command line), so no other local user can use it.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chatbot.config import Settings
from chatbot.llm.loading import choose_device, gguf_file
from chatbot.llm.remote import RemoteGenerator, RemoteModel, safe_address

log = logging.getLogger(__name__)

BINARY_NAME = "llama-server"


# llama-server runs under a small shell that ends it when this process is gone, even killed with
# SIGKILL (no Python cleanup runs then), so a crashed assistant never leaves a server holding two
# cores. Terminating the shell (``stop``) ends the server too. Arguments: our PID, then the command.
_SUPERVISOR = (
    "/bin/sh",
    "-c",
    "owner=$1; shift; \"$@\" & server=$!; trap 'kill $server 2>/dev/null; wait $server; exit 143' TERM INT; "
    "while kill -0 $owner 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 1; done; "
    "kill $server 2>/dev/null; wait $server",
    "llama-server-supervisor",
)


class LlamaCppUnavailable(RuntimeError):
    """llama.cpp cannot serve here (no binary, not a GGUF, the server did not start)."""


def find_llama_server(configured: str = "") -> Path | None:
    """The ``llama-server`` to run: the setting, else the one ``make`` installed next to this
    Python (``.venv/bin``), else one on ``PATH``."""
    if configured:
        path = Path(configured)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    beside = Path(sys.executable).parent / BINARY_NAME
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(BINARY_NAME)
    return Path(found) if found else None


def generator_gguf(settings: Settings) -> tuple[Path, str | None]:
    """The GGUF llama.cpp serves (the adapter folded in, made once) and the adapter used, if any."""
    from chatbot.llm.gguf_lora import AdapterMergeError, merged_gguf

    path = gguf_file(settings.generator_model)
    if path is None:
        raise LlamaCppUnavailable(f"llama.cpp serves GGUF files; the generator is {settings.generator_model}")
    adapter = Path(settings.generator_adapter) if settings.generator_adapter else None
    if adapter is None or not (adapter / "adapter_config.json").exists():
        return path, None
    try:
        return merged_gguf(path, adapter, settings.data_dir / "models", settings.llama_merged_weights), str(adapter)
    except AdapterMergeError as error:  # under auto, transformers (which applies any PEFT adapter) takes over
        raise LlamaCppUnavailable(f"the adapter cannot be folded into the GGUF: {error}") from error


def llama_cpp_chosen(settings: Settings) -> bool:
    """Whether the in-process generator is llama.cpp: asked for, or ``auto`` on a CPU with the
    binary installed and a GGUF generator (CUDA keeps transformers and its batching)."""
    if settings.generator_backend == "llama.cpp":
        return True
    if settings.generator_backend == "transformers":
        return False
    if choose_device(settings.device).type != "cpu" or find_llama_server(settings.llama_server_binary) is None:
        return False
    return gguf_file(settings.generator_model) is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LlamaServerProcess:
    """One ``llama-server`` child process: started, health-checked, stopped."""

    binary: Path
    model: Path
    parallel: int = 4
    context_per_slot: int = 2048
    threads: int = 0
    speculative: str = ""  # "" or a llama.cpp --spec-type, e.g. "ngram-simple"
    flash_attention: str = "auto"
    log_file: Path | None = None
    start_timeout_s: float = 120.0
    port: int = 0
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        threads = self.threads or os.cpu_count() or 2
        command = [
            str(self.binary),
            "--model", str(self.model),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--threads", str(threads),
            "--threads-batch", str(threads),
            "--parallel", str(self.parallel),
            "--ctx-size", str(self.context_per_slot * self.parallel),
            "--cont-batching",
            "--flash-attn", self.flash_attention,
            "--n-gpu-layers", "0",
            "--no-webui",
            "--alias", self.model.stem,
        ]  # fmt: skip
        if self.speculative:
            command += ["--spec-type", self.speculative]
        return command

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self.port = self.port or _free_port()
        environment = dict(os.environ, LLAMA_API_KEY=self.api_key)  # llama-server reads its key here
        output: Any = subprocess.DEVNULL
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_file.open("ab")
        started = time.monotonic()
        self._process = subprocess.Popen(
            [*_SUPERVISOR, str(os.getpid()), *self.command()],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env=environment,
        )
        if output is not subprocess.DEVNULL:
            output.close()  # the child holds its own descriptor
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        log.info(
            "llama.cpp server ready",
            extra={
                "model": self.model.name,
                "port": self.port,
                "parallel": self.parallel,
                "seconds": round(time.monotonic() - started, 2),
            },
        )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        headers = {"Authorization": f"Bearer {self.api_key}"}
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                where = f"; see {self.log_file}" if self.log_file else ""
                raise LlamaCppUnavailable(f"llama-server exited with status {self._process.returncode}{where}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.1)
        raise LlamaCppUnavailable(f"llama-server was not ready within {self.start_timeout_s:g} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None


class LlamaCppGenerator(RemoteGenerator):
    """The engine's generator interface (``stream``, ``start``, ``stop``, ``loaded``,
    ``queue_depth``) over a ``llama-server`` this process owns."""

    def __init__(self, server: LlamaServerProcess, adapter: str | None, timeout_s: float = 30.0) -> None:
        super().__init__(server.base_url, api_key=server.api_key, model=server.model.stem, timeout_s=timeout_s)
        self.server = server
        self.adapter = adapter
        # Extra request fields for measurement only (``chatbot bench generate`` sets ``ignore_eos``).
        self.benchmark_options: dict[str, object] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> LlamaCppGenerator:
        binary = find_llama_server(settings.llama_server_binary)
        if binary is None:
            raise LlamaCppUnavailable(
                "CHATBOT_GENERATOR_BACKEND=llama.cpp but no llama-server binary was found "
                "(run `make llama-server`, or set CHATBOT_LLAMA_SERVER_BINARY)"
            )
        model, adapter = generator_gguf(settings)
        server = LlamaServerProcess(
            binary=binary,
            model=model,
            parallel=settings.llama_parallel,
            context_per_slot=settings.llama_context_per_slot,
            threads=settings.llama_threads,
            speculative=settings.llama_speculative,
            flash_attention=settings.llama_flash_attention,
            log_file=settings.data_dir / "logs" / "llama-server.log",
        )
        return cls(server, adapter, timeout_s=settings.llm_timeout_s)

    def start(self) -> None:
        self.server.start()
        self.base_url = self.server.base_url  # the port is chosen at start
        self.address = safe_address(self.base_url)

    def stop(self) -> None:
        self.server.stop()

    @property
    def loaded(self) -> RemoteModel:
        return RemoteModel(name=self.server.model.name, adapter=self.adapter, device="cpu (llama.cpp)")

    def request_options(self) -> Mapping[str, object]:
        # The in-process worker decodes greedily with no sampling tricks; so does this. No
        # repetition penalty: llama.cpp counts the prompt's last tokens as "seen", which would
        # push the model away from copying the passages it must quote.
        return {"cache_prompt": True, "repeat_penalty": 1.0, **self.benchmark_options}
