"""Reward models: the Bradley–Terry loss on the scalar rewards of the chosen and rejected answers."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prefalign.losses.registry import LossOutput, register
from prefalign.losses.shared import chosen_nll


@register(
    "bradley_terry",
    family="reward",
    needs_reference=False,
    paper="Ouyang et al. 2022, InstructGPT, arXiv:2203.02155, eq. 1; margin: Touvron et al. 2023, Llama 2, "
    "arXiv:2307.09288, eq. 2; centring: Eisenstein et al. 2023, arXiv:2312.09244",
)
def bradley_terry(
    reward_chosen: torch.Tensor,
    reward_rejected: torch.Tensor,
    margin: torch.Tensor,
    policy_chosen_logps: torch.Tensor | None = None,
    chosen_lengths: torch.Tensor | None = None,
    *,
    center_rewards_coefficient: float | None = None,
    lm_coef: float = 0.0,
) -> LossOutput:
    """Bradley–Terry loss of a reward model r(x, y), per pair:

    L = −log σ(r(x, y_w) − r(x, y_l) − m) + c · (r(x, y_w) + r(x, y_l))² + λ · (−log π(y_w|x) / |y_w|)

    The first term is InstructGPT's eq. 1 (the negative log-likelihood of the preference under the
    Bradley–Terry model). m is the data's `margin` column (Llama 2's eq. 2; 0 where absent). c =
    `center_rewards_coefficient` pulls rewards towards 0, since the loss only sees differences
    (Eisenstein et al. 2023); TRL's RewardTrainer adds the same c · mean((r_w + r_l)²). λ = `lm_coef`
    adds the per-token NLL of the chosen answer through the LM head, so the backbone stays a
    language model; TRL has no such term.
    """
    losses = -F.logsigmoid(reward_chosen - reward_rejected - margin)
    metrics = {}
    if center_rewards_coefficient is not None:
        losses = losses + center_rewards_coefficient * (reward_chosen + reward_rejected) ** 2
    if lm_coef > 0:
        if policy_chosen_logps is None or chosen_lengths is None:
            raise ValueError("bradley_terry: lm_coef > 0 needs the chosen answers' log-probs")
        nll = chosen_nll(policy_chosen_logps, chosen_lengths)
        losses = losses + lm_coef * nll
        metrics["nll_loss"] = nll.detach()
    return LossOutput(
        losses=losses,
        chosen_rewards=reward_chosen.detach(),
        rejected_rewards=reward_rejected.detach(),
        metrics=metrics,
    )
