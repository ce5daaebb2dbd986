"""Several processes on one run: make them one group, on GPUs or on CPUs.

`torchrun --nproc_per_node N` and `accelerate launch --multi_gpu --num_processes N` start N processes and set
WORLD_SIZE. On a machine without an accelerator, accelerate does not form a process group from that (each
process's Accelerator sees no GPU and runs alone, DistributedType.NO): N unrelated copies would train into one
run directory. Told to use the CPU (ACCELERATE_USE_CPU), the same processes form a gloo group (MULTI_CPU).
"""

from __future__ import annotations

import os

import torch

from prefalign.config import ConfigError


def launched_processes() -> int:
    """How many processes the launcher started (WORLD_SIZE; 1 when not launched by one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def use_cpu_group_if_needed() -> bool:
    """Before accelerate's state exists: processes launched together on a machine without an accelerator train
    as one gloo group on the CPU. Returns whether it asked for that."""
    if launched_processes() > 1 and not torch.accelerator.is_available():
        os.environ["ACCELERATE_USE_CPU"] = "true"
        return True
    return False


def check_one_group(num_processes: int) -> None:
    """A config error when the launched processes did not form one group (each would train on its own)."""
    launched = launched_processes()
    if num_processes != launched:
        raise ConfigError(
            f"launched as {launched} processes (WORLD_SIZE={launched}), but they do not form one group (each sees "
            f"{num_processes}); launch with `torchrun --nproc_per_node {launched} -m prefalign train CONFIG` or "
            f"`accelerate launch --multi_gpu --num_processes {launched} -m prefalign train CONFIG`"
        )
