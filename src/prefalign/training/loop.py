"""The training loop: one explicit loop on accelerate.

Each optimizer step takes the next `batch_size × grad_accum × processes` examples (preference pairs,
or unpaired rows) of a seeded per-epoch permutation, runs them as micro-batches, and scales each
micro-batch's summed loss by 1 / (examples in the whole step), so batch 8 × accum 1, batch 4 × accum 2
and 2 processes × batch 4 all give the same gradient (for every loss but the ones that look across a
micro-batch: KTO's KL estimate and AOT's sorting are taken per micro-batch). The data position is
the (epoch, step) pair, so a resumed run draws exactly the batches the uninterrupted run would have drawn.

The loop only runs steps; what is logged, shown, watched or reported listens to its events
(training.events): start, step, log, eval, checkpoint, end.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from prefalign.config import TrainConfig
from prefalign.eval.evaluate import evaluate_held_out
from prefalign.model.reference import Reference, Rows
from prefalign.objective import Objective
from prefalign.training.checkpoint import TrainState, latest_checkpoint, load_checkpoint, rng_state, save_checkpoint
from prefalign.training.events import Events
from prefalign.training.metrics import MetricSums, reduce_sum


@dataclass
class Training:
    """What the loop trains and on what: the scorer (policy or reward model), its reference, objective and data."""

    scorer: torch.nn.Module
    reference: Reference
    objective: Objective
    train_data: Any
    eval_data: Any | None
    pad_id: int


@dataclass
class LoopResult:
    state: TrainState
    last_train: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)
    last_eval_step: int = -1
    history: list[dict] = field(default_factory=list)


def plan(num_examples: int, cfg: TrainConfig, world: int) -> tuple[int, int]:
    """(steps per epoch, total optimizer steps)."""
    steps_per_epoch = math.ceil(num_examples / (cfg.batch_size * cfg.grad_accum * world))
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    return steps_per_epoch, total


def step_examples(num_examples: int, seed: int, epoch: int, step_in_epoch: int, global_batch: int) -> list[int]:
    """Indices of the examples that make up one optimizer step (all processes together), in batch order."""
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed + epoch))
    return order[step_in_epoch * global_batch : (step_in_epoch + 1) * global_batch].tolist()


def micro_batches(indices: list[int], rank: int, world: int, batch_size: int) -> list[np.ndarray]:
    """This process's share of a step, in the same number of micro-batches on every process."""
    own = np.asarray(indices[rank::world])
    count = max(1, math.ceil((len(indices) // world) / batch_size))
    return [part for part in np.array_split(own, count) if len(part)]


def next_step_examples(state: TrainState, num_examples: int, cfg: TrainConfig, world: int) -> list[int]:
    """The examples of the next optimizer step, moving `state` to the next epoch when this one is used up."""
    steps_per_epoch, _ = plan(num_examples, cfg, world)
    global_batch = cfg.batch_size * cfg.grad_accum * world
    while True:
        if state.step_in_epoch >= steps_per_epoch:
            state.epoch, state.step_in_epoch = state.epoch + 1, 0
        indices = step_examples(num_examples, cfg.seed, state.epoch, state.step_in_epoch, global_batch)
        if len(indices) >= world:
            return indices
        state.epoch, state.step_in_epoch = state.epoch + 1, 0  # too few examples left to give every process one


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig, total_steps: int):
    """(optimizer, LR scheduler with warm-up)."""
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}[cfg.schedule]
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else math.ceil(cfg.warmup_ratio * total_steps)
    return optimizer, get_scheduler(schedule, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def accumulate(accelerator: Accelerator, scorer: torch.nn.Module, training: Training, parts, step_size: int):
    """Forward and backward over this process's micro-batches of one step: (metric sums, tokens, scored tokens).

    Gradients are synchronised across processes on the last micro-batch only.
    """
    world = accelerator.num_processes
    sums, tokens, scored = MetricSums(), 0, 0
    for i, part in enumerate(parts):
        rows = part.tolist()
        batch = training.objective.batch(training.train_data.select(rows), training.pad_id).to(accelerator.device)
        ref_logps = training.reference.logps(batch, Rows("train", rows))
        with nullcontext() if i == len(parts) - 1 else accelerator.no_sync(scorer):
            policy_out = training.objective.model_outputs(scorer, batch)  # log-probs, or a reward model's rewards
            losses, metrics = training.objective(policy_out, ref_logps, batch)
            # Sum over examples / examples in the whole step (× processes: DDP averages gradients).
            accelerator.backward(losses.sum() * world / step_size)
        sums.add(losses, metrics)
        tokens += batch.num_tokens
        scored += batch.num_scored_tokens
    return sums, tokens, scored


def held_out_metrics(accelerator: Accelerator, scorer: torch.nn.Module, training: Training, batch_size: int):
    """Means over the held-out split, every process's share reduced together."""
    sums = evaluate_held_out(
        scorer, training.reference, training.eval_data, training.objective, batch_size, training.pad_id,
        accelerator.device, rank=accelerator.process_index, world=accelerator.num_processes,
    )  # fmt: skip
    return sums.means(reduce_sum(accelerator))


def checkpoint(accelerator: Accelerator, root: Path, state: TrainState, trainable, optimizer, scheduler, keep: int):
    """Write checkpoints/step-N (main process) with every process's RNG; returns its path."""
    rng_states = gather_object([rng_state()])  # every process's RNG, for dropout on resume
    if accelerator.is_main_process:
        save_checkpoint(root, state, trainable, optimizer, scheduler, rng_states, keep)
    accelerator.wait_for_everyone()
    return root / f"step-{state.step}"


def fit(training: Training, cfg: TrainConfig, accelerator: Accelerator, run_dir: Path, events: Events) -> LoopResult:
    world = accelerator.num_processes
    steps_per_epoch, total_steps = plan(len(training.train_data), cfg, world)
    params = [p for p in training.scorer.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(params, cfg, total_steps)
    scorer, optimizer = accelerator.prepare(training.scorer, optimizer)
    trainable = {n: p for n, p in accelerator.unwrap_model(scorer).named_parameters() if p.requires_grad}
    checkpoints = run_dir / "checkpoints"
    state = TrainState()
    if cfg.resume and (last := latest_checkpoint(checkpoints)) is not None:
        state = load_checkpoint(last, trainable, optimizer, scheduler, accelerator.process_index)
    result = LoopResult(state)

    def evaluate() -> None:
        metrics = held_out_metrics(accelerator, scorer, training, cfg.eval_batch_size or cfg.batch_size)
        record = {"step": state.step, "epoch": round(state.step / steps_per_epoch, 4), "split": "eval", **metrics}
        result.history.append(record)
        result.last_eval, result.last_eval_step = metrics, state.step
        events.eval(record)

    events.start(state.step, total_steps)
    scorer.train()
    while state.step < total_steps:
        indices = next_step_examples(state, len(training.train_data), cfg, world)
        started = time.perf_counter()
        parts = micro_batches(indices, accelerator.process_index, world, cfg.batch_size)
        sums, tokens, scored = accumulate(accelerator, scorer, training, parts, len(indices))
        grad_norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm or float("inf"))
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.step_in_epoch += 1
        elapsed = time.perf_counter() - started
        events.step(state.step)

        if state.step % cfg.log_every == 0 or state.step == total_steps:
            metrics = sums.means(reduce_sum(accelerator))
            counts = reduce_sum(accelerator)(torch.tensor([tokens, scored])).tolist()
            record = {
                "step": state.step, "epoch": round(state.step / steps_per_epoch, 4), "split": "train", **metrics,
                "grad_norm": float(grad_norm), "lr": lr, "tokens_per_s": counts[0] / elapsed,
                "scored_tokens_per_s": counts[1] / elapsed, "examples_per_s": len(indices) / elapsed,
            }  # fmt: skip
            result.history.append(record)
            result.last_train = metrics
            events.log(record)
        if training.eval_data is not None and cfg.eval_every and state.step % cfg.eval_every == 0:
            evaluate()
            scorer.train()
        if cfg.save_every and state.step % cfg.save_every == 0 and state.step < total_steps:
            keep = cfg.keep_checkpoints
            events.checkpoint(checkpoint(accelerator, checkpoints, state, trainable, optimizer, scheduler, keep))

    if training.eval_data is not None and result.last_eval_step != state.step:
        evaluate()
    events.end(result)
    return result
