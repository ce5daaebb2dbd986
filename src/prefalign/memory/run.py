"""The memory plan of a run from its config alone, resolving what the run would resolve (precision, device,
reference mode): what `prefalign plan` prints, and the function the run's plan stage calls."""

from __future__ import annotations

from typing import Any

from prefalign.config import RunConfig
from prefalign.memory.plan import RunPlan, plan_run


def run_device() -> Any:
    """The device a single-process run trains on (accelerate's choice: the GPU when there is one)."""
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def plan_for_config(
    config: RunConfig, train, pad_id: int, device: Any = None, world: int = 1, **overrides: Any
) -> RunPlan:
    """`plan_run` with the precision and reference mode the run would resolve on `device` (default: this machine's)."""
    import torch

    from prefalign.training.precision import resolve_precision

    device = torch.device(device) if device is not None else run_device()
    precision, _ = resolve_precision(config.train.mixed_precision, device)
    mode = config.resolved_reference_mode(len(train), world)
    return plan_run(config, train, pad_id, precision=precision, reference_mode=mode, device=device, world=world,
                    **overrides)  # fmt: skip
