"""train.optimizer: the optimizer a run names, built from the table in prefalign.optimizers.

Names follow the ones Unsloth and Axolotl configs use (`adamw_8bit`, `paged_adamw_8bit`, ...); transformers'
`TrainingArguments.optim` spellings (`adamw_torch`, `adamw_bnb_8bit`, ...) are accepted as aliases, so a config
carried over from TRL keeps working. The 8-bit and paged optimizers come from bitsandbytes; paging moves
optimizer state between GPU and CPU memory under pressure, which means nothing without CUDA, so a paged
optimizer on a machine without CUDA is refused with the unpaged one to use instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from prefalign.optimizers import canonical_name, unavailable_reason


def _bnb(class_name: str) -> Callable[..., torch.optim.Optimizer]:
    import bitsandbytes.optim

    return getattr(bitsandbytes.optim, class_name)


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: Any) -> torch.optim.Optimizer:
    """The optimizer `cfg.optimizer` names (a TrainConfig), over `params`, at `cfg.lr` and `cfg.weight_decay`.

    bitsandbytes keeps the state of tensors under 4096 elements in 32 bits (its `min_8bit_size`); larger
    ones get 8-bit blockwise state. Its state dict round-trips through `torch.save`, so checkpoints resume.
    """
    name = canonical_name(cfg.optimizer)
    reason = unavailable_reason(name)
    if reason:
        raise ValueError(f"train.optimizer: {reason}")
    params = list(params)
    lr, decay = cfg.lr, cfg.weight_decay
    if name == "adamw":
        on_cuda = bool(params) and params[0].is_cuda
        # fused is one kernel per step on CUDA; foreach batches the elementwise ops elsewhere.
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay, **({"fused": True} if on_cuda else {}))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=decay)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        # The run's schedule drives the lr, so Adafactor's own relative step and parameter scaling are off.
        return Adafactor(params, lr=lr, weight_decay=decay, scale_parameter=False, relative_step=False)
    classes = {
        "adamw_8bit": "AdamW8bit",
        "paged_adamw_8bit": "PagedAdamW8bit",
        "paged_adamw_32bit": "PagedAdamW32bit",
        "lion_8bit": "Lion8bit",
    }
    return _bnb(classes[name])(params, lr=lr, weight_decay=decay)
