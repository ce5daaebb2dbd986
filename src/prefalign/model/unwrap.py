"""The transformers model inside a PEFT wrapper: config, heads and attention settings live on it."""

from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers model under a PEFT wrapper (LoRA layers stay in place inside it); others as they are."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model
