"""train.fsdp: FSDP2 (torch's `fully_shard`) per decoder layer, applied by prefalign where accelerate does not.

accelerate applies FSDP from its own config (`distributed_type: FSDP`, `fsdp_version: 2`) on GPUs; on CPU
processes it does not shard at all. torch's `fully_shard` works on CPU with gloo, so a run with train.fsdp on
several processes that accelerate has not sharded is sharded here: each decoder layer (the model's
`_no_split_modules` classes) is one FSDP unit, and the scorer (whose forward runs the whole model, embedding
and LM head included) is the root. Every parameter becomes a DTensor holding 1/N of its rows on each process;
a layer's full weights exist only while it runs. The LoRA reference (the adapter switched off) is the same
sharded model, so it is sharded the same way and never trained.

Checkpoints of a sharded run hold each process's shards of the trained parameters and optimizer state
(torch.distributed.checkpoint, `save_sharded`) beside the usual scheduler, RNG and data position.
After training `full_state_on_main` gathers the full weights on rank 0, which loads them into an unsharded copy
of the model: its answers, adapter, merged model and GGUF are made from the full state, written once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from prefalign.model.unwrap import unwrap
from prefalign.names import ConfigError


def decoder_layers(scorer: nn.Module) -> list[nn.Module]:
    """The modules FSDP shards one at a time: instances of the model's `_no_split_modules` classes."""
    base = unwrap(scorer.model)
    names = set(getattr(base, "_no_split_modules", None) or ())
    return [module for module in scorer.modules() if type(module).__name__ in names]


def shard_per_layer(scorer: nn.Module) -> int:
    """fully_shard every decoder layer, then the scorer as the root; returns how many layers were sharded."""
    from torch.distributed.fsdp import fully_shard

    layers = decoder_layers(scorer)
    if not layers:
        kind = type(unwrap(scorer.model)).__name__
        raise ConfigError(f"train.fsdp: {kind} names no decoder layer class (_no_split_modules) to shard by")
    for layer in layers:
        fully_shard(layer)
    fully_shard(scorer)
    return len(layers)


def sharded_layers(scorer: nn.Module) -> int:
    """How many decoder layers `shard_per_layer` sharded (0: the scorer is not sharded)."""
    from torch.distributed.fsdp import FSDPModule

    if not isinstance(scorer, FSDPModule):
        return 0
    return sum(isinstance(module, FSDPModule) for module in scorer.modules()) - 1


def full_state_on_main(scorer: nn.Module) -> dict[str, torch.Tensor]:
    """Every process: gather the sharded scorer's full state dict; rank 0 gets it (on the CPU), the others {}."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(scorer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_sharded(folder: Path, scorer: nn.Module, optimizer: torch.optim.Optimizer, trainable: Iterable[str]) -> None:
    """Every process: write its shards of the trained parameters and of the optimizer state to `folder` with
    torch.distributed.checkpoint (safetensors-free, but no pickled code: DCP's tensors and metadata)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    names = set(trainable)
    model = {name: value for name, value in get_model_state_dict(scorer).items() if name in names}
    dcp.save({"model": model, "optimizer": get_optimizer_state_dict(scorer, optimizer)}, checkpoint_id=folder)


def load_sharded(folder: Path, scorer: nn.Module, optimizer: torch.optim.Optimizer, trainable: Iterable[str]) -> None:
    """Every process: read its shards back (`save_sharded`; DCP re-shards for another process count)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    names = set(trainable)
    model = {name: value for name, value in get_model_state_dict(scorer).items() if name in names}
    state = {"model": model, "optimizer": get_optimizer_state_dict(scorer, optimizer)}
    dcp.load(state, checkpoint_id=folder)
    set_model_state_dict(scorer, state["model"], options=StateDictOptions(strict=False))
    set_optimizer_state_dict(scorer, optimizer, state["optimizer"])
