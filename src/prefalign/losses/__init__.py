"""Preference losses: pure functions of per-sequence log-probs, one registry for all of them."""

from prefalign.losses import bradley_terry as _bradley_terry  # noqa: F401  (registers bradley_terry)
from prefalign.losses import dpo as _dpo  # noqa: F401  (registers the DPO family)
from prefalign.losses import kto as _kto  # noqa: F401  (registers kto, apo_zero_unpaired)
from prefalign.losses import reference_free as _reference_free  # noqa: F401  (registers simpo, cpo, orpo)
from prefalign.losses.registry import (
    LOSS_HYPERPARAMS,
    LOSS_INPUTS,
    LOSSES,
    LossOutput,
    LossSpec,
    compute_loss,
    register,
)

__all__ = ["LOSSES", "LOSS_HYPERPARAMS", "LOSS_INPUTS", "LossOutput", "LossSpec", "compute_loss", "register"]
