"""Write what users load: a PEFT adapter and a merged transformers model (safetensors + tokenizer)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn


def _atomic_dir(target: Path, write: Callable[[Path], None]) -> Path:
    """Write into a temp directory beside `target`, then rename it into place.

    A process killed mid-write leaves a `.tmp-<name>-*` directory, never a `target` that looks complete; the
    next save of the same target (a resumed run) removes such leftovers first.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".tmp-{target.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        write(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def save_adapter(model: nn.Module, tokenizer: Any, target: Path) -> Path:
    """The trained LoRA adapter (PeftModel.from_pretrained loads it); the reference adapter is left out."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, selected_adapters=["default"])
        tokenizer.save_pretrained(tmp)

    return _atomic_dir(target, write)


def merged_model(model: nn.Module) -> nn.Module:
    """The policy as a plain transformers model: LoRA folded into the weights (this consumes the PEFT wrapper)."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload(adapter_names=["default"])
    return model


def save_merged(model: nn.Module, tokenizer: Any, target: Path) -> Path:
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _atomic_dir(target, write)
