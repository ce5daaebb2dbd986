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

    return write_atomically(target, write)


def merged_model(model: nn.Module) -> nn.Module:
    """The policy as a plain transformers model: LoRA folded into the weights (this consumes the PEFT wrapper)."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload(adapter_names=["default"])
    return model


def save_merged(model: nn.Module, tokenizer: Any, target: Path) -> Path:
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return write_atomically(target, write)
