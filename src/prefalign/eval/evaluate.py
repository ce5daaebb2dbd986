"""Held-out evaluation: loss, rewards and accuracies over pairs or unpaired rows; answers to prompts (greedy, or
seeded sampling)."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch

from prefalign.data.shards import shard_batches
from prefalign.eval.sampling import Sampling
from prefalign.model.reference import Reference
from prefalign.objective import Objective
from prefalign.training.metrics import MetricSums


@torch.no_grad()
def evaluate_held_out(
    scorer: torch.nn.Module,
    reference: Reference,
    dataset,
    objective: Objective,
    batch_size: int,
    pad_id: int,
    device: torch.device | str,
    *,
    rank: int = 0,
    world: int = 1,
    split: str = "eval",
) -> MetricSums:
    """Summed per-example metrics over this process's share of `dataset` (reduce across processes for means).

    `dataset` holds pairs or unpaired rows, whichever the objective trains on; a KL estimate (KTO) is taken
    per eval batch, from its own examples. `split` names the dataset for a precomputed reference's look-up.
    """
    was_training = scorer.training
    scorer.eval()
    sums = MetricSums()
    make_batch = functools.partial(objective.batch, pad_id=pad_id)
    shards = shard_batches(dataset, make_batch, batch_size, device, rank=rank, world=world, split=split)
    for rows, batch in shards:
        losses, metrics = objective(objective.model_outputs(scorer, batch), reference.logps(batch, rows), batch)
        sums.add(losses, metrics)
    scorer.train(was_training)
    return sums


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    tokenizer: Any,
    prompt_ids: list[list[int]],
    max_new_tokens: int,
    sampling: Sampling | None = None,
) -> list[str]:
    """Greedy answers (sampled ones with `sampling`), one prompt at a time (no padding to get wrong), decoded
    without special tokens."""
    options = sampling.generate_options() if sampling else {"do_sample": False}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    answers = []
    # A backbone compiled for training (train.compile) would recompile for each new length: decode eagerly.
    with torch.compiler.set_stance("force_eager"):
        for ids in prompt_ids:
            input_ids = torch.tensor([ids], device=device)
            with sampling.seeded(device) if sampling else contextlib.nullcontext():
                out = model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    **options,
                )
            answers.append(tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip())
    model.train(was_training)
    return answers
