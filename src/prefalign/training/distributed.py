"""Several processes on one run: make them one group, on GPUs or on CPUs.

`torchrun --nproc_per_node N` and `accelerate launch --multi_gpu --num_processes N` start N processes and set
WORLD_SIZE. On a machine without an accelerator, accelerate does not form a process group from that (each
process's Accelerator sees no GPU and runs alone, DistributedType.NO): N unrelated copies would train into one
run directory. Told to use the CPU (ACCELERATE_USE_CPU), the same processes form a gloo group (MULTI_CPU).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from prefalign.config import ConfigError


def launched_processes() -> int:
    """How many processes the launcher started (WORLD_SIZE; 1 when not launched by one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def deepspeed_launched() -> bool:
    """`accelerate launch` with a DeepSpeed config (`distributed_type: DEEPSPEED`) sets ACCELERATE_USE_DEEPSPEED."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def use_cpu_group_if_needed() -> tuple[bool, str | None]:
    """Before accelerate's state exists: (cpu, backend) for PartialState and Accelerator, so that processes
    launched together on a machine without an accelerator train as one gloo group on the CPU.

    accelerate turns DeepSpeed off when told cpu=True, and without it forms no group on a CPU-only machine; given
    the gloo backend (and cpu=False) it lets DeepSpeed form the group, and DeepSpeed's CPU accelerator runs on
    gloo when Intel's oneCCL bindings are absent (deepspeed/accelerator/cpu_accelerator.py, 0.19.8). Other runs
    are told to use the CPU (ACCELERATE_USE_CPU), which accelerate turns into MULTI_CPU over gloo."""
    if launched_processes() <= 1 or torch.accelerator.is_available():
        return False, None
    if deepspeed_launched():
        return False, "gloo"
    os.environ["ACCELERATE_USE_CPU"] = "true"
    return True, None


def unwrap_prepared(accelerator, module: torch.nn.Module) -> torch.nn.Module:
    """The module inside what accelerate.prepare wrapped it in (DDP, FSDP, torch.compile, DeepSpeed's engine).

    accelerate's unwrap_model imports all of DeepSpeed whenever it is installed, to test for its engine: measured
    2026-12-03 on this machine, about 2-3 s and 140 MiB for every run that does not use it (and mlflow, when it
    is installed, through DeepSpeed's autotuner). Only a DeepSpeed run asks accelerate."""
    if accelerator.distributed_type.value == "DEEPSPEED":
        return accelerator.unwrap_model(module)
    from torch.distributed.fsdp import FullyShardedDataParallel

    module = getattr(module, "_orig_mod", module)
    while isinstance(module, torch.nn.parallel.DistributedDataParallel | FullyShardedDataParallel):
        module = module.module
    return module


def fsdp_requested(fsdp: bool) -> bool:
    """train.fsdp, or an accelerate config with `distributed_type: FSDP` (`accelerate launch` then sets
    ACCELERATE_USE_FSDP for the processes, whether or not accelerate goes on to shard them)."""
    return fsdp or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def memory_sharding(fsdp: bool, accelerator) -> str:
    """What each process holds a share of, for the memory plan (memory.estimate.SHARDED): parameters under FSDP
    (accelerate's, or prefalign's train.fsdp on several processes) and ZeRO-3, gradients under ZeRO-2, the
    optimizer state under ZeRO-1, none otherwise."""
    from prefalign.training.deepspeed_zero import zero_stage

    stage = zero_stage(accelerator)
    if stage is not None:
        return {0: "none", 1: "optimizer", 2: "gradients", 3: "parameters"}[stage]
    if accelerator.num_processes > 1 and (fsdp_requested(fsdp) or accelerator.distributed_type.value == "FSDP"):
        return "parameters"
    return "none"


def check_one_group(num_processes: int) -> None:
    """A config error when the launched processes did not form one group (each would train on its own)."""
    launched = launched_processes()
    if num_processes != launched:
        raise ConfigError(
            f"launched as {launched} processes (WORLD_SIZE={launched}), but they do not form one group (each sees "
            f"{num_processes}); launch with `torchrun --nproc_per_node {launched} -m prefalign train CONFIG` or "
            f"`accelerate launch --multi_gpu --num_processes {launched} -m prefalign train CONFIG`"
        )


def gather_rows(accelerator) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function that concatenates a [n] tensor of every process (in rank order; n may differ by process).

    Every process must call it the same number of times: the loop calls it once per micro-batch, and every
    process runs the same number of micro-batches (loop.micro_batches).
    """

    def gather(values: torch.Tensor) -> torch.Tensor:
        sizes = accelerator.gather(torch.tensor([len(values)], device=values.device)).tolist()
        padded = accelerator.gather(accelerator.pad_across_processes(values.contiguous(), dim=0))
        width = max(sizes)
        return torch.cat([padded[rank * width : rank * width + size] for rank, size in enumerate(sizes)])

    return gather


def distribution(accelerator, sharding: str | None = None) -> dict:
    """How the run was distributed, for result.json and the model card: accelerate's distributed type (NO,
    MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED), the processes, the process group's backend and how weights were
    sharded (`sharding` names prefalign's own, e.g. FSDP2 applied on CPU)."""
    state = accelerator.state
    kind = state.distributed_type.value
    if sharding is None:
        sharding = "none (every process holds the whole model)"
        if kind == "FSDP":
            sharding = f"FSDP{getattr(state.fsdp_plugin, 'fsdp_version', 1)} (accelerate)"
        elif kind == "DEEPSPEED":
            sharding = f"DeepSpeed ZeRO-{state.deepspeed_plugin.zero_stage}"
    return {
        "type": kind,
        "processes": accelerator.num_processes,
        "backend": getattr(state, "backend", None) or "none",
        "sharding": sharding,
    }
