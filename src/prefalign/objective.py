"""Log-probs -> per-pair losses and the metrics users know from TRL, shared by training and evaluation."""

from __future__ import annotations

import torch

from prefalign.logps import SequenceLogps
from prefalign.losses import LossSpec, compute_loss


def pair_losses(
    terms: list[tuple[LossSpec, float]], hyperparams: dict, policy: SequenceLogps, ref: SequenceLogps | None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-pair losses [B] (the weighted sum of the terms) and per-pair metrics.

    Each metric is [B]; averaging over pairs gives TRL's values. Rewards come from the first term
    that defines them.
    """
    tensors = {
        "policy_chosen_logps": policy.chosen_logps,
        "policy_rejected_logps": policy.rejected_logps,
        "chosen_lengths": policy.chosen_lengths,
        "rejected_lengths": policy.rejected_lengths,
    }
    if ref is not None:
        tensors["ref_chosen_logps"] = ref.chosen_logps
        tensors["ref_rejected_logps"] = ref.rejected_logps
    outputs = [(compute_loss(spec, tensors, hyperparams), weight) for spec, weight in terms]
    losses = sum(weight * out.losses for out, weight in outputs)
    rewarded = next((out for out, _ in outputs if out.chosen_rewards is not None), None)
    zeros = torch.zeros_like(policy.chosen_logps.detach())
    chosen_rewards = rewarded.chosen_rewards if rewarded else zeros
    rejected_rewards = rewarded.rejected_rewards if rewarded else zeros
    extra = {name: value.detach() for out, _ in outputs for name, value in out.metrics.items()}
    if len(terms) > 1:
        extra.update(
            {f"loss/{spec.name}": out.losses.detach() for (spec, _), (out, _) in zip(terms, outputs, strict=True)}
        )
    chosen_avg = policy.chosen_logps.detach() / policy.chosen_lengths.clamp(min=1)
    rejected_avg = policy.rejected_logps.detach() / policy.rejected_lengths.clamp(min=1)
    metrics = {
        "rewards/chosen": chosen_rewards,
        "rewards/rejected": rejected_rewards,
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float(),
        "rewards/margins": chosen_rewards - rejected_rewards,
        "logps/chosen": policy.chosen_logps.detach(),
        "logps/rejected": policy.rejected_logps.detach(),
        # Does the model itself prefer the chosen answer, per token (independent of the reference)?
        "preference_accuracy": (chosen_avg > rejected_avg).float(),
        **extra,
    }
    return losses, metrics
