"""Losses: hand-computed values on batch-shaped tensors, and the direction of their gradients."""

import math

import pytest
import torch

from prefalign.logps import SequenceLogps
from prefalign.losses import LOSSES, compute_loss
from prefalign.objective import Objective, paired_inputs


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
    batch = Batch(*(torch.zeros(0),) * 6, num_pairs=3, num_sequences=6)  # only its margin/labels are read
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
