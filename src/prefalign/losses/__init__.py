"""Preference losses: pure functions of per-sequence log-probs, one registry for all of them."""

from prefalign.losses import dpo as _dpo  # noqa: F401  (registers the DPO family)
from prefalign.losses.registry import LOSS_INPUTS, LOSSES, LossOutput, LossSpec, compute_loss, register

__all__ = ["LOSSES", "LOSS_INPUTS", "LossOutput", "LossSpec", "compute_loss", "register"]
