"""Unpaired losses: one completion per example, labelled desirable or undesirable (KTO and APO-zero's unpaired form).

Each returns the per-example losses and the implicit reward β·(log π(y|x) − log π_ref(y|x)) of every
example as `chosen_rewards`; the objective reports it as rewards/chosen or rewards/rejected by label.
"""

from __future__ import annotations

import torch

from prefalign.losses.registry import LossOutput, register


@register(
    "kto",
    family="unpaired",
    needs_reference=True,
    paired=False,
    paper="Ethayarajh et al. 2024, KTO: Model Alignment as Prospect Theoretic Optimization, arXiv:2402.01306, eq. 7–8",
)
def kto(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    policy_kl_logps: torch.Tensor,
    ref_kl_logps: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> LossOutput:
    """Kahneman–Tversky Optimisation: a prospect-theoretic value of each answer against a reference point.

    r   = log π(y|x) − log π_ref(y|x)
    z0  = max(0, mean_i [log π(y'_i|x_i) − log π_ref(y'_i|x_i)])      (detached)
    L   = λ_D · (1 − σ(β(r − z0)))   for a desirable y
          λ_U · (1 − σ(β(z0 − r)))   for an undesirable y

    Eq. 7 with λ_y − v(x, y) written out (λ_D = `desirable_weight`, λ_U = `undesirable_weight`); z0, the
    reference point, is the KL(π ‖ π_ref) estimate of eq. 8: y'_i is a completion of another example of
    the batch (example i−1's, cycled), so it is an answer the prompt x_i did not ask for. As in the paper and
    TRL it is clamped at 0 and carries no gradient, and its value is returned as the metric `kl`.

    Where it is estimated: z0 is the mean over every mismatched completion given, before the clamp. In training
    on several processes the objective gives the whole micro-step's (every process's micro-batch, gathered),
    as TRL gathers the per-process estimates and averages them before clamping; each example's mismatched
    completion is the previous example's of that micro-step (training.loop.kl_partners), so N processes give
    the numbers of one. With gradient accumulation each micro-step has its own z0, as in TRL.
    """
    logratios = policy_logps - ref_logps
    kl_estimate = (policy_kl_logps - ref_kl_logps).mean().detach().clamp(min=0)
    desirable = desirable_weight * (1 - torch.sigmoid(beta * (logratios - kl_estimate)))
    undesirable = undesirable_weight * (1 - torch.sigmoid(beta * (kl_estimate - logratios)))
    return LossOutput(
        losses=torch.where(labels, desirable, undesirable),
        chosen_rewards=beta * logratios.detach(),
        metrics={"kl": kl_estimate.expand_as(logratios)},
    )


@register(
    "apo_zero_unpaired",
    family="unpaired",
    needs_reference=True,
    paired=False,
    paper="D'Oosterlinck et al. 2024, Anchored Preference Optimization (APO-zero), arXiv:2408.06266, "
    "unpaired form of eq. 7",
)
def apo_zero_unpaired(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> LossOutput:
    """APO-zero on unpaired data: push desirable answers' likelihood up and undesirable ones' down.

    r = log π(y|x) − log π_ref(y|x)
    L = λ_D · (1 − σ(β·r))   for a desirable y
        λ_U · σ(β·r)         for an undesirable y

    Eq. 7's two terms, −σ(β r_w) and +σ(β r_l), applied to each answer on its own (shifted by 1 so the loss is
    ≥ 0, which changes no gradient). Anchored at r = 0 rather than at a KL estimate, so it needs no
    mismatched completions; use it when the desirable answers are better than what the model says now.
    It is kto with z0 fixed at 0 (1 − σ(−x) = σ(x)), so the two train alike whenever kto's KL estimate clamps to 0.
    λ_D, λ_U as in KTO (`desirable_weight`, `undesirable_weight`), as TRL applies them.
    """
    logratios = policy_logps - ref_logps
    desirable = desirable_weight * (1 - torch.sigmoid(beta * logratios))
    undesirable = undesirable_weight * torch.sigmoid(beta * logratios)
    return LossOutput(losses=torch.where(labels, desirable, undesirable), chosen_rewards=beta * logratios.detach())
