"""`prefalign eval` on preference pairs: the policy's preference accuracy and, against a reference, the implicit
reward's accuracy and margin, computed by the held-out evaluation training uses."""

from __future__ import annotations

from typing import Any

import torch

from prefalign.config import ConfigError, RunConfig

PAIR_METRICS = ("preference_accuracy", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")


def pair_metrics(
    config: RunConfig, policy: torch.nn.Module, reference_model: torch.nn.Module | None, pairs: Any, pad_id: int, device
) -> dict[str, float]:
    """Preference accuracy of the policy over `pairs`; with a reference, implicit-reward accuracy and margin."""
    from prefalign.eval.evaluate import evaluate_held_out
    from prefalign.model.attention import resolve_layout, resolve_pack_length
    from prefalign.model.reference import build_reference
    from prefalign.objective import make_objective
    from prefalign.scoring.logps import SequenceScorer

    method = config.method
    if not method.paired:
        raise ConfigError("prefalign eval: --data must hold preference pairs (prompt, chosen, rejected)")
    mode = "model" if reference_model is not None and method.needs_reference else "none"
    if method.needs_reference and reference_model is None:
        method = method.model_copy(update={"loss": "simpo"})  # preference accuracy needs no reference
    layout = resolve_layout(config.data.layout, policy)
    pack_length = resolve_pack_length(config.data.pack_length, policy)
    objective = make_objective(method, layout=layout, pack_length=pack_length)
    scorer = SequenceScorer(policy)
    reference = build_reference(mode, scorer, reference_model, objective.logps_options)
    sums = evaluate_held_out(scorer, reference, pairs, objective, 8, pad_id, device)
    means = sums.means()
    keep = PAIR_METRICS if mode == "model" else ("preference_accuracy",)
    return {name: means[name] for name in keep if name in means}
