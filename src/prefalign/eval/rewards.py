"""A reward model's reward for each held-out answer, for the report's histogram of chosen vs rejected."""

from __future__ import annotations

import torch

from prefalign.scoring.reward_model import sequence_rewards


@torch.no_grad()
def held_out_rewards(
    scorer: torch.nn.Module, objective, dataset, batch_size: int, pad_id: int, device, *, rank: int = 0, world: int = 1
) -> dict[str, list[float]]:
    """{"chosen": [...], "rejected": [...]}: the reward of every pair's answers in this process's share of
    `dataset` (gather across processes for all of them)."""
    was_training = scorer.training
    scorer.eval()
    chosen: list[float] = []
    rejected: list[float] = []
    indices = list(range(rank, len(dataset), world))
    for start in range(0, len(indices), batch_size):
        batch = objective.batch(dataset.select(indices[start : start + batch_size]), pad_id).to(device)
        rewards = sequence_rewards(scorer, batch)
        chosen += rewards.chosen_rewards.float().cpu().tolist()
        rejected += rewards.rejected_rewards.float().cpu().tolist()
    scorer.train(was_training)
    return {"chosen": chosen, "rejected": rejected}
