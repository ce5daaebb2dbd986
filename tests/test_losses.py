"""Losses: hand-computed values on batch-shaped tensors, and the direction of their gradients."""

import math

import pytest
import torch

from prefalign.losses import LOSSES, compute_loss
from prefalign.objective import Objective, paired_inputs
from prefalign.scoring.logps import SequenceLogps


def _log_sigmoid(x: float) -> float:
    return -math.log(1 + math.exp(-x))


# Three pairs with unequal (summed) log-probs, as training passes them: shape [B].
POLICY_CHOSEN = [-12.0, -30.5, -7.25]
POLICY_REJECTED = [-14.0, -29.0, -9.0]
REF_CHOSEN = [-13.0, -30.0, -8.0]
REF_REJECTED = [-13.5, -30.0, -8.5]


CHOSEN_LENGTHS = [4, 10, 1]
REJECTED_LENGTHS = [5, 5, 5]


def _tensors(requires_grad=False):
    t = [torch.tensor(v, dtype=torch.float32, requires_grad=requires_grad) for v in
         (POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED)]  # fmt: skip
    return t


def pair_inputs(chosen, rejected, ref_chosen, ref_rejected, f_divergence=("reverse_kl", 0.5)):
    """Every tensor a paired loss may name, derived from [B] log-probs as training derives them."""
    lengths_c, lengths_r = torch.tensor(CHOSEN_LENGTHS), torch.tensor(REJECTED_LENGTHS)
    policy = SequenceLogps.pairs(chosen, rejected, lengths_c, lengths_r)
    ref = SequenceLogps.pairs(ref_chosen, ref_rejected, lengths_c, lengths_r)
    return paired_inputs(policy, ref, f_divergence=f_divergence)


def loss(name, tensors, **hyperparams):
    return compute_loss(LOSSES[name], tensors, hyperparams)


def test_sigmoid_hand_computed():
    beta = 0.1
    out = loss("sigmoid", pair_inputs(*_tensors()), beta=beta)
    # pair 0: chosen ratio -12 - -13 = 1.0, rejected ratio -14 - -13.5 = -0.5, h = 1.5, beta*h = 0.15
    # pair 1: chosen ratio -30.5 - -30 = -0.5, rejected ratio -29 - -30 = 1.0, h = -1.5
    # pair 2: chosen ratio -7.25 - -8 = 0.75, rejected ratio -9 - -8.5 = -0.5, h = 1.25
    expected = [-_log_sigmoid(0.15), -_log_sigmoid(-0.15), -_log_sigmoid(0.125)]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([0.1, -0.05, 0.075], rel=1e-6)
    assert out.rejected_rewards.tolist() == pytest.approx([-0.05, 0.1, -0.05], rel=1e-6)
    # -log σ(0.15) = log(1 + e^-0.15) = 0.62096...
    assert out.losses[0].item() == pytest.approx(math.log(1 + math.exp(-0.15)), rel=1e-6)


def test_sigmoid_label_smoothing_is_conservative_dpo():
    beta, eps = 0.5, 0.2
    out = loss("sigmoid", pair_inputs(*_tensors()), beta=beta, label_smoothing=eps)
    logits = [0.5 * 1.5, 0.5 * -1.5, 0.5 * 1.25]
    expected = [-(1 - eps) * _log_sigmoid(x) - eps * _log_sigmoid(-x) for x in logits]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)


def test_sigmoid_gradient_direction():
    """Raising the chosen log-prob lowers the loss; raising the rejected one raises it."""
    chosen, rejected, ref_chosen, ref_rejected = _tensors(requires_grad=True)
    loss("sigmoid", pair_inputs(chosen, rejected, ref_chosen, ref_rejected), beta=0.1).losses.sum().backward()
    assert (chosen.grad < 0).all()
    assert (rejected.grad > 0).all()
    # d/dx -log σ(βx) = -β σ(-βx): pair 0 has βh = 0.15
    assert chosen.grad[0].item() == pytest.approx(-0.1 / (1 + math.exp(0.15)), rel=1e-6)


def test_registry_spec_reads_the_function():
    spec = LOSSES["sigmoid"]
    assert spec.needs_reference and spec.paired and spec.family == "dpo"
    assert spec.inputs == ("chosen_scores", "rejected_scores", "chosen_logratios", "rejected_logratios")
    assert spec.hyperparams == ("beta", "label_smoothing")
    assert "2305.18290" in spec.paper


