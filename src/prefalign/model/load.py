"""Load the tokenizer and the policy (base model, LoRA adapter or a saved adapter to continue)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prefalign.config import ModelConfig
from prefalign.model.builtin import builtin_gguf, converted_gguf, hub_id

log = logging.getLogger(__name__)

REFERENCE_ADAPTER = "reference"


def resolve_path(path: str) -> str:
    """A directory or hub id that `from_pretrained` reads: builtins and .gguf files become cached dirs."""
    if path.startswith("builtin:"):
        return str(converted_gguf(builtin_gguf(path.removeprefix("builtin:"))))
    if path.endswith(".gguf"):
        gguf = Path(path)
        if not gguf.is_file():
            raise ValueError(f"model.path: file not found: {path}")
        return str(converted_gguf(gguf))
    return path  # a local directory or a hub id: the ordinary from_pretrained path


def base_model_name(path: str) -> str:
    """What the model card names as base model: the hub id when one is known."""
    if path.startswith("builtin:"):
        return hub_id(path.removeprefix("builtin:")) or path
    return path


def _dtype(name: str) -> Any:
    return "auto" if name == "auto" else getattr(torch, name)


def load_tokenizer(config: ModelConfig) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        resolve_path(config.path), revision=config.revision, trust_remote_code=config.trust_remote_code
    )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is masked; any id does
    return tokenizer


def load_base(config: ModelConfig, path: str | None = None) -> nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        resolve_path(path or config.path),
        revision=config.revision,
        dtype=_dtype(config.dtype),
        trust_remote_code=config.trust_remote_code,
    )


def attach_lora(model: nn.Module, config: ModelConfig) -> nn.Module:
    """Wrap `model` for training: a new LoRA adapter, a saved one to continue, or nothing (full)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if config.adapter:
        if config.lora is None:
            # Full fine-tuning from an SFT adapter: fold it into the weights and train them all.
            return PeftModel.from_pretrained(model, config.adapter).merge_and_unload()
        # Continue training the SFT adapter; a frozen copy of it is the reference (DPO's π_ref is the SFT model).
        peft_model = PeftModel.from_pretrained(model, config.adapter, is_trainable=True)
        peft_model.load_adapter(config.adapter, adapter_name=REFERENCE_ADAPTER, is_trainable=False)
        peft_model.set_adapter("default")
        return peft_model
    if config.lora is None:
        return model
    lora = config.lora
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config)


def load_policy(config: ModelConfig) -> nn.Module:
    return attach_lora(load_base(config), config)


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}
