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
    chosen_scores: torch.Tensor,
    rejected_scores: torch.Tensor,
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    *,
    beta: float,
    label_smoothing: float = 0.0,
) -> LossOutput:
    """DPO's Bradley–Terry loss on implicit rewards.

    h = (log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))
    L = −(1 − ε) · log σ(β·h) − ε · log σ(−β·h)

    ε = `label_smoothing` is the probability that a preference label is flipped (cDPO); ε = 0 is
    the paper's eq. 7. Under an f-divergence (f-DPO, Wang et al. 2023, arXiv:2309.16240, eq. 11) the
    log-ratios in h become f'(π/π_ref): `chosen_scores`/`rejected_scores`. Rewards are β·(log π − log π_ref).
    """
    logits = beta * (chosen_scores - rejected_scores)
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
