"""Reference-free losses: the policy's own log-probs of the chosen and rejected answers, and no π_ref.

With none of these losses needing a reference, `reference.mode: auto` resolves to none and no
reference model is loaded or run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from prefalign.losses.registry import LossOutput, register
from prefalign.losses.shared import chosen_nll, per_token, smoothed_logistic


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(x)) for x ≤ 0, without cancellation (Mächler 2012, "Accurately computing log(1 − exp(−|a|))").

    log1p(−exp(x)) loses precision as x → 0 and log(−expm1(x)) as x → −∞; each branch is used where it
    is exact, switching at x = −log 2.
    """
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


@register(
    "simpo",
    family="reference_free",
    needs_reference=False,
    paper="Meng et al. 2024, SimPO, arXiv:2405.14734, eq. 6",
    length_normalised=True,
)
def simpo(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    *,
    beta: float,
    gamma: float,
    label_smoothing: float = 0.0,
) -> LossOutput:
    """SimPO: a Bradley–Terry loss on length-normalised log-probs, with a target reward margin.

    r(x, y) = β / |y| · log π(y|x)                                        (eq. 4)
    L = −(1 − ε) · log σ(r_w − r_l − γ) − ε · log σ(−(r_w − r_l − γ))      (eq. 6 at ε = 0)

    γ = `gamma` is the target margin (TRL: `simpo_gamma`); ε = `label_smoothing` as TRL's
    CPOTrainer applies it. Rewards are r: β times the average per-token log-prob, as TRL logs them.
    TRL's CPOTrainer with loss_type simpo also adds its `cpo_alpha` NLL term by default (CPO-SimPO);
    that is `loss: [simpo, sft]` here, and plain SimPO is TRL's `cpo_alpha=0`.
    """
    chosen_rewards = beta * per_token(policy_chosen_logps, chosen_lengths)
    rejected_rewards = beta * per_token(policy_rejected_logps, rejected_lengths)
    losses = smoothed_logistic(chosen_rewards - rejected_rewards - gamma, label_smoothing)
    return LossOutput(losses, chosen_rewards.detach(), rejected_rewards.detach())


@register(
    "cpo",
    family="reference_free",
    needs_reference=False,
    paper="Xu et al. 2024, Contrastive Preference Optimization, arXiv:2401.08417, eq. 3 + NLL on chosen",
)
def cpo(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    *,
    beta: float,
    cpo_alpha: float,
    label_smoothing: float = 0.0,
) -> LossOutput:
    """CPO: DPO's loss under a uniform reference, plus NLL on the chosen answer.

    L_prefer = −(1 − ε) · log σ(β·(log π(y_w|x) − log π(y_l|x))) − ε · log σ(−β·(…))   (eq. 3 at ε = 0)
    L_NLL = −log π(y_w|x) / |y_w|
    L = L_prefer + α · L_NLL,   α = `cpo_alpha`

    The preference term compares summed log-probs. The NLL is per token, averaged per pair; TRL's
    CPOTrainer averages it over all chosen tokens of the batch (one cross-entropy over the batch),
    which weights long answers more and makes a pair's loss depend on the rest of its batch. The two
    agree when the chosen answers of a batch have equal lengths. Rewards are β · log π(y|x), as TRL
    logs them; the NLL is reported as `nll_loss`.
    """
    logits = beta * (policy_chosen_logps - policy_rejected_logps)
    nll = chosen_nll(policy_chosen_logps, chosen_lengths)
    return LossOutput(
        losses=smoothed_logistic(logits, label_smoothing) + cpo_alpha * nll,
        chosen_rewards=beta * policy_chosen_logps.detach(),
        rejected_rewards=beta * policy_rejected_logps.detach(),
        metrics={"nll_loss": nll.detach()},
    )


@register(
    "orpo",
    family="reference_free",
    needs_reference=False,
    paper="Hong et al. 2024, ORPO, arXiv:2403.07691, eq. 6–7",
    length_normalised=True,
)
def orpo(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    *,
    orpo_lambda: float,
) -> LossOutput:
    """ORPO: NLL on the chosen answer plus λ times a log-sigmoid loss on the log odds ratio.

    P(y|x) = exp(log π(y|x) / |y|)  (the per-token average, as the paper defines the likelihood)
    log odds(y|x) = log P − log(1 − P)
    L_OR = −log σ(log odds(y_w|x) − log odds(y_l|x))                      (eq. 7)
    L = L_SFT + λ · L_OR,   L_SFT = −log π(y_w|x) / |y_w|,   λ = `orpo_lambda`   (eq. 6)

    Metrics as TRL's ORPOTrainer names them: `log_odds_chosen` is the log odds ratio itself,
    `log_odds_ratio` is log σ of it (−L_OR), `nll_loss` is L_SFT. Rewards are λ · (average
    log-prob): TRL's ORPO `beta` is the paper's λ, and TRL scales the rewards by it.

    Where this follows the paper, not TRL: L_SFT is the NLL of the chosen *answer* tokens, averaged
    per pair; TRL's ORPOTrainer (like the authors' code) takes one cross-entropy over every
    non-padding token of the chosen rows of the batch, prompt tokens included.
    """
    chosen_avg = per_token(policy_chosen_logps, chosen_lengths)
    rejected_avg = per_token(policy_rejected_logps, rejected_lengths)
    # An answer the policy is certain of (every token's log-prob rounds to 0) would have infinite odds
    # and a NaN gradient; capping the average just below 0 leaves every other value as it is.
    cap = -torch.finfo(chosen_avg.dtype).eps
    chosen_capped, rejected_capped = chosen_avg.clamp(max=cap), rejected_avg.clamp(max=cap)
    log_odds = (chosen_capped - log1mexp(chosen_capped)) - (rejected_capped - log1mexp(rejected_capped))
    log_sigmoid_odds = F.logsigmoid(log_odds)
    nll = -chosen_avg
    return LossOutput(
        losses=nll - orpo_lambda * log_sigmoid_odds,
        chosen_rewards=orpo_lambda * chosen_avg.detach(),
        rejected_rewards=orpo_lambda * rejected_avg.detach(),
        metrics={
            "nll_loss": nll.detach(),
            "log_odds_ratio": log_sigmoid_odds.detach(),
            "log_odds_chosen": log_odds.detach(),
        },
    )
