"""Log-probs -> per-example losses and the metrics users know from TRL, shared by training and evaluation.

The objective is everything between the log-probs and the loss functions: which sequences a batch
holds (KTO's mismatched completions), how the log-probs are reduced (LD-DPO, WPO), the log-ratios
and their f-divergence transform, the weighted sum of the loss terms, and the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from prefalign.config import MethodConfig
from prefalign.data.layout import Batch, make_batch
from prefalign.losses import LossSpec, compute_loss
from prefalign.losses.shared import per_token
from prefalign.scoring.logps import LogpsOptions, SequenceLogps, sequence_logps
from prefalign.scoring.reward_model import SequenceRewards, sequence_rewards


def f_divergence_scores(logratios: torch.Tensor, kind: str, alpha: float) -> torch.Tensor:
    """f'(t) at t = π/π_ref, from log t (f-DPO, Wang et al. 2023, arXiv:2309.16240, table 1).

    reverse_kl: log t; forward_kl: 1 − 1/t; js_divergence: log(2t / (1 + t)); alpha_divergence:
    (t^(α−1) − 1) / (α − 1), whose limit at α = 1 is log t. The exponent is clamped so exp() stays finite.
    """
    if kind == "reverse_kl" or (kind == "alpha_divergence" and abs(alpha - 1.0) < 1e-6):
        return logratios
    if kind == "forward_kl":
        return 1 - torch.exp(-logratios)
    if kind == "js_divergence":
        return math.log(2) + F.logsigmoid(logratios)
    if kind == "alpha_divergence":
        t = ((alpha - 1.0) * logratios).float().clamp(max=80.0)
        return ((torch.exp(t) - 1.0) / (alpha - 1.0)).to(logratios.dtype)
    raise ValueError(f"f_divergence_type: unknown {kind!r}")


def paired_inputs(
    policy: SequenceLogps,
    ref: SequenceLogps | None,
    margin: torch.Tensor | None = None,
    f_divergence: tuple[str, float] = ("reverse_kl", 0.5),
) -> dict[str, torch.Tensor]:
    """The tensors a paired loss may name (registry.LOSS_INPUTS), from policy and reference log-probs."""
    tensors = {
        "policy_chosen_logps": policy.chosen_logps,
        "policy_rejected_logps": policy.rejected_logps,
        "chosen_lengths": policy.chosen_lengths,
        "rejected_lengths": policy.rejected_lengths,
        "margin": margin if margin is not None else torch.zeros_like(policy.chosen_logps.detach()),
    }
    if ref is not None:
        chosen_logratios = policy.chosen_logps - ref.chosen_logps
        rejected_logratios = policy.rejected_logps - ref.rejected_logps
        tensors.update(
            ref_chosen_logps=ref.chosen_logps,
            ref_rejected_logps=ref.rejected_logps,
            chosen_logratios=chosen_logratios,
            rejected_logratios=rejected_logratios,
            chosen_scores=f_divergence_scores(chosen_logratios, *f_divergence),
            rejected_scores=f_divergence_scores(rejected_logratios, *f_divergence),
        )
    return tensors


def unpaired_inputs(
    policy: SequenceLogps, ref: SequenceLogps | None, labels: torch.Tensor, kl_completions: bool
) -> dict[str, torch.Tensor]:
    """The tensors an unpaired loss may name: sequences 0..B-1 are the completions, B..2B-1 the KL ones."""
    b = policy.num_examples
    tensors = {"policy_logps": policy.logps[:b], "lengths": policy.lengths[:b], "labels": labels}
    if kl_completions:
        tensors["policy_kl_logps"] = policy.logps[b:].detach()
    if ref is not None:
        tensors["ref_logps"] = ref.logps[:b]
        if kl_completions:
            tensors["ref_kl_logps"] = ref.logps[b:]
    return tensors


class Objective:
    """The method of a run: builds its batches, reduces log-probs, and sums its loss terms."""

    # The (accuracy, margin) metrics the progress line and the run summary show.
    headline = ("rewards/accuracies", "rewards/margins")

    def __init__(self, method: MethodConfig, layout: str = "padded", pack_length: int | None = None):
        # The batch layout (data.layout, resolved for the model by `model.attention.resolve_layout`) and its row
        # length: training, evaluation and the reference all score the batches built here.
        self.layout = layout
        self.pack_length = pack_length
        self.terms: list[tuple[LossSpec, float]] = method.terms()
        self.hyperparams = method.hyperparams()
        self.paired = method.paired
        self.needs_reference = method.needs_reference
        self.logps_options = LogpsOptions(ld_alpha=method.ld_alpha, wpo=method.use_weighting)
        self.kl_completions = any("policy_kl_logps" in spec.inputs for spec, _ in self.terms)
        self.f_divergence = (method.f_divergence_type, method.f_alpha_divergence_coef)
        self.use_weighting = method.use_weighting
        if not self.paired:  # no pair to be right about: whether each reward's sign agrees with its label
            self.headline = ("label_accuracy", "rewards/margins")

    def batch(self, examples, pad_id: int) -> Batch:
        return make_batch(
            examples, pad_id, self.layout, kl_completions=self.kl_completions, pack_length=self.pack_length
        )

    def model_outputs(self, scorer: torch.nn.Module, batch: Batch) -> SequenceLogps:
        """What the trained model gives for a batch, as `__call__` takes it: here, per-sequence log-probs."""
        return sequence_logps(scorer, batch, self.logps_options)

    def __call__(
        self,
        policy: SequenceLogps,
        ref: SequenceLogps | None,
        batch: Batch,
        gather_kl: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-example losses [B] (the weighted sum of the terms) and per-example metrics ([B] each).

        Averaging a metric over examples gives TRL's value; a metric that is NaN for an example (KTO's
        rewards/chosen on an undesirable one) is left out of that example's mean. `gather_kl` (training on
        several processes) concatenates a tensor of every process's micro-batch: the KL completions' log-probs
        go through it, so KTO's KL estimate is the mean over the whole micro-step, taken before the clamp, as
        TRL's KTOTrainer takes it (`gather_for_metrics(kl).mean().clamp(min=0)`).
        """
        tensors = self._tensors(policy, ref, batch)
        if gather_kl is not None and self.kl_completions:
            for name in ("policy_kl_logps", "ref_kl_logps"):
                if name in tensors:
                    tensors[name] = gather_kl(tensors[name])
        outputs = [(compute_loss(spec, tensors, self.hyperparams), weight) for spec, weight in self.terms]
        weight = None
        if self.use_weighting:  # WPO: every term of a pair is weighted by how likely the policy finds both answers
            weight = policy.wpo_weights[: policy.num_examples] * policy.wpo_weights[policy.num_examples :]
        losses = sum(w * (out.losses * weight if weight is not None else out.losses) for out, w in outputs)
        metrics = self._metrics(policy, outputs, batch)
        if weight is not None:
            metrics["wpo_weight"] = weight
        return losses, metrics

    def _tensors(self, policy: SequenceLogps, ref: SequenceLogps | None, batch: Batch) -> dict[str, torch.Tensor]:
        if self.paired:
            return paired_inputs(policy, ref, batch.margin, self.f_divergence)
        return unpaired_inputs(policy, ref, batch.labels, self.kl_completions)

    def _metrics(self, policy: SequenceLogps, outputs, batch: Batch) -> dict[str, torch.Tensor]:
        extra = {name: value.detach() for out, _ in outputs for name, value in out.metrics.items()}
        if len(outputs) > 1:
            extra.update(
                {
                    f"loss/{spec.name}": out.losses.detach()
                    for (spec, _), (out, _) in zip(self.terms, outputs, strict=True)
                }
            )
        rewarded = next((out for out, _ in outputs if out.chosen_rewards is not None), None)
        if not self.paired:
            return {**self._unpaired_metrics(policy, rewarded, batch), **extra}
        zeros = torch.zeros_like(policy.chosen_logps.detach())
        chosen_rewards = rewarded.chosen_rewards if rewarded else zeros
        rejected_rewards = rewarded.rejected_rewards if rewarded else zeros
        chosen_avg = per_token(policy.chosen_logps.detach(), policy.chosen_lengths)
        rejected_avg = per_token(policy.rejected_logps.detach(), policy.rejected_lengths)
        return {
            "rewards/chosen": chosen_rewards,
            "rewards/rejected": rejected_rewards,
            "rewards/accuracies": (chosen_rewards > rejected_rewards).float(),
            "rewards/margins": chosen_rewards - rejected_rewards,
            "logps/chosen": policy.chosen_logps.detach(),
            "logps/rejected": policy.rejected_logps.detach(),
            # Does the model itself prefer the chosen answer, per token (independent of the reference)?
            "preference_accuracy": (chosen_avg > rejected_avg).float(),
            **extra,
        }

    def _unpaired_metrics(self, policy: SequenceLogps, rewarded, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-example metrics of unpaired data: an example is either desirable (chosen) or not (rejected).

        No example has both a chosen and a rejected reward, so rewards/margins is the difference of the two
        means (`MetricSums.means`), as TRL's KTO logs it. `label_accuracy` (not TRL's) is the fraction of
        examples whose reward has its label's sign: > 0 for a desirable answer, < 0 for an undesirable one.
        """
        b = policy.num_examples
        labels = batch.labels
        nan = torch.full_like(policy.logps[:b].detach(), float("nan"))
        logps = policy.logps[:b].detach()
        metrics = {
            "logps/chosen": torch.where(labels, logps, nan),
            "logps/rejected": torch.where(labels, nan, logps),
        }
        if rewarded is not None:  # a loss on unpaired data reports one reward per example, as chosen_rewards
            rewards = rewarded.chosen_rewards
            metrics["rewards/chosen"] = torch.where(labels, rewards, nan)
            metrics["rewards/rejected"] = torch.where(labels, nan, rewards)
            metrics["label_accuracy"] = torch.where(labels, rewards > 0, rewards < 0).float()
        return metrics


class RewardObjective(Objective):
    """kind: reward — the Bradley–Terry loss on a reward model's rewards; no reference, no log-probs but lm_coef's.

    Metrics carry TRL RewardTrainer's names: `accuracy` (r_w > r_l), `margin` (r_w − r_l), `mean_reward`,
    `min_reward` and `max_reward` over both answers (min_/max_ metrics reduce to the extreme over a step,
    `training.metrics.MetricSums`), plus `rewards/chosen` and `rewards/rejected`.
    """

    headline = ("accuracy", "margin")

    def __init__(self, method: MethodConfig, layout: str = "padded", pack_length: int | None = None):
        super().__init__(method, layout, pack_length)
        self.with_chosen_logps = method.lm_coef > 0

    def model_outputs(self, scorer: torch.nn.Module, batch: Batch) -> SequenceRewards:
        return sequence_rewards(scorer, batch, self.with_chosen_logps)

    def __call__(
        self, rewards: SequenceRewards, ref: None, batch: Batch, gather_kl: Callable | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b = rewards.num_examples
        tensors = {
            "reward_chosen": rewards.chosen_rewards,
            "reward_rejected": rewards.rejected_rewards,
            "margin": batch.margin if batch.margin is not None else rewards.rewards.new_zeros(b),
        }
        if rewards.chosen_logps is not None:
            tensors.update(policy_chosen_logps=rewards.chosen_logps, chosen_lengths=rewards.chosen_lengths)
        outputs = [(compute_loss(spec, tensors, self.hyperparams), weight) for spec, weight in self.terms]
        losses = sum(weight * out.losses for out, weight in outputs)
        chosen = rewards.chosen_rewards.detach()
        rejected = rewards.rejected_rewards.detach()
        metrics = {
            "accuracy": (chosen > rejected).float(),
            "margin": chosen - rejected,
            "mean_reward": (chosen + rejected) / 2,
            "min_reward": torch.minimum(chosen, rejected),
            "max_reward": torch.maximum(chosen, rejected),
            "rewards/chosen": chosen,
            "rewards/rejected": rejected,
        }
        metrics.update({name: value.detach() for out, _ in outputs for name, value in out.metrics.items()})
        return losses, metrics


def make_objective(method: MethodConfig, layout: str = "padded", pack_length: int | None = None) -> Objective:
    """The objective of `method.kind`: a policy's preference losses, or a reward model's, building batches in
    `layout` (resolved for the model) with rows of `pack_length` tokens."""
    kind = RewardObjective if method.kind == "reward" else Objective
    return kind(method, layout, pack_length)
