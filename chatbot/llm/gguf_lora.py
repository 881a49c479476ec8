"""Fold a PEFT LoRA adapter into a GGUF file, so llama.cpp serves the fine-tuned generator.

llama.cpp reads GGUF; the adapter is trained with PEFT on the de-quantised weights of the same
GGUF (``chatbot/llm/loading.py``). Rather than rebuilding a GGUF from a merged Hugging Face
folder (``convert_hf_to_gguf.py`` re-derives the tokenizer and needs ``sentencepiece``), the
base GGUF is the template: every metadata key (tokenizer and chat template included) and every
tensor the adapter does not touch is copied byte for byte, and each adapted projection becomes
``dequantize(base) + (alpha / r) · B·A``, stored as ``F16`` by default (``weight_type``).

Why not the base's ``Q4_1``: a rank-8 delta is small next to a 4-bit step, and re-quantising
would erase much of what fine-tuning learnt. ``Q8_0``'s rounding error is larger than the delta
in norm (about 1.6× on the shipped adapter) and ``BF16``'s about a third of it; ``F16`` keeps the
delta to 5-12% (the test checks 25%, which Q8_0 fails). On the CPU measured here (docs/benchmarks.md) ``F16``
and ``BF16`` process prompts faster than ``Q8_0``, which sets the time to the first token;
``Q8_0`` decodes faster and is half the size.

Why the permutation: llama.cpp stores the query and key projections with their rotary halves
interleaved per head (``convert_hf_to_gguf.py``'s ``permute``), and transformers undoes that when
it loads a GGUF. The delta, trained in transformers' layout, is permuted the same way before it
is added.

The output records the base's and the adapter's fingerprints (``kestrel.merged_from``), so a
changed adapter or model is merged again and an unchanged one is not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from chatbot.llm.loading import gguf_fingerprint

log = logging.getLogger(__name__)

MERGE_KEY = "kestrel.merged_from"
# PEFT module name -> llama.cpp tensor name inside ``blk.N``.
_PROJECTIONS = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}


class AdapterMergeError(ValueError):
    """The adapter cannot be folded into this GGUF (another architecture, shape or LoRA kind)."""


def merge_fingerprint(base: Path, adapter: Path, weight_type: str) -> str:
    """What the merged file was made from: the base GGUF, the adapter's config and weights, the type."""
    adapter_files = ("adapter_config.json", "adapter_model.safetensors")
    digests = [hashlib.sha256((adapter / name).read_bytes()).hexdigest()[:16] for name in adapter_files]
    return json.dumps([gguf_fingerprint(base), weight_type, *digests])


