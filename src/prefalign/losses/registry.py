"""The one registry of losses. Config validation, the CLI, the docs table and the tests read it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

# Tensors a loss may ask for by parameter name; every one is shaped [B] (one value per pair).
LOSS_INPUTS = (
    "policy_chosen_logps",
    "policy_rejected_logps",
    "ref_chosen_logps",
    "ref_rejected_logps",
    "chosen_lengths",
    "rejected_lengths",
)


@dataclass(frozen=True)
class LossOutput:
    """What a loss returns: per-pair losses and implicit rewards, shaped [B].

    A term that defines no reward (the NLL term `sft`) leaves the rewards None.
    """

    losses: torch.Tensor
    chosen_rewards: torch.Tensor | None = None
    rejected_rewards: torch.Tensor | None = None
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class LossSpec:
    name: str
    fn: Callable[..., LossOutput]
    family: str
    needs_reference: bool
    paper: str
    paired: bool = True

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(p for p in inspect.signature(self.fn).parameters if p in LOSS_INPUTS)

    @property
    def hyperparams(self) -> tuple[str, ...]:
        """Keyword-only parameters of the loss: the `method.*` fields it reads."""
        params = inspect.signature(self.fn).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


LOSSES: dict[str, LossSpec] = {}


def register(name: str, *, family: str, needs_reference: bool, paper: str, paired: bool = True):
    """Decorator: add a loss function to the registry under `name`."""

    def wrap(fn: Callable[..., LossOutput]) -> Callable[..., LossOutput]:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} registered twice")
        LOSSES[name] = LossSpec(name, fn, family, needs_reference, paper, paired)
        return fn

    return wrap


def compute_loss(spec: LossSpec, tensors: dict[str, torch.Tensor], hyperparams: dict) -> LossOutput:
    """Call `spec.fn` with the tensors it names and the hyper-parameters it declares."""
    kwargs = {name: tensors[name] for name in spec.inputs}
    kwargs.update({name: hyperparams[name] for name in spec.hyperparams if name in hyperparams})
    return spec.fn(**kwargs)
