"""The one registry of losses. Config validation, the CLI, the docs table and the tests read it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

# Tensors a loss may ask for by parameter name; every one is shaped [B] (one value per pair or example).
LOSS_INPUTS = {
    # paired: summed log-probs of each answer under the policy and the reference, and answer lengths in tokens
    "policy_chosen_logps": "log π(y_w|x), summed over the answer's tokens (LD-DPO: reweighted)",
    "policy_rejected_logps": "log π(y_l|x)",
    "ref_chosen_logps": "log π_ref(y_w|x)",
    "ref_rejected_logps": "log π_ref(y_l|x)",
    "chosen_lengths": "|y_w|, scored tokens",
    "rejected_lengths": "|y_l|",
    "chosen_logratios": "log π(y_w|x) − log π_ref(y_w|x)",
    "rejected_logratios": "log π(y_l|x) − log π_ref(y_l|x)",
    # the log-ratios through f_divergence_type's f' (equal to the log-ratios under reverse_kl)
    "chosen_scores": "f'(π/π_ref) of the chosen answer",
    "rejected_scores": "f'(π/π_ref) of the rejected answer",
    "margin": "the data's margin column (0 where absent)",
    # unpaired (KTO): one completion per example, its label, and a mismatched completion for the KL estimate
    "policy_logps": "log π(y|x) of each example's completion",
    "ref_logps": "log π_ref(y|x)",
    "policy_kl_logps": "log π(y'|x) of a completion from another example in the batch",
    "ref_kl_logps": "log π_ref(y'|x)",
    "labels": "True where the completion is desirable",
    "lengths": "|y|, scored tokens of each completion",
    # reward models: the scalar head's value at the end of each answer
    "reward_chosen": "r(x, y_w)",
    "reward_rejected": "r(x, y_l)",
}

# Hyper-parameters a loss may take (keyword-only parameters), each the `method.*` field of that name.
LOSS_HYPERPARAMS = (
    "beta",
    "label_smoothing",
    "discopop_tau",
    "gamma",
    "cpo_alpha",
    "orpo_lambda",
    "desirable_weight",
    "undesirable_weight",
    "lm_coef",
    "center_rewards_coefficient",
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
    length_normalised: bool = False  # compares per-token averages rather than summed log-probs
    per_pair: bool = True  # False: entry i is not pair i's loss (aot sorts the batch), so no per-pair weights
    # Checks the hyper-parameter values beyond their field limits; returns "key: problem" or None.
    check: Callable[[dict], str | None] | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(p for p in inspect.signature(self.fn).parameters if p in LOSS_INPUTS)

    @property
    def hyperparams(self) -> tuple[str, ...]:
        """Keyword-only parameters of the loss: the `method.*` fields it reads."""
        params = inspect.signature(self.fn).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


LOSSES: dict[str, LossSpec] = {}


def register(
    name: str,
    *,
    family: str,
    needs_reference: bool,
    paper: str,
    paired: bool = True,
    length_normalised: bool = False,
    per_pair: bool = True,
    check: Callable[[dict], str | None] | None = None,
):
    """Decorator: add a loss function to the registry under `name`.

    family: dpo (needs a reference), reference_free, unpaired, reward, or term (only added to another loss).
    """

    def wrap(fn: Callable[..., LossOutput]) -> Callable[..., LossOutput]:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} registered twice")
        _check_parameters(name, fn)
        LOSSES[name] = LossSpec(name, fn, family, needs_reference, paper, paired, length_normalised, per_pair, check)
        return fn

    return wrap


def _check_parameters(name: str, fn: Callable[..., LossOutput]) -> None:
    """A misspelt input or hyper-parameter fails here, when the loss module is imported, not at the first step."""
    for param in inspect.signature(fn).parameters.values():
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            if param.name not in LOSS_HYPERPARAMS:
                raise ValueError(
                    f"loss {name!r}: keyword-only parameter {param.name!r} is not a hyper-parameter "
                    f"(LOSS_HYPERPARAMS: {', '.join(LOSS_HYPERPARAMS)})"
                )
        elif param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ValueError(f"loss {name!r}: *{param.name} cannot be matched to inputs; name each input")
        elif param.name not in LOSS_INPUTS:
            raise ValueError(
                f"loss {name!r}: parameter {param.name!r} is not a loss input (LOSS_INPUTS: {', '.join(LOSS_INPUTS)}); "
                "hyper-parameters go after `*`"
            )


def compute_loss(spec: LossSpec, tensors: dict[str, torch.Tensor], hyperparams: dict) -> LossOutput:
    """Call `spec.fn` with the tensors it names and the hyper-parameters it declares.

    An input with a default (bradley_terry's chosen log-probs, used only when lm_coef > 0) may be absent.
    """
    params = inspect.signature(spec.fn).parameters
    missing = [n for n in spec.inputs if n not in tensors and params[n].default is inspect.Parameter.empty]
    if missing:
        raise ValueError(f"loss {spec.name!r} needs {', '.join(missing)}, which this run does not compute")
    kwargs = {name: tensors[name] for name in spec.inputs if name in tensors}
    kwargs.update({name: hyperparams[name] for name in spec.hyperparams if name in hyperparams})
    return spec.fn(**kwargs)