def test_compute_loss_passes_only_what_the_loss_declares():
    tensors = pair_inputs(*_tensors())
    out = compute_loss(LOSSES["sigmoid"], tensors, {"beta": 0.1, "label_smoothing": 0.0, "unused": 1})
    assert out.losses.tolist() == pytest.approx(loss("sigmoid", tensors, beta=0.1).losses.tolist())
    with pytest.raises(ValueError, match="needs chosen_scores"):
        compute_loss(LOSSES["sigmoid"], {"policy_chosen_logps": tensors["policy_chosen_logps"]}, {"beta": 0.1})


def test_sft_term_is_per_token_nll_of_chosen():
    from prefalign.losses.dpo import sft

    chosen = torch.tensor([-12.0, -30.5, -7.25])
    lengths = torch.tensor([4, 10, 1])
    out = sft(chosen, lengths)
    # 12/4 = 3.0, 30.5/10 = 3.05, 7.25/1 = 7.25
    assert out.losses.tolist() == pytest.approx([3.0, 3.05, 7.25])
    assert out.chosen_rewards is None


def test_combined_terms_add_with_weights_rpo():
    """RPO = sigmoid + alpha · sft: the per-pair loss is the weighted sum; rewards come from sigmoid."""
    from prefalign.config import MethodConfig
    from prefalign.data.layout import Batch

    chosen, rejected, ref_chosen, ref_rejected = _tensors()
    lengths_c, lengths_r = torch.tensor(CHOSEN_LENGTHS), torch.tensor(REJECTED_LENGTHS)
    policy = SequenceLogps.pairs(chosen, rejected, lengths_c, lengths_r)
    ref = SequenceLogps.pairs(ref_chosen, ref_rejected, lengths_c, lengths_r)
    batch = Batch(*(torch.zeros(0),) * 6, num_examples=3, num_sequences=6)  # only its margin/labels are read
    objective = Objective(MethodConfig(loss="sigmoid", rpo_alpha=0.5, beta=0.1))
    losses, metrics = objective(policy, ref, batch)
    dpo = [-_log_sigmoid(0.15), -_log_sigmoid(-0.15), -_log_sigmoid(0.125)]
    nll = [3.0, 3.05, 7.25]
    assert losses.tolist() == pytest.approx([d + 0.5 * n for d, n in zip(dpo, nll, strict=True)], rel=1e-6)
    assert metrics["rewards/chosen"].tolist() == pytest.approx([0.1, -0.05, 0.075], rel=1e-6)
    assert metrics["nll_loss"].tolist() == pytest.approx(nll)
    assert metrics["loss/sigmoid"].tolist() == pytest.approx(dpo, rel=1e-6)
    # per-token preference of the policy alone: -12/4 = -3.0 > -14/5 = -2.8? no;
    # -30.5/10 = -3.05 > -29/5 = -5.8? yes; -7.25/1 > -9/5 = -1.8? no
    assert metrics["preference_accuracy"].tolist() == [0.0, 1.0, 0.0]


# ---- the rest of the DPO family -------------------------------------------------------------------------------
# On the three pairs above (lengths |y_w| = 4, 10, 1 and |y_l| = 5, 5, 5):
#   chosen log-ratios   ρ_w = [-12 - -13, -30.5 - -30, -7.25 - -8] = [1.0, -0.5, 0.75]
#   rejected log-ratios ρ_l = [-14 - -13.5, -29 - -30, -9 - -8.5]  = [-0.5, 1.0, -0.5]
#   margins h = ρ_w - ρ_l = [1.5, -1.5, 1.25]
# Most tests below use β = 0.5, so β·h = [0.75, -0.75, 0.625].
RHO_W = [1.0, -0.5, 0.75]
RHO_L = [-0.5, 1.0, -0.5]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_robust_hand_computed():
    beta, eps = 0.5, 0.2
    out = loss("robust", pair_inputs(*_tensors()), beta=beta, label_smoothing=eps)
    # L = [-(1 - ε) log σ(βh) + ε log σ(-βh)] / (1 - 2ε), here divided by 1 - 0.4 = 0.6
    expected = [(-0.8 * _log_sigmoid(z) + 0.2 * _log_sigmoid(-z)) / 0.6 for z in (0.75, -0.75, 0.625)]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    # pair 0: log σ(0.75) = -0.38687, log σ(-0.75) = -1.13687: (0.30950 - 0.22737) / 0.6 = 0.13687
    assert out.losses[0].item() == pytest.approx(0.13687, abs=1e-4)
    # ε = 0 is plain DPO
    plain = loss("robust", pair_inputs(*_tensors()), beta=beta, label_smoothing=0.0)
    assert plain.losses.tolist() == pytest.approx(loss("sigmoid", pair_inputs(*_tensors()), beta=beta).losses.tolist())


