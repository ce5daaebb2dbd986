"""How a batch's layout reaches the model's attention.

The masked layouts (data/layout.py) describe their attention as `Segments`: per row, blocks of positions
that attend causally to themselves and fully to their prompt. What the model receives depends on its
attention implementation (`model.attention`):

- sdpa (transformers' default): prefalign's segment attention, registered with transformers'
  `AttentionInterface` as `prefalign_sdpa`. Per row, one SDPA call per block: `is_causal` for a group's
  prompt and first answer, a lower-right causal mask for each later answer against [prompt; itself]. No
  score between two answers, or between two groups of a packed row, is ever computed, so a row may hold the
  whole batch (`ONE_ROW`: no padding at all). A dense mask would cost T² per row, and SDPA's CPU kernel
  skips no masked block of it. Batches without segments (padded rows, generation) run transformers' SDPA.
- flex_attention: a FlexAttention `BlockMask` built from the segments (a GPU path: torch has no
  FlexAttention backward on CPU).
- eager: the dense [R, 1, T, T] mask, made additive.
- flash-attention and the others: padded rows only.

Sliding-window layers are part of the masks transformers builds, not of ours: those models train padded.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from prefalign.data.layout import ONE_ROW, Segments
from prefalign.model.unwrap import unwrap
from prefalign.names import ConfigError

SEGMENT_ATTENTION = "prefalign_sdpa"
# Implementations that apply a masked layout's attention: ours, FlexAttention (block masks) and those that
# apply an arbitrary dense 4-D mask given as a tensor.
_LAYOUT_ATTENTION = (SEGMENT_ATTENTION, "sdpa", "flex_attention", "eager")
# Those that compute no score a block mask excludes: a wider packed row costs them nothing.
_SPARSE_ATTENTION = (SEGMENT_ATTENTION, "flex_attention")


def attention_implementation(model: nn.Module) -> str:
    """The attention implementation a (possibly PEFT-wrapped) transformers model runs."""
    return str(getattr(unwrap(model).config, "_attn_implementation", None) or "eager")


def sliding_window(model: nn.Module) -> bool:
    """Whether some layer attends through a sliding window, which a layout's mask given as it is would not apply."""
    config = unwrap(model).config.get_text_config()
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return any("sliding" in kind for kind in layer_types)
    return getattr(config, "sliding_window", None) is not None and getattr(config, "use_sliding_window", True)


def takes_layouts(model: nn.Module) -> bool:
    """Whether the model's attention applies a masked layout exactly as padded rows would be attended."""
    return attention_implementation(model) in _LAYOUT_ATTENTION and not sliding_window(model)


def use_segment_attention(model: nn.Module) -> None:
    """Switch an SDPA model to the segment attention, in place. Batches without segments still run transformers'
    SDPA, so generation and padded rows are unchanged; the implementation name is not saved with the model."""
    base = unwrap(model)
    if attention_implementation(base) == "sdpa" and not sliding_window(base):
        _register()
        base.set_attn_implementation(SEGMENT_ATTENTION)


def resolve_layout(layout: str, model: nn.Module) -> str:
    """`data.layout` for `model`: auto is prefix_shared_packed where the attention applies a masked layout (SDPA,
    FlexAttention, eager), else padded (flash-attention, sliding-window layers).

    prefix_shared_packed runs each prompt once and no padding (benchmarks/speed.py measures what it saves against
    TRL's padded rows). An explicit masked layout on an attention that cannot apply it is an error.
    """
    if layout == "auto":
        return "prefix_shared_packed" if takes_layouts(model) else "padded"
    if layout != "padded" and not takes_layouts(model):
        why = (
            "it attends through a sliding window, which transformers does not apply to a given mask"
            if sliding_window(model)
            else f"its attention implementation {attention_implementation(model)!r} does not take one "
            "(sdpa, flex_attention and eager do)"
        )
        raise ConfigError(
            f"data.layout: {layout} needs an attention that applies its mask, and this model has none: {why}; "
            "use data.layout: padded (or auto)"
        )
    return layout


def resolve_pack_length(pack_length: int | None, model: nn.Module) -> int | None:
    """data.pack_length for `model`: as given, else the whole batch in one row where the attention skips masked
    blocks, else None (rows as long as the batch's longest group: a dense mask costs T² per row)."""
    if pack_length is not None:
        return pack_length
    return ONE_ROW if attention_implementation(model) in _SPARSE_ATTENTION else None


def attention_inputs(model: nn.Module, token_mask: torch.Tensor, segments: Segments | None) -> dict:
    """The backbone's attention arguments for a batch: its padding mask, or its segments as the model's attention
    reads them (see the module docstring)."""
    if segments is None:
        return {"attention_mask": token_mask}
    implementation = attention_implementation(model)
    device = token_mask.device
    if implementation == SEGMENT_ATTENTION:
        # A 4-D mask tells transformers the mask is prepared (it builds none); the segment attention reads `segments`.
        return {"attention_mask": torch.ones((len(segments.rows), 1, 1, 1), dtype=torch.bool, device=device),
                "segments": segments}  # fmt: skip
    if implementation == "flex_attention":
        return {"attention_mask": flex_block_mask(segments, device)}
    return {"attention_mask": as_model_reads(model, segments.dense_mask(device))}


