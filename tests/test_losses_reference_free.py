"""SimPO, CPO and ORPO: hand-computed values on batch-shaped tensors, gradient directions, metrics."""

import math

import pytest
import torch

from prefalign.config import MethodConfig
from prefalign.data.layout import Batch
from prefalign.losses import LOSSES, compute_loss
from prefalign.losses.reference_free import log1mexp
from prefalign.objective import Objective, paired_inputs
from prefalign.scoring.logps import SequenceLogps


def _log_sigmoid(x: float) -> float:
    return -math.log(1 + math.exp(-x))


def _log_odds(avg_logp: float) -> float:
    """log(P / (1 − P)) with P = exp(avg_logp), in float64."""
    return avg_logp - math.log(-math.expm1(avg_logp))


# Three pairs as training passes them, [B]: summed log-probs and unequal answer lengths.
POLICY_CHOSEN = [-12.0, -30.5, -7.25]
POLICY_REJECTED = [-14.0, -29.0, -9.0]
CHOSEN_LENGTHS = [4, 10, 1]
REJECTED_LENGTHS = [5, 5, 5]
# Per token: chosen -12/4 = -3.0, -30.5/10 = -3.05, -7.25/1 = -7.25; rejected -2.8, -5.8, -1.8.
CHOSEN_AVG = [-3.0, -3.05, -7.25]
REJECTED_AVG = [-2.8, -5.8, -1.8]


def _policy(requires_grad=False) -> tuple[torch.Tensor, torch.Tensor, SequenceLogps]:
    chosen = torch.tensor(POLICY_CHOSEN, requires_grad=requires_grad)
    rejected = torch.tensor(POLICY_REJECTED, requires_grad=requires_grad)
    policy = SequenceLogps.pairs(chosen, rejected, torch.tensor(CHOSEN_LENGTHS), torch.tensor(REJECTED_LENGTHS))
    return chosen, rejected, policy


def loss(name, policy: SequenceLogps, **hyperparams):
    # No reference: the log-ratio inputs are absent, and these losses must not need them.
    return compute_loss(LOSSES[name], paired_inputs(policy, None), hyperparams)


def test_specs_need_no_reference():
    for name in ("simpo", "cpo", "orpo"):
        spec = LOSSES[name]
        assert spec.family == "reference_free" and not spec.needs_reference and spec.paired, name
        assert not any("ref" in i or "ratio" in i or "scores" in i for i in spec.inputs), name
    assert LOSSES["simpo"].hyperparams == ("beta", "gamma", "label_smoothing")
    assert LOSSES["cpo"].hyperparams == ("beta", "cpo_alpha", "label_smoothing")
    assert LOSSES["orpo"].hyperparams == ("orpo_lambda",)  # TRL's ORPO `beta` is this λ
    assert LOSSES["simpo"].length_normalised and LOSSES["orpo"].length_normalised
    assert not LOSSES["cpo"].length_normalised
    assert "2405.14734" in LOSSES["simpo"].paper
    assert "2401.08417" in LOSSES["cpo"].paper
    assert "2403.07691" in LOSSES["orpo"].paper


def test_simpo_hand_computed():
    beta, gamma = 2.0, 0.5
    out = loss("simpo", _policy()[2], beta=beta, gamma=gamma)
    # rewards β·avg: chosen 2·-3.0 = -6.0, 2·-3.05 = -6.1, 2·-7.25 = -14.5; rejected -5.6, -11.6, -3.6
    assert out.chosen_rewards.tolist() == pytest.approx([-6.0, -6.1, -14.5], rel=1e-6)
    assert out.rejected_rewards.tolist() == pytest.approx([-5.6, -11.6, -3.6], rel=1e-6)
    # z = r_w - r_l - γ: -6.0 + 5.6 - 0.5 = -0.9; -6.1 + 11.6 - 0.5 = 5.0; -14.5 + 3.6 - 0.5 = -11.4
    expected = [-_log_sigmoid(-0.9), -_log_sigmoid(5.0), -_log_sigmoid(-11.4)]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert out.losses[0].item() == pytest.approx(math.log(1 + math.exp(0.9)), rel=1e-6)  # 1.2412...