def test_ipo_hand_computed():
    """IPO on per-token log-ratios, (h̄ - 1/(2β))², with 1/(2·0.5) = 1."""
    out = loss("ipo", pair_inputs(*_tensors()), beta=0.5)
    # h̄ = ρ_w/|y_w| - ρ_l/|y_l|: 1.0/4 + 0.5/5 = 0.35; -0.5/10 - 1.0/5 = -0.25; 0.75/1 + 0.5/5 = 0.85
    # L = (0.35 - 1)² = 0.4225; (-0.25 - 1)² = 1.5625; (0.85 - 1)² = 0.0225
    assert out.losses.tolist() == pytest.approx([0.4225, 1.5625, 0.0225], rel=1e-5)
    assert LOSSES["ipo"].length_normalised


def test_hinge_hand_computed():
    chosen, rejected, ref_chosen, ref_rejected = _tensors(requires_grad=True)
    out = loss("hinge", pair_inputs(chosen, rejected, ref_chosen, ref_rejected), beta=0.5)
    # max(0, 1 - β·h) = 1 - 0.75, 1 + 0.75, 1 - 0.625
    assert out.losses.tolist() == pytest.approx([0.25, 1.75, 0.375], rel=1e-6)
    # β = 1: margins 1.5 and 1.25 are past 1/β = 1 and give zero loss and zero gradient
    wide = loss("hinge", pair_inputs(chosen, rejected, ref_chosen, ref_rejected), beta=1.0)
    assert wide.losses.tolist() == pytest.approx([0.0, 2.5, 0.0])
    wide.losses.sum().backward()
    assert chosen.grad.tolist() == [0.0, -1.0, 0.0]


def test_exo_pair_hand_computed():
    beta, eps = 0.5, 1e-3
    out = loss("exo_pair", pair_inputs(*_tensors()), beta=beta, label_smoothing=eps)
    expected = []
    for z in (0.75, -0.75, 0.625):
        q = _sigmoid(z)  # the policy's probability that the chosen answer wins
        # KL([q, 1-q] || [1-ε, ε])
        expected.append(q * (math.log(q) - math.log(1 - eps)) + (1 - q) * (math.log(1 - q) - math.log(eps)))
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-5)
    # pair 0: q = σ(0.75) = 0.67918: 0.67918·(ln 0.67918 + 0.0010005) + 0.32082·(ln 0.32082 + 6.90776)
    assert out.losses[0].item() == pytest.approx(
        0.67918 * (-0.38687 + 0.0010005) + 0.32082 * (-1.13687 + 6.90776), rel=1e-4
    )


def test_nca_pair_hand_computed():
    out = loss("nca_pair", pair_inputs(*_tensors()), beta=0.5)
    expected = []
    for rho_w, rho_l in zip(RHO_W, RHO_L, strict=True):
        r_w, r_l = 0.5 * rho_w, 0.5 * rho_l  # 0.5, -0.25, 0.375 and -0.25, 0.5, -0.25
        expected.append(-_log_sigmoid(r_w) - 0.5 * _log_sigmoid(-r_w) - 0.5 * _log_sigmoid(-r_l))
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    # pair 0: -ln σ(0.5) - ½ ln σ(-0.5) - ½ ln σ(0.25) = 0.47408 + 0.48704 + 0.28797
    assert out.losses[0].item() == pytest.approx(0.47408 + 0.48704 + 0.28797, abs=1e-4)


def test_bco_pair_hand_computed():
    out = loss("bco_pair", pair_inputs(*_tensors()), beta=0.5)
    # -log σ(β·ρ_w) - log σ(-β·ρ_l)
    expected = [-_log_sigmoid(0.5 * w) - _log_sigmoid(-0.5 * r) for w, r in zip(RHO_W, RHO_L, strict=True)]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    # pair 1: -ln σ(-0.25) - ln σ(-0.5) = 0.82594 + 0.97408
    assert out.losses[1].item() == pytest.approx(0.82594 + 0.97408, abs=1e-4)