def as_model_reads(model: nn.Module, mask: torch.Tensor) -> torch.Tensor:
    """A padding mask, or a dense [R, 1, T, T] boolean mask made additive (0 / min) for eager attention, which adds
    the mask to the scores; SDPA takes the boolean mask (True = attend) as it is."""
    if mask.dim() != 4 or mask.dtype != torch.bool or attention_implementation(model) != "eager":
        return mask
    dtype = unwrap(model).get_input_embeddings().weight.dtype
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def flex_block_mask(segments: Segments, device: torch.device | str):
    """The segments as a FlexAttention BlockMask (FlexAttention skips the blocks it leaves out)."""
    from torch.nn.attention.flex_attention import create_block_mask

    block_start, prompt_start, prompt_end = segments.bounds(device)

    def visible(b, h, q, k):
        own = (k >= block_start[b, q]) & (k <= q)
        return own | ((k >= prompt_start[b, q]) & (k < prompt_end[b, q]))

    rows, width = len(segments.rows), segments.width
    return create_block_mask(visible, rows, None, width, width, device=device)


def _segment_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    segments: Segments | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' attention interface: [R, H, T, D] query, [R, Hkv, T, D] key and value -> [R, T, H, D]."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    unsupported = [name for name in ("sliding_window", "softcap", "s_aux") if kwargs.get(name) is not None]
    if unsupported:
        raise ValueError(f"segment attention: this model's attention uses {', '.join(unsupported)}; train it padded")
    groups = getattr(module, "num_key_value_groups", 1)
    return _attend_blocks(query, key, value, segments, dropout, scaling, groups).transpose(1, 2).contiguous(), None


@torch.compiler.disable  # a Python loop over the batch's blocks: compiled, every new batch would recompile
def _attend_blocks(query, key, value, segments: Segments, dropout: float, scale: float | None, groups: int):
    rows = []
    for r, blocks in enumerate(segments.rows):
        sizes = [block.end - block.start for block in blocks]
        sizes.append(segments.width - sum(sizes))  # padding
        q_row, k_row, v_row = query[r : r + 1], key[r : r + 1], value[r : r + 1]
        pieces = zip(q_row.split(sizes, 2), k_row.split(sizes, 2), v_row.split(sizes, 2), strict=True)
        out = []
        for block, (q, k, v) in zip(blocks, pieces, strict=False):
            if block.prompt_end > block.prompt_start:  # an answer after the first: [prompt; itself]
                span = block.prompt_end - block.prompt_start
                k = torch.cat([k_row.narrow(2, block.prompt_start, span), k], 2)
                v = torch.cat([v_row.narrow(2, block.prompt_start, span), v], 2)
            out.append(_causal(q, k, v, dropout, scale, groups))
        if sizes[-1]:  # padding is never read: any finite value does
            out.append(q_row.new_zeros(1, q_row.shape[1], sizes[-1], v_row.shape[-1]))
        rows.append(torch.cat(out, 2))
    return torch.cat(rows, 0)


def _causal(q, k, v, dropout: float, scale: float | None, groups: int) -> torch.Tensor:
    """Queries q are the last q.shape[2] of the keys: query i sees keys 0 .. i + (keys − queries) (lower-right)."""
    length, keys = q.shape[2], k.shape[2]
    gqa = groups > 1
    if length == keys:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=scale, enable_gqa=gqa)
    if q.device.type == "cpu":  # SDPA's CPU kernel takes a boolean mask with grouped heads
        mask = torch.ones(length, keys, dtype=torch.bool, device=q.device).tril(keys - length)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scale, enable_gqa=gqa)
    return _causal_bias(q, k, v, dropout, scale, groups)


def _causal_bias(q, k, v, dropout: float, scale: float | None, groups: int) -> torch.Tensor:
    """_causal off the CPU: the lower-right causal bias runs flash or memory-efficient kernels, which want the heads
    repeated. The bias dispatches in __torch_function__, before autocast casts SDPA's inputs: under autocast the
    rotated query and key arrive in float32 and the value in the autocast dtype, which it refuses ("Expected
    query, key, and value to have the same dtype", seen on an H200 on 2026-12-04), so they are cast here."""
    from torch.nn.attention.bias import causal_lower_right

    device = q.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    if groups > 1:
        k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    length, keys = q.shape[2], k.shape[2]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(length, keys), dropout_p=dropout,
                                          scale=scale)  # fmt: skip


@functools.cache
def _register() -> None:
    """Make `prefalign_sdpa` a transformers attention implementation, with SDPA's mask for the batches without
    segments (transformers builds no mask at all for an implementation it has no mask function for); once."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(SEGMENT_ATTENTION, _segment_attention)
    AttentionMaskInterface.register(SEGMENT_ATTENTION, sdpa_mask)