def test_simpo_label_smoothing_as_trl_applies_it():
    eps = 0.1
    out = loss("simpo", _policy()[2], beta=2.0, gamma=0.5, label_smoothing=eps)
    z = [-0.9, 5.0, -11.4]
    expected = [-(1 - eps) * _log_sigmoid(x) - eps * _log_sigmoid(-x) for x in z]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)


def test_cpo_hand_computed():
    beta, alpha = 0.1, 0.5
    out = loss("cpo", _policy()[2], beta=beta, cpo_alpha=alpha)
    # preference on sums: 0.1·(-12 + 14) = 0.2, 0.1·(-30.5 + 29) = -0.15, 0.1·(-7.25 + 9) = 0.175
    # NLL per token of chosen: 12/4 = 3.0, 30.5/10 = 3.05, 7.25/1 = 7.25
    nll = [3.0, 3.05, 7.25]
    expected = [-_log_sigmoid(0.2) + 0.5 * 3.0, -_log_sigmoid(-0.15) + 0.5 * 3.05, -_log_sigmoid(0.175) + 0.5 * 7.25]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert out.metrics["nll_loss"].tolist() == pytest.approx(nll, rel=1e-6)
    # rewards β·(summed log-prob), as TRL's CPOTrainer logs them
    assert out.chosen_rewards.tolist() == pytest.approx([-1.2, -3.05, -0.725], rel=1e-6)
    assert out.rejected_rewards.tolist() == pytest.approx([-1.4, -2.9, -0.9], rel=1e-6)


def test_cpo_nll_is_per_pair_not_per_batch_token():
    """TRL averages the NLL over all chosen tokens of the batch: (12 + 30.5 + 7.25) / 15 = 3.3167.
    Per pair it is mean(3.0, 3.05, 7.25) = 4.4333; the batch mean of the per-pair losses uses the latter."""
    out = loss("cpo", _policy()[2], beta=0.1, cpo_alpha=1.0)
    assert out.metrics["nll_loss"].mean().item() == pytest.approx((3.0 + 3.05 + 7.25) / 3, rel=1e-6)
    assert out.metrics["nll_loss"].mean().item() != pytest.approx((12 + 30.5 + 7.25) / 15, rel=1e-3)


def test_orpo_hand_computed():
    lam = 0.1
    out = loss("orpo", _policy()[2], orpo_lambda=lam)
    # log odds ratio per pair, from the per-token averages: a - log(1 - e^a) for each answer
    log_odds = [_log_odds(w) - _log_odds(r) for w, r in zip(CHOSEN_AVG, REJECTED_AVG, strict=True)]
    # pair 0: (-3.0 - log(1 - e^-3.0)) - (-2.8 - log(1 - e^-2.8)) = (-3.0 + 0.051069) - (-2.8 + 0.062738)
    #         = -2.948931 + 2.737262 = -0.211669
    assert log_odds[0] == pytest.approx(-3.0 - math.log(1 - math.exp(-3.0)) + 2.8 + math.log(1 - math.exp(-2.8)))
    assert log_odds[0] == pytest.approx(-0.211669, abs=1e-6)
    nll = [3.0, 3.05, 7.25]
    expected = [n - lam * _log_sigmoid(x) for n, x in zip(nll, log_odds, strict=True)]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert out.metrics["nll_loss"].tolist() == pytest.approx(nll, rel=1e-6)
    assert out.metrics["log_odds_chosen"].tolist() == pytest.approx(log_odds, rel=1e-5)
    assert out.metrics["log_odds_ratio"].tolist() == pytest.approx([_log_sigmoid(x) for x in log_odds], rel=1e-5)
    # rewards λ·avg (TRL's ORPO beta is λ): 0.1·-3.0 = -0.3, -0.305, -0.725; rejected -0.28, -0.58, -0.18
    assert out.chosen_rewards.tolist() == pytest.approx([-0.3, -0.305, -0.725], rel=1e-6)
    assert out.rejected_rewards.tolist() == pytest.approx([-0.28, -0.58, -0.18], rel=1e-6)