def test_sppo_hard_hand_computed():
    out = loss("sppo_hard", pair_inputs(*_tensors()), beta=0.5)
    # (ρ_w - 1/(2β))² + (ρ_l + 1/(2β))², 1/(2β) = 1:
    # (1 - 1)² + (-0.5 + 1)² = 0.25; (-0.5 - 1)² + (1 + 1)² = 6.25; (0.75 - 1)² + (-0.5 + 1)² = 0.3125
    assert out.losses.tolist() == pytest.approx([0.25, 6.25, 0.3125], rel=1e-6)


def test_aot_hand_computed():
    beta, eps = 0.5, 0.1
    out = loss("aot", pair_inputs(*_tensors()), beta=beta, label_smoothing=eps)
    # policy log-odds chosen - rejected: -12 + 14 = 2, -30.5 + 29 = -1.5, -7.25 + 9 = 1.75 -> sorted -1.5, 1.75, 2
    # reference:                         -13 + 13.5 = 0.5, -30 + 30 = 0, -8 + 8.5 = 0.5  -> sorted 0, 0.5, 0.5
    # quantile differences -1.5, 1.25, 1.5; times β: -0.75, 0.625, 0.75
    expected = [-0.9 * _log_sigmoid(z) - 0.1 * _log_sigmoid(-z) for z in (-0.75, 0.625, 0.75)]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([0.5 * r for r in RHO_W])  # rewards stay per pair


def test_aot_unpaired_hand_computed():
    beta, eps = 0.5, 0.1
    out = loss("aot_unpaired", pair_inputs(*_tensors()), beta=beta, label_smoothing=eps)
    # chosen log-ratios sorted -0.5, 0.75, 1.0; rejected sorted -0.5, -0.5, 1.0: differences 0, 1.25, 0
    expected = [-0.9 * _log_sigmoid(z) - 0.1 * _log_sigmoid(-z) for z in (0.0, 0.625, 0.0)]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert out.losses[0].item() == pytest.approx(math.log(2), rel=1e-6)  # a zero difference costs log 2


def test_apo_zero_hand_computed():
    out = loss("apo_zero", pair_inputs(*_tensors()), beta=0.5)
    # 1 - σ(β·ρ_w) + σ(β·ρ_l)
    expected = [1 - _sigmoid(0.5 * w) + _sigmoid(0.5 * r) for w, r in zip(RHO_W, RHO_L, strict=True)]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    # pair 0: 1 - σ(0.5) + σ(-0.25) = 1 - 0.62246 + 0.43782
    assert out.losses[0].item() == pytest.approx(1 - 0.62246 + 0.43782, abs=1e-5)


def test_apo_down_hand_computed():
    out = loss("apo_down", pair_inputs(*_tensors()), beta=0.5)
    # σ(β·ρ_w) + 1 - σ(β·h)
    expected = [_sigmoid(0.5 * w) + 1 - _sigmoid(z) for w, z in zip(RHO_W, (0.75, -0.75, 0.625), strict=True)]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    # pair 1: σ(-0.25) + 1 - σ(-0.75) = 0.43782 + 1 - 0.32082
    assert out.losses[1].item() == pytest.approx(0.43782 + 1 - 0.32082, abs=1e-5)


def test_discopop_hand_computed():
    tau = 0.05
    out = loss("discopop", pair_inputs(*_tensors()), beta=0.5, discopop_tau=tau)
    expected = []
    for z in (0.75, -0.75, 0.625):
        mix = _sigmoid(z / tau)  # σ(15), σ(-15), σ(12.5): almost all exponential, logistic, exponential
        expected.append((1 - mix) * -_log_sigmoid(z) + mix * math.exp(-z))
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert out.losses[0].item() == pytest.approx(math.exp(-0.75), rel=1e-5)  # σ(15) = 1 - 3e-7
    assert out.losses[1].item() == pytest.approx(-_log_sigmoid(-0.75), rel=1e-5)