def permute_rotary(weights: np.ndarray, heads: int) -> np.ndarray:
    """transformers' row order of a query/key projection -> llama.cpp's (per head, halves interleaved)."""
    rows = weights.shape[0]
    return weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def lora_deltas(adapter: Path) -> dict[tuple[int, str], np.ndarray]:
    """``(block, projection) -> (alpha / r) · B·A`` in transformers' layout, float32."""
    from safetensors.torch import load_file  # the adapter may be bf16, which numpy cannot read

    config = json.loads((adapter / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA" or config.get("use_dora") or config.get("use_rslora"):
        raise AdapterMergeError("only plain LoRA adapters can be merged (not DoRA or rsLoRA)")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise AdapterMergeError("adapters with per-module ranks or alphas are not supported")
    scale = float(config["lora_alpha"]) / float(config["r"])
    stored = load_file(str(adapter / "adapter_model.safetensors"))
    weights = {key: value.float().numpy() for key, value in stored.items()}
    deltas: dict[tuple[int, str], np.ndarray] = {}
    for key, a_matrix in weights.items():
        if ".lora_A." not in key:
            continue
        parts = key.split(".")
        try:
            block = int(parts[parts.index("layers") + 1])
        except (ValueError, IndexError):
            raise AdapterMergeError(f"unexpected adapter tensor {key}") from None
        module = parts[parts.index("lora_A") - 1]
        if module not in _PROJECTIONS:
            raise AdapterMergeError(f"the adapter adapts {module}, which has no llama.cpp counterpart here")
        b_matrix = weights[key.replace(".lora_A.", ".lora_B.")]
        deltas[(block, module)] = scale * (b_matrix @ a_matrix)
    if not deltas:
        raise AdapterMergeError(f"{adapter} holds no LoRA weights")
    return deltas


def merge_adapter_into_gguf(base: Path, adapter: Path, out: Path, weight_type: str = "F16") -> Path:
    """Write ``out``: ``base`` with the adapter folded in, adapted projections as ``weight_type``
    (``F16``, ``BF16`` or ``Q8_0``; see the module docstring)."""
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize, quantize

    types = {
        "Q8_0": (GGMLQuantizationType.Q8_0, 7),
        "F16": (GGMLQuantizationType.F16, 1),
        "BF16": (GGMLQuantizationType.BF16, 32),
    }
    if weight_type not in types:
        raise AdapterMergeError(f"weight_type must be one of {', '.join(types)}, not {weight_type!r}")
    qtype, file_type = types[weight_type]
    reader = GGUFReader(str(base))
    architecture = reader.fields["general.architecture"].contents()
    if architecture != "llama":
        raise AdapterMergeError(f"merging is implemented for llama-architecture GGUFs, not {architecture}")
    heads_field = reader.fields["llama.attention.head_count"]
    heads = int(heads_field.contents())
    kv_heads = int(reader.fields.get("llama.attention.head_count_kv", heads_field).contents())
    by_tensor = {
        f"blk.{block}.{_PROJECTIONS[module]}.weight": (module, delta)
        for (block, module), delta in lora_deltas(adapter).items()
    }

    staging = out.with_name(out.name + ".partial")
    writer = GGUFWriter(str(staging), architecture)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", MERGE_KEY):
            continue
        if key == "general.file_type":
            writer.add_key_value(key, file_type, GGUFValueType.UINT32)  # llama.cpp's "mostly <type>"
            continue
        sub_type = field.types[-1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), field.types[0], sub_type)
    writer.add_key_value(MERGE_KEY, merge_fingerprint(base, adapter, weight_type), GGUFValueType.STRING)

    merged = 0
    for tensor in reader.tensors:
        if tensor.name not in by_tensor:
            writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
            continue
        module, delta = by_tensor[tensor.name]
        weights = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if module == "q_proj":
            delta = permute_rotary(delta, heads)
        elif module == "k_proj":
            delta = permute_rotary(delta, kv_heads)
        if weights.shape != delta.shape:
            raise AdapterMergeError(f"{tensor.name}: base {weights.shape} but adapter delta {delta.shape}")
        writer.add_tensor(tensor.name, quantize(weights + delta, qtype), raw_dtype=qtype)
        merged += 1
    if merged != len(by_tensor):
        raise AdapterMergeError(f"{len(by_tensor) - merged} adapted projections have no tensor in {base.name}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    os.replace(staging, out)
    log.info("merged adapter into GGUF", extra={"base": base.name, "adapter": str(adapter), "tensors": merged})
    return out


def merged_gguf(base: Path, adapter: Path, folder: Path, weight_type: str = "F16") -> Path:
    """The merged GGUF for ``base`` + ``adapter`` under ``folder``, made only when missing or stale."""
    from gguf import GGUFReader

    out = folder / f"{base.stem}+{adapter.name}.{weight_type}.gguf"
    wanted = merge_fingerprint(base, adapter, weight_type)
    if out.exists():
        try:
            field = GGUFReader(str(out)).fields.get(MERGE_KEY)
            if field is not None and field.contents() == wanted:
                return out
        except (ValueError, OSError):
            log.warning("merged GGUF %s is unreadable; merging again", out)
    folder.mkdir(parents=True, exist_ok=True)
    return merge_adapter_into_gguf(base, adapter, out, weight_type)
