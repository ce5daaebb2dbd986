"""Log-probs -> per-pair losses and the metrics users know from TRL, shared by training and evaluation."""

from __future__ import annotations

import torch

from prefalign.logps import SequenceLogps
from prefalign.losses import LossSpec, compute_loss


def pair_losses(
    spec: LossSpec, hyperparams: dict, policy: SequenceLogps, ref: SequenceLogps | None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-pair losses [B] and per-pair metrics (each [B]; averaging them over pairs gives TRL's values)."""
    tensors = {
        "policy_chosen_logps": policy.chosen_logps,
        "policy_rejected_logps": policy.rejected_logps,
        "chosen_lengths": policy.chosen_lengths,
        "rejected_lengths": policy.rejected_lengths,
    }
    if ref is not None:
        tensors["ref_chosen_logps"] = ref.chosen_logps
        tensors["ref_rejected_logps"] = ref.rejected_logps
    out = compute_loss(spec, tensors, hyperparams)
    chosen_avg = policy.chosen_logps.detach() / policy.chosen_lengths.clamp(min=1)
    rejected_avg = policy.rejected_logps.detach() / policy.rejected_lengths.clamp(min=1)
    metrics = {
        "rewards/chosen": out.chosen_rewards,
        "rewards/rejected": out.rejected_rewards,
        "rewards/accuracies": (out.chosen_rewards > out.rejected_rewards).float(),
        "rewards/margins": out.chosen_rewards - out.rejected_rewards,
        "logps/chosen": policy.chosen_logps.detach(),
        "logps/rejected": policy.rejected_logps.detach(),
        # Does the model itself prefer the chosen answer, per token (independent of the reference)?
        "preference_accuracy": (chosen_avg > rejected_avg).float(),
        **{name: value.detach() for name, value in out.metrics.items()},
    }
    return out.losses, metrics