def test_log1mexp_is_accurate_near_zero_and_far_from_it():
    """log(1 - e^x) in float32. Near 0, log1p(-exp(x)) alone loses the answer: exp(-1e-6) rounds to a float32
    within half an ulp (6e-8) of the truth, so 1 - exp(x) ≈ 1e-6 is off by several per cent and its log by 0.01."""
    xs = [-1e-7, -1e-6, -1e-3, -0.5, -math.log(2), -0.9, -5.0, -50.0]
    got = log1mexp(torch.tensor(xs, dtype=torch.float32)).tolist()
    assert got == pytest.approx([math.log(-math.expm1(x)) for x in xs], rel=2e-6)
    naive = torch.log1p(-torch.exp(torch.tensor(-1e-6))).item()
    assert abs(naive - math.log(-math.expm1(-1e-6))) > 0.01  # why the branch matters


def test_orpo_certain_answer_stays_finite():
    """A chosen answer whose every token log-prob rounds to 0 (infinite odds) gives a finite loss and gradient."""
    chosen = torch.tensor([0.0, -1e-9, -3.0], requires_grad=True)
    rejected = torch.tensor([-2.0, -2.0, -1e-9], requires_grad=True)
    lengths = torch.tensor([3, 3, 3])
    out = loss("orpo", SequenceLogps.pairs(chosen, rejected, lengths, lengths), orpo_lambda=0.5)
    out.losses.sum().backward()
    assert torch.isfinite(out.losses).all()
    assert torch.isfinite(chosen.grad).all() and torch.isfinite(rejected.grad).all()


@pytest.mark.parametrize(
    ("name", "hyperparams"),
    [
        ("simpo", {"beta": 2.0, "gamma": 0.5}),
        ("cpo", {"beta": 0.1, "cpo_alpha": 1.0}),
        ("cpo", {"beta": 0.1, "cpo_alpha": 0.0}),
        ("orpo", {"orpo_lambda": 0.1}),
    ],
)
def test_gradient_direction(name, hyperparams):
    """Raising the chosen log-prob lowers the loss; raising the rejected one raises it."""
    chosen, rejected, policy = _policy(requires_grad=True)
    loss(name, policy, **hyperparams).losses.sum().backward()
    assert (chosen.grad < 0).all(), chosen.grad
    assert (rejected.grad > 0).all(), rejected.grad


def test_simpo_gradient_value():
    chosen, _, policy = _policy(requires_grad=True)
    loss("simpo", policy, beta=2.0, gamma=0.5).losses.sum().backward()
    # d/dlogp_w of -log σ(β·logp_w/|y_w| - …) = -σ(-z)·β/|y_w|; pair 0: z = -0.9, |y_w| = 4
    assert chosen.grad[0].item() == pytest.approx(-(1 / (1 + math.exp(-0.9))) * 2.0 / 4, rel=1e-6)


def test_objective_reports_trl_metrics_without_a_reference():
    """Through the objective with ref=None, as a run with reference.mode none computes them."""
    _, _, policy = _policy()
    batch = Batch(*(torch.zeros(0),) * 6, num_examples=3, num_sequences=6)  # only its margin/labels are read
    objective = Objective(MethodConfig(loss="orpo", **{"lambda": 0.2}))
    assert not objective.needs_reference
    losses, metrics = objective(policy, None, batch)
    log_odds = [_log_odds(w) - _log_odds(r) for w, r in zip(CHOSEN_AVG, REJECTED_AVG, strict=True)]
    expected = [-w - 0.2 * _log_sigmoid(x) for w, x in zip(CHOSEN_AVG, log_odds, strict=True)]
    assert losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert metrics["rewards/chosen"].tolist() == pytest.approx([0.2 * a for a in CHOSEN_AVG], rel=1e-6)
    # λ·avg: -0.6 > -0.56? no; -0.61 > -1.16? yes; -1.45 > -0.36? no
    assert metrics["rewards/accuracies"].tolist() == [0.0, 1.0, 0.0]
    assert metrics["logps/chosen"].tolist() == POLICY_CHOSEN  # summed, whatever the loss compares
    assert {"nll_loss", "log_odds_ratio", "log_odds_chosen"} <= metrics.keys()

    _, metrics = Objective(MethodConfig(loss="simpo", beta=2.0))(policy, None, batch)
    assert metrics["rewards/margins"].tolist() == pytest.approx([-0.4, 5.5, -10.9], rel=1e-6)
