"""Which transformers architectures prefalign writes as GGUF, and how each maps onto llama.cpp's.

The tensor names come from the `gguf` package's own map (the one llama.cpp's converter uses); what differs by
architecture is written here: the Llama graph's rotary layout of q/k, Gemma's (1 + w) norms, and the
hyper-parameters llama.cpp reads for each architecture.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gguf
import torch


class GgufArchError(ValueError):
    """A model that prefalign cannot write as a correct GGUF."""


@dataclass(frozen=True)
class ArchSpec:
    arch: gguf.MODEL_ARCH
    family: str  # for messages
    permute_qk: bool = False  # llama.cpp's Llama graph rotates interleaved pairs; HF's rotates halves
    norm_shift: float = 0.0  # Gemma's RMSNorm scales by (1 + w); llama.cpp's by the stored weight
    metadata: Callable[[gguf.GGUFWriter, Any], None] | None = None


def _rope(config: Any, layer_type: str = "full_attention") -> dict:
    """transformers 5 keeps rope settings in `rope_parameters`, per layer type where layers differ (Gemma 3)."""
    params = getattr(config, "rope_parameters", None) or {}
    if layer_type in params and isinstance(params[layer_type], dict):
        return params[layer_type]
    if "full_attention" in params and isinstance(params["full_attention"], dict):
        return params["full_attention"]
    return params


def head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _sliding_pattern(writer: gguf.GGUFWriter, config: Any) -> None:
    """Which layers attend within the window: from HF's layer_types, exactly, instead of llama.cpp's default."""
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        writer.add_sliding_window_pattern([kind == "sliding_attention" for kind in layer_types])


def _attention_scale_is_llama_cpps(config: Any, family: str) -> None:
    # llama.cpp scales Gemma's queries by 1/sqrt(head_dim) (1/sqrt(hidden/heads) for the 27B models) and has no
    # key for it; a checkpoint with another query_pre_attn_scalar would run with the wrong scale there.
    scalar = getattr(config, "query_pre_attn_scalar", None)
    allowed = {head_dim(config), config.hidden_size // config.num_attention_heads}
    if scalar is not None and scalar not in allowed:
        raise GgufArchError(
            f"{family}: query_pre_attn_scalar {scalar} is not head_dim ({head_dim(config)}), and llama.cpp scales "
            "queries by 1/sqrt(head_dim) for this architecture, so the GGUF would compute other logits"
        )


def _gemma2(writer: gguf.GGUFWriter, config: Any) -> None:
    _attention_scale_is_llama_cpps(config, "Gemma 2")
    writer.add_attn_logit_softcapping(config.attn_logit_softcapping or 0.0)
    writer.add_final_logit_softcapping(config.final_logit_softcapping or 0.0)
    writer.add_sliding_window(config.sliding_window)
    _sliding_pattern(writer, config)


def _gemma3(writer: gguf.GGUFWriter, config: Any) -> None:
    _attention_scale_is_llama_cpps(config, "Gemma 3")
    if getattr(config, "attn_logit_softcapping", None):
        raise GgufArchError("Gemma 3: attn_logit_softcapping is set, and llama.cpp's Gemma 3 has none")
    if getattr(config, "final_logit_softcapping", None):
        writer.add_final_logit_softcapping(config.final_logit_softcapping)
    if config.sliding_window:
        writer.add_sliding_window(config.sliding_window)
        _sliding_pattern(writer, config)
        local = _rope(config, "sliding_attention").get("rope_theta")
        if local is not None:
            writer.add_rope_freq_base_swa(local)


def _qwen_sliding(writer: gguf.GGUFWriter, config: Any) -> None:
    if getattr(config, "use_sliding_window", False):
        raise GgufArchError("Qwen: use_sliding_window is set, and llama.cpp's Qwen graphs attend to every position")


ARCHITECTURES: dict[str, ArchSpec] = {
    "LlamaForCausalLM": ArchSpec(gguf.MODEL_ARCH.LLAMA, "Llama (SmolLM2, Llama 3)", permute_qk=True),
    # llama.cpp runs Mistral 7B on its Llama graph (its own converter does the same); the sliding window of
    # v0.1 is ignored there too.
    "MistralForCausalLM": ArchSpec(gguf.MODEL_ARCH.LLAMA, "Mistral", permute_qk=True),
    "Qwen2ForCausalLM": ArchSpec(gguf.MODEL_ARCH.QWEN2, "Qwen2", metadata=_qwen_sliding),
    "Qwen3ForCausalLM": ArchSpec(gguf.MODEL_ARCH.QWEN3, "Qwen3", metadata=_qwen_sliding),
    "Gemma2ForCausalLM": ArchSpec(gguf.MODEL_ARCH.GEMMA2, "Gemma 2", norm_shift=1.0, metadata=_gemma2),
    "Gemma3ForCausalLM": ArchSpec(gguf.MODEL_ARCH.GEMMA3, "Gemma 3", norm_shift=1.0, metadata=_gemma3),
}
SUPPORTED = "Llama (SmolLM2, Llama 3), Mistral, Qwen2, Qwen3, Gemma 2 and Gemma 3 (text)"


def arch_spec(config: Any) -> ArchSpec:
    names = list(getattr(config, "architectures", None) or [])
    for name in names:
        if name in ARCHITECTURES:
            return ARCHITECTURES[name]
    what = ", ".join(names) or f"model_type {getattr(config, 'model_type', '?')!r}"
    raise GgufArchError(f"{what} cannot be written as GGUF by prefalign; supported: {SUPPORTED}")


def permute_qk(weights: torch.Tensor, n_head: int) -> torch.Tensor:
    """HF's rotary layout (each head's first half rotates with its second) to llama.cpp's (adjacent pairs)."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def llama3_rope_factors(config: Any) -> torch.Tensor | None:
    """Llama 3.1+ scales rotary frequencies by wavelength; llama.cpp reads the factors as a `rope_freqs` tensor."""
    rope = _rope(config)
    if str(rope.get("rope_type", "")).lower() != "llama3":
        return None
    base, dim = rope.get("rope_theta", 10000.0), head_dim(config)
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    factors = []
    for freq in 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)):
        wavelength = 2 * math.pi / float(freq)
        if wavelength < old_context / high:
            factors.append(1.0)
        elif wavelength > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelength - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(factors, dtype=torch.float32)


def write_hparams(writer: gguf.GGUFWriter, config: Any, spec: ArchSpec) -> None:
    """The hyper-parameters llama.cpp (and transformers' GGUF reader) build the graph from."""
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    dim = head_dim(config)
    if dim != config.hidden_size // config.num_attention_heads or spec.arch in (
        gguf.MODEL_ARCH.GEMMA2,
        gguf.MODEL_ARCH.GEMMA3,
    ):
        writer.add_key_length(dim)
        writer.add_value_length(dim)
    if spec.arch == gguf.MODEL_ARCH.LLAMA:
        writer.add_rope_dimension_count(dim)
    rope = _rope(config)
    if rope.get("rope_theta") is not None:
        writer.add_rope_freq_base(rope["rope_theta"])
    rope_type = str(rope.get("rope_type") or "default").lower()
    if rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    elif rope_type == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(rope["factor"])
        writer.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
    elif rope_type not in ("default", "llama3"):  # llama3: the rope_freqs tensor carries it
        raise GgufArchError(f"rope_type {rope_type!r} is not written by prefalign's GGUF export")
    if spec.metadata is not None:
        spec.metadata(writer, config)
