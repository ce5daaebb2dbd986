"""The DPO family: losses on the policy/reference log-ratios of the chosen and rejected answers.

Every loss of TRL 1.16's DPOTrainer, each checked against it by tests/test_trl_agreement.py. The formulas
write the log-ratios log π/π_ref; a loss that takes `chosen_scores`/`rejected_scores` reads them through
`f_divergence_type`'s f' (f-DPO) and is equal to its formula under the default reverse KL. A loss that
takes `chosen_logratios` for its value (nca_pair, bco_pair, sppo_hard, aot, apo_*) has no f-DPO form: the
β·log Z(x) that f-DPO leaves cancels only in a chosen − rejected difference, so the config refuses the pair.
Each returns DPO's implicit rewards β·(log π − log π_ref), detached, whatever its loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prefalign.losses.registry import LossOutput, register
from prefalign.losses.shared import chosen_nll, per_token, smoothed_logistic


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
    losses = smoothed_logistic(beta * (chosen_scores - rejected_scores), label_smoothing)
    return LossOutput(
        losses=losses,
        chosen_rewards=beta * chosen_logratios.detach(),
        rejected_rewards=beta * rejected_logratios.detach(),
    )


def _rewards(beta: float, chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor) -> dict:
    """DPO's implicit rewards β·(log π − log π_ref), detached: what every loss of the family reports."""
    return {
        "chosen_rewards": beta * chosen_logratios.detach(),
        "rejected_rewards": beta * rejected_logratios.detach(),
    }


@register(
    "robust",
    family="dpo",
    needs_reference=True,
    paper="Chowdhury et al. 2024, Provably Robust DPO, arXiv:2403.00409, section 3 (the rDPO loss)",
)
def robust(
    chosen_scores: torch.Tensor,
    rejected_scores: torch.Tensor,
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    *,
    beta: float,
    label_smoothing: float = 0.0,
) -> LossOutput:
    """rDPO: the DPO loss de-biased for labels flipped with probability ε.

    L = [−(1 − ε) · log σ(β·h) + ε · log σ(−β·h)] / (1 − 2ε),  h as in `sigmoid`, ε = `label_smoothing` < 0.5.

    Its expectation over the flips is the DPO loss on clean labels. cDPO (`sigmoid` with ε) *adds*
    ε · (−log σ(−β·h)) and stops pushing a pair once σ(β·h) reaches 1 − ε; rDPO subtracts it, and
    keeps pushing every pair towards its label. ε = 0 is plain DPO.
    """
    logits = beta * (chosen_scores - rejected_scores)
    losses = (-(1 - label_smoothing) * F.logsigmoid(logits) + label_smoothing * F.logsigmoid(-logits)) / (
        1 - 2 * label_smoothing
    )
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


@register(
    "ipo",
    family="dpo",
    needs_reference=True,
    paper="Azar et al. 2023, A General Theoretical Paradigm to Understand Learning from Human Preferences, "
    "arXiv:2310.12036, eq. 17",
    length_normalised=True,
)
def ipo(
    chosen_scores: torch.Tensor,
    rejected_scores: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    *,
    beta: float,
) -> LossOutput:
    """IPO: squared distance of the log-ratio margin from 1/(2τ), with τ = `beta`.

    h̄ = (log π(y_w|x) − log π_ref(y_w|x)) / |y_w| − (log π(y_l|x) − log π_ref(y_l|x)) / |y_l|
    L = (h̄ − 1/(2β))²

    The paper's eq. 17 writes sequence log-ratios; each is averaged per token here, as the IPO authors
    intend (confirmed by them to TRL, whose `ipo` does the same), so β does not have to shrink with
    answer length. Rewards are unnormalised, β·(log π − log π_ref), as for every loss of the family.
    """
    margin = per_token(chosen_scores, chosen_lengths) - per_token(rejected_scores, rejected_lengths)
    losses = (margin - 1 / (2 * beta)) ** 2
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


