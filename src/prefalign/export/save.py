"""Write what users load: a PEFT adapter and a merged transformers model (safetensors + tokenizer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from prefalign.atomic import write_atomically


def save_adapter(model: nn.Module, tokenizer: Any, target: Path) -> Path:
    """The trained LoRA adapter (PeftModel.from_pretrained loads it); the reference adapter is left out."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, selected_adapters=["default"])
        tokenizer.save_pretrained(tmp)

    return write_atomically(target, write, clear_stale=True)


def merged_model(model: nn.Module, dtype: Any = None) -> nn.Module:
    """The policy as a plain transformers model: LoRA folded into the weights (this consumes the PEFT wrapper).

    A quantised base is dequantised first and the adapter added in 16/32 bits (`export.merge.merge_quantized`).
    """
    from prefalign.export.merge import merge_adapter  # here: merge.py writes through save_merged below

    return merge_adapter(model, dtype)


def save_merged(model: nn.Module, tokenizer: Any, target: Path) -> Path:
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return write_atomically(target, write, clear_stale=True)
