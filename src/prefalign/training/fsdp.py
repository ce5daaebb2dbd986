"""train.fsdp: FSDP2 (torch's `fully_shard`) per decoder layer, applied by prefalign where accelerate does not.

accelerate applies FSDP from its own config (`distributed_type: FSDP`, `fsdp_version: 2`) on GPUs; on CPU
processes it does not shard at all. torch's `fully_shard` works on CPU with gloo, so a run with train.fsdp on
several processes that accelerate has not sharded is sharded here: each decoder layer (the model's
`_no_split_modules` classes) is one FSDP unit, and the scorer (whose forward runs the whole model, embedding
and LM head included) is the root. Every parameter becomes a DTensor holding 1/N of its rows on each process;
a layer's full weights exist only while it runs. The LoRA reference (the adapter switched off) is the same
sharded model, so it is sharded the same way and never trained.

After training `full_state_on_main` gathers the full weights on rank 0, which loads them into an unsharded copy
of the model: its answers, adapter, merged model and GGUF are made from the full state, written once.
"""

from __future__ import annotations

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