def test_discopop_is_not_monotone_near_zero():
    """At a zero margin (ρ = 0, τ = 0.05) raising the chosen log-prob *raises* DiscoPOP's loss.

    d/dρ [(1 - m)·(-log σ(ρ)) + m·e^(-ρ)] = -m'·(-log σ(ρ)) + (1 - m)·(-σ(-ρ)) + m'·e^(-ρ) - m·e^(-ρ),
    with m = σ(ρ/τ) = ½ and m' = m(1 - m)/τ = 5 at ρ = 0: -5·log 2 - 0.25 + 5 - 0.5 = 0.7843 (β = 1).
    """
    chosen = torch.tensor([-5.0], requires_grad=True)
    same = torch.tensor([-5.0])
    lengths = torch.tensor([3])
    policy = SequenceLogps.pairs(chosen, same, lengths, lengths)
    ref = SequenceLogps.pairs(same, same, lengths, lengths)
    loss("discopop", paired_inputs(policy, ref), beta=1.0, discopop_tau=0.05).losses.sum().backward()
    assert chosen.grad.item() == pytest.approx(-5 * math.log(2) - 0.25 + 5 - 0.5, rel=1e-5)


def test_sigmoid_norm_hand_computed():
    out = loss("sigmoid_norm", pair_inputs(*_tensors()), beta=0.5)
    # per-token margins h̄ = 0.35, -0.25, 0.85 (as for IPO); -log σ(β·h̄)
    expected = [-_log_sigmoid(0.175), -_log_sigmoid(-0.125), -_log_sigmoid(0.425)]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert LOSSES["sigmoid_norm"].length_normalised and not LOSSES["sigmoid"].length_normalised


DPO_FAMILY = [name for name, spec in LOSSES.items() if spec.family == "dpo"]
# hyper-parameters each loss needs beyond beta in the tests below
EXTRA = {"robust": {"label_smoothing": 0.2}, "exo_pair": {"label_smoothing": 1e-3}}


def test_every_dpo_loss_has_a_hand_computed_test():
    assert {f"test_{name}_hand_computed" for name in DPO_FAMILY} <= set(globals())


@pytest.mark.parametrize("name", DPO_FAMILY)
def test_dpo_family_rewards_are_beta_logratios(name):
    """Every loss of the family reports DPO's implicit rewards β·(log π − log π_ref), detached, per pair."""
    chosen, rejected, ref_chosen, ref_rejected = _tensors(requires_grad=True)
    out = loss(name, pair_inputs(chosen, rejected, ref_chosen, ref_rejected), beta=0.5, **EXTRA.get(name, {}))
    assert out.losses.shape == (3,)
    assert out.chosen_rewards.tolist() == pytest.approx([0.5 * r for r in RHO_W])
    assert out.rejected_rewards.tolist() == pytest.approx([0.5 * r for r in RHO_L])
    assert not out.chosen_rewards.requires_grad
    assert LOSSES[name].needs_reference and LOSSES[name].paired
    assert "arXiv:" in LOSSES[name].paper


# Sign of d loss / d log π(y_w|x) for each pair, at β = 0.1 (β·h = 0.15, -0.15, 0.125).
# -1: raising the chosen log-prob lowers the loss, as a preference loss should. Where it holds only in a range:
#   hinge: until β·h reaches 1; ipo: until h̄ reaches 1/(2β) = 5; sppo_hard: until ρ_w reaches 1/(2β);
#   exo_pair: until β·h reaches log((1-ε)/ε); nca_pair: until β·ρ_w reaches log 2;
#   discopop: outside -0.12 < β·h < 0.07 (see test_discopop_is_not_monotone_near_zero).
# +1: apo_down pushes the chosen answer *down* (for chosen answers worse than the model's own): its chosen term
#   σ(β·ρ_w) outweighs the margin term where |β·ρ_w| < |β·h|, true of all three pairs here.
CHOSEN_GRADIENT_SIGN = {name: -1 for name in DPO_FAMILY} | {"apo_down": +1}


@pytest.mark.parametrize("name", DPO_FAMILY)
def test_dpo_family_gradient_direction(name):
    chosen, rejected, ref_chosen, ref_rejected = _tensors(requires_grad=True)
    out = loss(name, pair_inputs(chosen, rejected, ref_chosen, ref_rejected), beta=0.1, **EXTRA.get(name, {}))
    out.losses.sum().backward()
    sign = CHOSEN_GRADIENT_SIGN[name]
    assert (chosen.grad * sign > 0).all(), chosen.grad
    # raising the rejected log-prob raises the loss, for every loss of the family (apo_down included)
    assert (rejected.grad > 0).all(), rejected.grad
    assert ref_chosen.grad is None or (ref_chosen.grad * sign < 0).all()  # the reference enters as -log π_ref