@register(
    "hinge",
    family="dpo",
    needs_reference=True,
    paper="SLiC-HF's calibration loss (Zhao et al. 2023, arXiv:2305.10425) on normalised likelihoods, "
    "as RSO uses it (Liu et al. 2023, Statistical Rejection Sampling, arXiv:2309.06657, the hinge-norm loss)",
)
def hinge(
    chosen_scores: torch.Tensor,
    rejected_scores: torch.Tensor,
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    *,
    beta: float,
) -> LossOutput:
    """SLiC's hinge loss on the log-ratio margin: L = max(0, 1 − β·h), h as in `sigmoid`.

    β is the reciprocal of SLiC's margin δ: pairs whose margin h exceeds 1/β give no gradient.
    """
    losses = torch.relu(1 - beta * (chosen_scores - rejected_scores))
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


@register(
    "exo_pair",
    family="dpo",
    needs_reference=True,
    check=lambda hp: (
        None
        if hp["label_smoothing"] > 0
        else ("label_smoothing: exo_pair takes log ε, so it needs label_smoothing > 0 (EXO uses 1e-3)")
    ),
    paper="Ji et al. 2024, Towards Efficient Exact Optimization of Language Model Alignment, "
    "arXiv:2402.00856, eq. 16 (K = 2)",
)
def exo_pair(
    chosen_scores: torch.Tensor,
    rejected_scores: torch.Tensor,
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    *,
    beta: float,
    label_smoothing: float,
) -> LossOutput:
    """EXO on a pair: the reverse KL from the policy's preference to the (smoothed) label.

    q = σ(β·h) (the policy's probability that y_w wins), p = 1 − ε (the label's), ε = `label_smoothing`:
    L = q · (log q − log(1 − ε)) + (1 − q) · (log(1 − q) − log ε)

    ε must be > 0 (log ε); the paper uses 1e-3. `method.label_smoothing` defaults to 0 for the other
    losses that read it, so the config refuses exo_pair without it rather than give it another default.
    """
    logits = beta * (chosen_scores - rejected_scores)
    eps = torch.tensor(label_smoothing, dtype=logits.dtype, device=logits.device)
    losses = torch.sigmoid(logits) * (F.logsigmoid(logits) - torch.log1p(-eps)) + torch.sigmoid(-logits) * (
        F.logsigmoid(-logits) - torch.log(eps)
    )
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


@register(
    "nca_pair",
    family="dpo",
    needs_reference=True,
    paper="Chen et al. 2024, Noise Contrastive Alignment of Language Models with Explicit Rewards, "
    "arXiv:2402.05369, section 4 (NCA on pairwise preferences)",
)
def nca_pair(chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, *, beta: float) -> LossOutput:
    """NCA: each answer's own reward against zero, so the chosen likelihood is held up, not only the margin.

    r_w = β·(log π(y_w|x) − log π_ref(y_w|x)), r_l likewise
    L = −log σ(r_w) − ½ · log σ(−r_w) − ½ · log σ(−r_l)

    Reads the raw log-ratios: the f-DPO reparameterisation cancels log Z(x) only in a difference of rewards.
    """
    chosen_rewards, rejected_rewards = beta * chosen_logratios, beta * rejected_logratios
    losses = -F.logsigmoid(chosen_rewards) - 0.5 * F.logsigmoid(-chosen_rewards) - 0.5 * F.logsigmoid(-rejected_rewards)
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


@register(
    "bco_pair",
    family="dpo",
    needs_reference=True,
    paper="Jung et al. 2024, Binary Classifier Optimization for Large Language Model Alignment, "
    "arXiv:2404.04656, Theorem 1 (the BCE bound, reward shift δ = 0)",
)
def bco_pair(chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, *, beta: float) -> LossOutput:
    """BCO on pairs: a binary classifier whose logit is the implicit reward, chosen → 1, rejected → 0.

    L = −log σ(r_w) − log σ(−r_l),  r = β·(log π − log π_ref)

    This is the binary cross-entropy that the paper's Theorem 1 shows bounds the DPO loss from above.
    The paper's full BCO subtracts a reward shift δ, a moving average of past rewards, inside both
    sigmoids; a pure loss keeps no state across steps, so δ = 0 here — as in TRL 1.16's `bco_pair`
    and MPO's quality term as TRL implements it. Reads the raw log-ratios (no f-divergence).
    """
    losses = -F.logsigmoid(beta * chosen_logratios) - F.logsigmoid(-beta * rejected_logratios)
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


