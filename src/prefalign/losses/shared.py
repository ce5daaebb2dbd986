"""Pieces several losses are built from, written once so that a fix reaches every loss that uses them."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smoothed_logistic(logits: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """−(1 − ε)·log σ(z) − ε·log σ(−z): a Bradley–Terry loss whose labels are flipped with probability ε (cDPO)."""
    return -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)


def per_token(logps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Summed log-probs over scored tokens: the per-token average (an empty answer counts as one token)."""
    return logps / lengths.clamp(min=1)


def chosen_nll(policy_chosen_logps: torch.Tensor, chosen_lengths: torch.Tensor) -> torch.Tensor:
    """The per-token negative log-likelihood of each chosen answer: −log π(y_w|x) / |y_w|."""
    return -per_token(policy_chosen_logps, chosen_lengths)