def test_f_divergence_scores_hand_computed():
    from prefalign.objective import f_divergence_scores

    rho = torch.tensor(RHO_W)  # log t = 1.0, -0.5, 0.75 with t = π/π_ref
    # forward KL: f'(t) = 1 - 1/t
    forward = [1 - math.exp(-1.0), 1 - math.exp(0.5), 1 - math.exp(-0.75)]
    assert f_divergence_scores(rho, "forward_kl", 0.5).tolist() == pytest.approx(forward, rel=1e-6)
    # Jensen-Shannon: f'(t) = log(2t / (1 + t))
    js = [math.log(2 * math.exp(r) / (1 + math.exp(r))) for r in RHO_W]
    assert f_divergence_scores(rho, "js_divergence", 0.5).tolist() == pytest.approx(js, rel=1e-6)
    # alpha = 0.5: f'(t) = (t^(α-1) - 1) / (α - 1) = 2·(1 - t^-0.5); e.g. 2·(1 - e^-0.5) = 0.78694
    alpha = [2 * (1 - math.exp(-0.5 * r)) for r in RHO_W]
    assert f_divergence_scores(rho, "alpha_divergence", 0.5).tolist() == pytest.approx(alpha, rel=1e-6)
    assert alpha[0] == pytest.approx(0.78694, abs=1e-5)
    # alpha -> 1 is log t: exactly at 1, and within (α-1)·(log t)²/2 = 5e-4 at α = 1.001
    assert f_divergence_scores(rho, "alpha_divergence", 1.0).tolist() == RHO_W
    assert f_divergence_scores(rho, "alpha_divergence", 1.001).tolist() == pytest.approx(RHO_W, abs=1e-3)
    assert f_divergence_scores(rho, "reverse_kl", 0.5) is rho


def test_sigmoid_under_forward_kl_reads_the_transformed_ratios():
    tensors = pair_inputs(*_tensors(), f_divergence=("forward_kl", 0.5))
    out = loss("sigmoid", tensors, beta=0.5)
    # pair 0: scores 1 - e^-1 = 0.63212 (chosen) and 1 - e^0.5 = -0.64872 (rejected); β·difference = 0.64042
    scores_w = [1 - math.exp(-r) for r in RHO_W]
    scores_l = [1 - math.exp(-r) for r in RHO_L]
    expected = [-_log_sigmoid(0.5 * (w - r)) for w, r in zip(scores_w, scores_l, strict=True)]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([0.5 * r for r in RHO_W])  # rewards stay β·log-ratio


def test_ld_dpo_weights_tokens_past_the_shorter_answer():
    """LD-DPO (α = 0.5): in each pair, tokens past the shorter answer's length count half."""
    from prefalign.data.layout import padded
    from prefalign.scoring.logps import LogpsOptions, per_sequence

    examples = [
        {"prompt_ids": [11, 12], "chosen_ids": [21, 22, 23], "rejected_ids": [31, 32, 33, 34, 35]},
        {"prompt_ids": [13], "chosen_ids": [41, 42, 43, 44], "rejected_ids": [51, 52]},
    ]
    batch = padded(examples, pad_id=0)
    # sequences: 0 = chosen of pair 0, 1 = chosen of pair 1, 2 = rejected of pair 0, 3 = rejected of pair 1
    assert batch.score_seq.tolist() == [0] * 3 + [1] * 4 + [2] * 5 + [3] * 2
    token_logps = torch.tensor(
        [
            *[-1.0, -2.0, -3.0],  # pair 0 chosen, 3 tokens
            *[-0.5, -1.5, -2.5, -3.5],  # pair 1 chosen, 4 tokens
            *[-1.0, -1.0, -2.0, -2.0, -4.0],  # pair 0 rejected, 5 tokens
            *[-0.25, -0.75],  # pair 1 rejected, 2 tokens
        ]
    )
    plain = per_sequence(token_logps, batch)
    assert plain.logps.tolist() == [-6.0, -8.0, -10.0, -1.0]
    ld = per_sequence(token_logps, batch, LogpsOptions(ld_alpha=0.5))
    # pair 0 shares min(3, 5) = 3 tokens: chosen -1 - 2 - 3 = -6 (no tail);
    #   rejected -1 - 1 - 2 = -4 shared, + 0.5 · (-2 - 4) = -3 tail: -7
    # pair 1 shares min(4, 2) = 2 tokens: chosen -0.5 - 1.5 = -2 shared, + 0.5 · (-2.5 - 3.5) = -3 tail: -5;
    #   rejected -0.25 - 0.75 = -1 (no tail)
    assert ld.chosen_logps.tolist() == [-6.0, -5.0]
    assert ld.rejected_logps.tolist() == [-7.0, -1.0]
    assert ld.lengths.tolist() == [3, 4, 5, 2]  # lengths (for per-token losses) are not reweighted
    # α = 0 keeps only the shared part, α = 1 is plain sums
    assert per_sequence(token_logps, batch, LogpsOptions(ld_alpha=0.0)).logps.tolist() == [-6.0, -2.0, -4.0, -1.0]
    assert per_sequence(token_logps, batch, LogpsOptions(ld_alpha=1.0)).logps.tolist() == plain.logps.tolist()