@register(
    "sppo_hard",
    family="dpo",
    needs_reference=True,
    paper="Wu et al. 2024, Self-Play Preference Optimization, arXiv:2405.00675, eq. 4.7 "
    "(Algorithm 1) with hard win probabilities",
)
def sppo_hard(chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, *, beta: float) -> LossOutput:
    """SPPO with the win probability P(y ≻ π) set to 1 for the chosen answer and 0 for the rejected one.

    L = (log π(y_w|x)/π_ref(y_w|x) − η/2)² + (log π(y_l|x)/π_ref(y_l|x) + η/2)²,  η = 1/β

    The paper estimates P with a preference model (PairRM) on the policy's own samples; on a fixed
    preference data set the hard labels are what is known.
    """
    losses = (chosen_logratios - 0.5 / beta) ** 2 + (rejected_logratios + 0.5 / beta) ** 2
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


@register(
    "aot",
    family="dpo",
    needs_reference=True,
    per_pair=False,
    paper="Melnyk et al. 2024, Distributional Preference Alignment of LLMs via Optimal Transport, "
    "arXiv:2406.05882, AOT paired (section 3)",
)
def aot(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    *,
    beta: float,
    label_smoothing: float = 0.0,
) -> LossOutput:
    """AOT (paired): the policy's log-odds of chosen over rejected should dominate the reference's, per quantile.

    u = sort_batch(log π(y_w|x) − log π(y_l|x)),  v = sort_batch(log π_ref(y_w|x) − log π_ref(y_l|x))
    L_i = −(1 − ε) · log σ(β·(u_i − v_i)) − ε · log σ(−β·(u_i − v_i))

    Entry i of the result belongs to the i-th quantile of the batch, not to pair i: only its mean means
    anything, and it depends on which pairs share a micro-batch (larger batches help, as the paper says).
    """
    policy_sorted = torch.sort(policy_chosen_logps - policy_rejected_logps).values
    ref_sorted = torch.sort(ref_chosen_logps - ref_rejected_logps).values
    losses = smoothed_logistic(beta * (policy_sorted - ref_sorted), label_smoothing)
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


@register(
    "aot_unpaired",
    family="dpo",
    needs_reference=True,
    per_pair=False,
    paper="Melnyk et al. 2024, Distributional Preference Alignment of LLMs via Optimal Transport, "
    "arXiv:2406.05882, AOT unpaired (section 3)",
)
def aot_unpaired(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    *,
    beta: float,
    label_smoothing: float = 0.0,
) -> LossOutput:
    """AOT (unpaired): the chosen answers' rewards should dominate the rejected answers', quantile by quantile.

    u = sort_batch(log π(y_w|x) − log π_ref(y_w|x)),  v = sort_batch(log π(y_l|x) − log π_ref(y_l|x))
    L_i = −(1 − ε) · log σ(β·(u_i − v_i)) − ε · log σ(−β·(u_i − v_i))

    Like `aot`, entry i belongs to a quantile of the micro-batch, not to pair i.
    """
    chosen_sorted = torch.sort(chosen_logratios).values
    rejected_sorted = torch.sort(rejected_logratios).values
    losses = smoothed_logistic(beta * (chosen_sorted - rejected_sorted), label_smoothing)
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


