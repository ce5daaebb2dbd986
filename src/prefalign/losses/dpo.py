"""The DPO family: losses on the policy/reference log-ratios of the chosen and rejected answers."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prefalign.losses.registry import LossOutput, register


@register(
    "sigmoid",
    family="dpo",
    needs_reference=True,
    paper="Rafailov et al. 2023, Direct Preference Optimization, arXiv:2305.18290, eq. 7; "
    "label smoothing: Mitchell 2023, conservative DPO",
)
def sigmoid(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float,
    label_smoothing: float = 0.0,
) -> LossOutput:
    """DPO's Bradley–Terry loss on implicit rewards.

    h = (log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))
    L = −(1 − ε) · log σ(β·h) − ε · log σ(−β·h)

    ε = `label_smoothing` is the probability that a preference label is flipped (cDPO); ε = 0 is
    the paper's eq. 7. Rewards are β·(log π − log π_ref) for each answer.
    """
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    logits = beta * (chosen_logratios - rejected_logratios)
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return LossOutput(
        losses=losses,
        chosen_rewards=beta * chosen_logratios.detach(),
        rejected_rewards=beta * rejected_logratios.detach(),
    )


@register(
    "sft",
    family="term",
    needs_reference=False,
    paper="NLL on the chosen answer; with sigmoid it is RPO (Pang et al. 2024, arXiv:2404.19733, eq. 3)",
)
def sft(policy_chosen_logps: torch.Tensor, chosen_lengths: torch.Tensor) -> LossOutput:
    """Negative log-likelihood of the chosen answer, per token: L = −log π(y_w|x) / |y_w|.

    Added to a preference loss (`loss: [sigmoid, sft]`) it keeps the chosen answers likely, so the
    margin cannot be won only by pushing the rejected ones down. Averaged per pair, where TRL's
    `sft` term averages over all chosen tokens of the batch.
    """
    nll = -policy_chosen_logps / chosen_lengths.clamp(min=1)
    return LossOutput(losses=nll, metrics={"nll_loss": nll.detach()})
