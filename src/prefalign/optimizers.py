"""train.optimizer: the optimizers users name, in one table (a leaf: config validation reads it).

Names follow the ones Unsloth and Axolotl configs use (`adamw_8bit`, `paged_adamw_8bit`, ...); transformers'
`TrainingArguments.optim` spellings (`adamw_torch`, `adamw_bnb_8bit`, ...) are accepted as aliases, so a config
carried over from TRL keeps working. The 8-bit and paged optimizers come from bitsandbytes; paging moves
optimizer state between GPU and CPU memory under pressure, which means nothing without CUDA, so a paged
optimizer on a machine without CUDA is refused with the unpaged one to use instead.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    "adamw_hf": "adamw",
    "adamw_bnb": "adamw_8bit",
    "adamw_bnb_8bit": "adamw_8bit",
    "adamw_8bit": "adamw_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit",
    "paged_adamw_32bit": "paged_adamw_32bit",
    "paged_adamw": "paged_adamw_32bit",
    "lion_8bit": "lion_8bit",
    "paged_lion_8bit": "lion_8bit",  # as the dialect import always read it: the unpaged 8-bit Lion
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
