"""train.optimizer: the optimizers users name, built from one table.

Names follow the ones Unsloth and Axolotl configs use (`adamw_8bit`, `paged_adamw_8bit`, ...); transformers'
`TrainingArguments.optim` spellings (`adamw_torch`, `adamw_bnb_8bit`, ...) are accepted as aliases, so a config
carried over from TRL keeps working. The 8-bit and paged optimizers come from bitsandbytes; paging moves
optimizer state between GPU and CPU memory under pressure, which means nothing without CUDA, so a paged
optimizer on a machine without CUDA is refused with the unpaged one to use instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    description: str
    needs_bitsandbytes: bool = False
    paged: bool = False
    unpaged: str | None = None  # for a paged optimizer: the same one without paging


OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        OptimizerSpec("adamw", "torch AdamW (fused on CUDA, foreach elsewhere); the default"),
        OptimizerSpec("adamw_8bit", "bitsandbytes AdamW8bit: 8-bit blockwise optimizer state (~75% less)", True),
        OptimizerSpec("paged_adamw_8bit", "bitsandbytes PagedAdamW8bit (CUDA only)", True, True, "adamw_8bit"),
        OptimizerSpec("paged_adamw_32bit", "bitsandbytes PagedAdamW32bit (CUDA only)", True, True, "adamw"),
        OptimizerSpec("lion_8bit", "bitsandbytes Lion8bit: one 8-bit moment (use a lr ~3-10x lower)", True),
        OptimizerSpec("adafactor", "transformers Adafactor with the run's lr (no relative step, no scaling)"),
        OptimizerSpec("sgd", "torch SGD, no momentum"),
    )
}

# transformers' TrainingArguments.optim spellings for the same optimizers.
ALIASES: dict[str, str] = {
    "adamw_torch": "adamw",
    "adamw_torch_fused": "adamw",
    "adamw_bnb_8bit": "adamw_8bit",
    "adamw_8bit": "adamw_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit",
    "paged_adamw_32bit": "paged_adamw_32bit",
    "paged_adamw": "paged_adamw_32bit",
    "lion_8bit": "lion_8bit",
    "adafactor": "adafactor",
    "sgd": "sgd",
}


def canonical_name(name: str) -> str:
    """The table's name for `name` (an alias maps to it); ValueError names the known ones."""
    if name in OPTIMIZERS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)} (or transformers' optim names "
                     f"{', '.join(a for a in ALIASES if a not in OPTIMIZERS)})")  # fmt: skip


def unavailable_reason(name: str, cuda: bool | None = None) -> str | None:
    """Why optimizer `name` (canonical) cannot run here, with the fix; None when it can."""
    spec = OPTIMIZERS[name]
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if spec.paged and not cuda:
        return (
            f"{name} pages optimizer state between GPU and CPU memory, and this machine has no CUDA GPU; "
            f"use {spec.unpaged} (the same optimizer without paging)"
        )
    if spec.needs_bitsandbytes:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            return f"{name} comes from bitsandbytes, which is not installed; pip install 'prefalign[quant]'"
    return None


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