@register(
    "apo_zero",
    family="dpo",
    needs_reference=True,
    paper="D'Oosterlinck et al. 2024, Anchored Preference Optimization and Contrastive Revisions, "
    "arXiv:2408.06266, eq. 7",
)
def apo_zero(chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, *, beta: float) -> LossOutput:
    """APO-zero: push the chosen answer up and the rejected one down, each anchored at the reference.

    L = (1 − σ(β·(log π(y_w|x) − log π_ref(y_w|x)))) + σ(β·(log π(y_l|x) − log π_ref(y_l|x)))

    For answers better than what the model writes now.
    """
    losses = 1 - torch.sigmoid(beta * chosen_logratios) + torch.sigmoid(beta * rejected_logratios)
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


@register(
    "apo_down",
    family="dpo",
    needs_reference=True,
    paper="D'Oosterlinck et al. 2024, Anchored Preference Optimization and Contrastive Revisions, "
    "arXiv:2408.06266, eq. 8",
)
def apo_down(chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, *, beta: float) -> LossOutput:
    """APO-down: push both answers down, the rejected one further.

    L = σ(β·(log π(y_w|x) − log π_ref(y_w|x))) + (1 − σ(β·h)),  h as in `sigmoid` (on the raw log-ratios)

    For chosen answers worse than what the model writes now: the chosen likelihood goes *down*.
    """
    losses = torch.sigmoid(beta * chosen_logratios) + 1 - torch.sigmoid(beta * (chosen_logratios - rejected_logratios))
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


@register(
    "discopop",
    family="dpo",
    needs_reference=True,
    paper="Chris Lu et al. 2024, Discovering Preference Optimization Algorithms with and for Large Language Models, "
    "arXiv:2406.08414, eq. 5 (DiscoPOP, the log-ratio modulated loss)",
)
def discopop(
    chosen_scores: torch.Tensor,
    rejected_scores: torch.Tensor,
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    *,
    beta: float,
    discopop_tau: float = 0.05,
) -> LossOutput:
    """DiscoPOP: the logistic (DPO) and exponential losses, mixed by a sigmoid of the margin.

    ρ = β·h (h as in `sigmoid`), m = σ(ρ/τ), τ = `discopop_tau`
    L = (1 − m) · (−log σ(ρ)) + m · exp(−ρ)

    Not monotone in ρ: near ρ = 0 (about −0.12 < ρ < 0.07 at τ = 0.05) the loss *rises* with the
    margin, so there, unlike DPO, raising the chosen log-prob raises the loss. A policy that starts
    as its reference (ρ = 0) can first move to the local minimum near ρ ≈ −0.12, the wrong way
    (measured in tests/test_methods_train.py); for τ above about 0.11 the loss is monotone. This is
    the paper's formula, and TRL's.
    """
    logits = beta * (chosen_scores - rejected_scores)
    mix = torch.sigmoid(logits / discopop_tau)
    losses = (1 - mix) * -F.logsigmoid(logits) + mix * torch.exp(-logits)
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


@register(
    "sigmoid_norm",
    family="dpo",
    needs_reference=True,
    paper="length-normalised DPO: Lambert et al. 2024, Tulu 3, arXiv:2411.15124, section 5 "
    "(DPO of Rafailov et al. 2023, eq. 7, on per-token log-ratios)",
    length_normalised=True,
)
def sigmoid_norm(
    chosen_scores: torch.Tensor,
    rejected_scores: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    *,
    beta: float,
) -> LossOutput:
    """DPO on log-ratios averaged per token, so a longer answer does not win by length alone.

    h̄ = (log π(y_w|x) − log π_ref(y_w|x)) / |y_w| − (log π(y_l|x) − log π_ref(y_l|x)) / |y_l|
    L = −log σ(β·h̄)

    Rewards stay unnormalised, β·(log π − log π_ref), as TRL logs them.
    """
    margin = per_token(chosen_scores, chosen_lengths) - per_token(rejected_scores, rejected_lengths)
    losses = -F.logsigmoid(beta * margin)
    return LossOutput(losses=losses, **_rewards(beta, chosen_logratios, rejected_logratios))


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
    nll = chosen_nll(policy_chosen_logps, chosen_lengths)
    return LossOutput(losses=nll, metrics={"nll_loss": nll.detach()})