def test_wpo_weights_match_a_full_logits_computation(tokenizer):
    """WPO's weight of a sequence, exp(mean_t(log p(y_t) - log Σ_v p(v)²)), against the textbook computation."""
    from prefalign.data.layout import padded
    from prefalign.scoring.logps import LogpsOptions, SequenceScorer, sequence_logps
    from tests.conftest import make_tiny_model
    from tests.test_logps import random_examples

    model = make_tiny_model(tokenizer)
    batch = padded(random_examples(len(tokenizer), 3, seed=2), tokenizer.pad_token_id)
    ours = sequence_logps(SequenceScorer(model, chunk_size=5), batch, LogpsOptions(wpo=True))
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    logps = torch.log_softmax(logits.double(), dim=-1).reshape(-1, logits.shape[-1])
    expected = []
    for seq in range(batch.num_sequences):
        positions = batch.score_index[batch.score_seq == seq]
        labels = batch.score_labels[batch.score_seq == seq]
        aligned = [
            logps[p, y].item() - math.log(sum(math.exp(2 * v) for v in logps[p].tolist()))
            for p, y in zip(positions.tolist(), labels.tolist(), strict=True)
        ]
        expected.append(math.exp(sum(aligned) / len(aligned)))
    assert ours.wpo_weights.tolist() == pytest.approx(expected, rel=1e-4)
    assert not ours.wpo_weights.requires_grad
    assert len({round(w, 4) for w in expected}) == batch.num_sequences  # a distinct weight per sequence


def test_objective_weights_every_term_by_both_wpo_weights():
    """WPO: each term of pair i (sigmoid and sft alike) is multiplied by w(y_w) · w(y_l)."""
    from prefalign.config import MethodConfig
    from prefalign.data.layout import Batch

    chosen, rejected, ref_chosen, ref_rejected = _tensors()
    lengths_c, lengths_r = torch.tensor(CHOSEN_LENGTHS), torch.tensor(REJECTED_LENGTHS)
    policy = SequenceLogps.pairs(chosen, rejected, lengths_c, lengths_r)
    policy.wpo_weights = torch.tensor([0.5, 0.8, 0.9, 0.4, 0.25, 1.0])  # chosen 0.5, 0.8, 0.9; rejected 0.4, 0.25, 1
    ref = SequenceLogps.pairs(ref_chosen, ref_rejected, lengths_c, lengths_r)
    batch = Batch(*(torch.zeros(0),) * 6, num_examples=3, num_sequences=6)
    objective = Objective(MethodConfig(loss=["sigmoid", "sft"], loss_weights=[1.0, 0.5], use_weighting=True))
    losses, metrics = objective(policy, ref, batch)
    dpo = [-_log_sigmoid(0.15), -_log_sigmoid(-0.15), -_log_sigmoid(0.125)]  # β = 0.1, as above
    nll = [3.0, 3.05, 7.25]
    pair_weight = [0.5 * 0.4, 0.8 * 0.25, 0.9 * 1.0]
    expected = [w * (d + 0.5 * n) for w, d, n in zip(pair_weight, dpo, nll, strict=True)]
    assert losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert metrics["wpo_weight"].tolist() == pytest.approx(pair_weight)
