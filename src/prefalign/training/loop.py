"""The training loop: one explicit loop on accelerate.

Each optimizer step takes the next `batch_size × grad_accum × processes` examples (preference pairs,
or unpaired rows) of a seeded per-epoch permutation, runs them as micro-batches, and scales each
micro-batch's summed loss by 1 / (examples in the whole step), so batch 8 × accum 1, batch 4 × accum 2
and 2 processes × batch 4 all give the same gradient (for every loss but the ones that look across a
micro-batch: KTO's KL estimate is taken per micro-step, the k-th micro-batches of all processes together, so
N processes match one but accumulation does not; AOT sorts each micro-batch). The data position is
the (epoch, step) pair, so a resumed run draws exactly the batches the uninterrupted run would have drawn.

The loop only runs steps; what is logged, shown, watched or reported listens to its events
(training.events): start, step, log, eval, checkpoint, end.
"""

from __future__ import annotations

import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, gather_object

from prefalign.config import TrainConfig
from prefalign.data.layout import Batch
from prefalign.eval.evaluate import evaluate_held_out
from prefalign.eval.probe import general_nll
from prefalign.model.reference import ModelReference, Reference, Rows
from prefalign.objective import Objective
from prefalign.training.checkpoint import (
    SHARDED,
    TrainState,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    temp_dir,
)
from prefalign.training.deepspeed_zero import reference_for_inference, set_micro_batch
from prefalign.training.distributed import fsdp_requested, gather_rows, unwrap_prepared
from prefalign.training.events import Events
from prefalign.training.fsdp import load_sharded, save_sharded, shard_per_layer, sharded_layers
from prefalign.training.metrics import MetricSums, reduce_sum
from prefalign.training.optim import build_optimizer


@dataclass
class Training:
    """What the loop trains and on what: the scorer (policy or reward model), its reference, objective and data."""

    scorer: torch.nn.Module
    reference: Reference
    objective: Objective
    train_data: Any
    eval_data: Any | None
    pad_id: int
    # The general-text probe (eval.probe), scored with the held-out metrics as general_nll; never trained on.
    probe: Batch | None = None


@dataclass
class LoopResult:
    state: TrainState
    last_train: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)
    last_eval_step: int = -1
    history: list[dict] = field(default_factory=list)
    skipped_steps: list[int] = field(default_factory=list)  # steps whose update was dropped (on_nonfinite: skip_step)


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


def kl_partners(indices: list[int], world: int, batch_size: int) -> dict[int, int]:
    """KTO's mismatched completions: for each example of a step, the example whose completion its KL term scores.

    It is the example before it in step order among the examples of its micro-step (the k-th micro-batch of
    every process together), cycled. On one process that is the previous example of the micro-batch, as TRL
    pairs them; on N processes the pairs, and so the KL estimate, are those of one process (issue 15).
    """
    positions = [micro_batches(list(range(len(indices))), rank, world, batch_size) for rank in range(world)]
    partners = {}
    for k in range(len(positions[0])):
        members = sorted(p for parts in positions if k < len(parts) for p in parts[k].tolist())
        for i, position in enumerate(members):
            partners[indices[position]] = indices[members[i - 1]]
    return partners


def with_kl_partners(examples, dataset, partners: list[int]) -> list[dict]:
    """`examples` as dicts, each with the completion of its KL partner (`kl_partners`) as kl_completion_ids."""
    others = dataset.select(partners)["completion_ids"]
    return [{**example, "kl_completion_ids": other} for example, other in zip(examples, others, strict=True)]


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
    """(the optimizer train.optimizer names, LR scheduler with warm-up)."""
    from transformers import get_scheduler

    optimizer = build_optimizer(params, cfg)
    schedule = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}[cfg.schedule]
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else math.ceil(cfg.warmup_ratio * total_steps)
    return optimizer, get_scheduler(schedule, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def accumulate(
    accelerator: Accelerator, scorer: torch.nn.Module, training: Training, parts, indices: list[int], batch_size: int
):
    """Forward and backward over this process's micro-batches of the step `indices`: (metric sums, tokens, scored
    tokens). Gradients are synchronised across processes on the last micro-batch only.
    """
    world, objective = accelerator.num_processes, training.objective
    partners = kl_partners(indices, world, batch_size) if objective.kl_completions else None
    gather_kl = gather_rows(accelerator) if world > 1 else None
    sums, tokens, scored = MetricSums(), 0, 0
    for i, part in enumerate(parts):
        rows = part.tolist()
        examples = training.train_data.select(rows)
        if partners is not None:
            examples = with_kl_partners(examples, training.train_data, [partners[row] for row in rows])
        batch = objective.batch(examples, training.pad_id).to(accelerator.device)
        ref_logps = training.reference.logps(batch, Rows("train", rows))
        with nullcontext() if i == len(parts) - 1 else accelerator.no_sync(scorer):
            policy_out = objective.model_outputs(scorer, batch)  # log-probs, or a reward model's rewards
            losses, metrics = objective(policy_out, ref_logps, batch, gather_kl)
            # Sum over examples / examples in the whole step (× processes: DDP averages gradients).
            accelerator.backward(losses.sum() * world / len(indices))
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
    metrics = sums.means(reduce_sum(accelerator))
    if training.probe is not None:  # the same small batch on every process: nothing to reduce
        metrics["general_nll"] = general_nll(scorer, training.probe)
    return metrics


def checkpoint(
    accelerator: Accelerator, root: Path, state: TrainState, trainable, optimizer, scheduler, keep: int, sharded=None
):
    """Write checkpoints/step-N (main process) with every process's RNG; returns its path. A `sharded` scorer's
    processes first write their shards of the trained weights and optimizer state into it, together."""
    rng_states = gather_object([rng_state()])  # every process's RNG, for dropout on resume
    if sharded is not None:
        tmp = temp_dir(root, state.step)
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        save_sharded(tmp / SHARDED, sharded, optimizer.optimizer, trainable)
        accelerator.wait_for_everyone()
        trainable, optimizer = None, None  # the main process writes the rest
    if accelerator.is_main_process:
        save_checkpoint(root, state, trainable, optimizer, scheduler, rng_states, keep)
    accelerator.wait_for_everyone()
    return root / f"step-{state.step}"


class NonFiniteError(FloatingPointError):
    """A step whose loss or gradient norm is NaN or infinite, under train.on_nonfinite: stop."""

    def __init__(self, step: int, metric: str, last_checkpoint: Path | None, updated: bool = False) -> None:
        kept = f"the last checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written"
        # DeepSpeed's backward makes the update itself, before the loop sees the step's loss and gradient norm
        when = "after DeepSpeed updated the weights with it" if updated else "before updating the weights"
        skip = "" if updated else ", or set train.on_nonfinite: skip_step to skip such steps"
        super().__init__(
            f"step {step}: {metric} is not finite; stopped {when} ({kept}). Lower train.lr "
            f"or set train.max_grad_norm{skip}"
        )
        self.step, self.metric = step, metric


def skip_or_stop(
    metric: str, cfg: TrainConfig, step: int, optimizer, last_checkpoint: Path | None, updated: bool = False
) -> None:
    """train.on_nonfinite: stop raises; skip_step drops the step's gradient, so it makes no update."""
    if cfg.on_nonfinite == "stop":
        raise NonFiniteError(step, metric, last_checkpoint, updated)
    optimizer.zero_grad(set_to_none=True)  # the data moves on; the schedule too


def nonfinite(accelerator: Accelerator, sums, grad_norm: float) -> str | None:
    """Which of the step's loss (on any process) and gradient norm is NaN or infinite, or None.

    MetricSums leaves NaN values out of its sums (they mark metrics that do not apply), so a NaN loss shows as
    a count short of the examples. Every process reaches the same answer: the flag is summed across them.
    """
    loss, count = sums.sums.get("loss"), sums.counts.get("loss")
    bad_loss = loss is not None and (not torch.isfinite(loss) or int(count) < sums.examples)
    flag = reduce_sum(accelerator)(torch.tensor([float(bad_loss)])).item()
    if flag > 0:
        return "loss"
    return None if math.isfinite(grad_norm) else "grad_norm"


def fit(training: Training, cfg: TrainConfig, accelerator: Accelerator, run_dir: Path, events: Events) -> LoopResult:
    world = accelerator.num_processes
    steps_per_epoch, total_steps = plan(len(training.train_data), cfg, world)
    # train.fsdp where accelerate shards nothing (CPU processes): FSDP2 per decoder layer, before the optimizer
    # sees the parameters (they become DTensors), and no DDP wrapper around the sharded model.
    apply_fsdp = fsdp_requested(cfg.fsdp) and world > 1 and accelerator.distributed_type != DistributedType.FSDP
    if apply_fsdp:
        shard_per_layer(training.scorer)
        if isinstance(training.reference, ModelReference):  # a frozen copy: sharded the same way, never trained
            shard_per_layer(training.reference.scorer)
    deepspeed = accelerator.distributed_type == DistributedType.DEEPSPEED
    if deepspeed:  # training.deepspeed_zero: the rest of DeepSpeed's settings were checked at set-up
        set_micro_batch(accelerator, cfg.batch_size)
    params = [p for p in training.scorer.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(params, cfg, total_steps)
    if apply_fsdp:
        scorer, optimizer = training.scorer, accelerator.prepare(optimizer)
    else:
        scorer, optimizer = accelerator.prepare(training.scorer, optimizer)
    if deepspeed and isinstance(training.reference, ModelReference):  # ZeRO-3: partitioned too, for inference
        training.reference.scorer = reference_for_inference(training.reference.scorer, accelerator)
    trainable = {n: p for n, p in unwrap_prepared(accelerator, scorer).named_parameters() if p.requires_grad}
    # sharded by prefalign or by accelerate's FSDP2: checkpoints hold each process's shards (training.fsdp)
    sharded = sharded_layers(scorer) > 0
    params = list(trainable.values())  # accelerate's own FSDP replaces the parameters: clip the ones it trains
    checkpoints = run_dir / "checkpoints"
    state = TrainState()
    if cfg.resume and (last := latest_checkpoint(checkpoints)) is not None:
        weights = (None, None) if sharded else (trainable, optimizer)  # a sharded run reads its shards below
        state = load_checkpoint(last, *weights, scheduler, accelerator.process_index)
        if sharded:
            load_sharded(last / SHARDED, scorer, optimizer.optimizer, trainable)
    # what the next checkpoint records (Run.resumable compares it with a resuming launch)
    state.examples_per_step, state.processes = cfg.batch_size * cfg.grad_accum * world, world
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
        sums, tokens, scored = accumulate(accelerator, scorer, training, parts, indices, cfg.batch_size)
        grad_norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm or float("inf"))
        lr = scheduler.get_last_lr()[0]
        if bad := nonfinite(accelerator, sums, float(grad_norm)):
            skip_or_stop(bad, cfg, state.step + 1, optimizer, latest_checkpoint(checkpoints), updated=deepspeed)
            result.skipped_steps.append(state.step + 1)
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
            written = checkpoint(
                accelerator, checkpoints, state, trainable, optimizer, scheduler, keep, scorer if sharded else None
            )
            events.checkpoint(written)

    if training.eval_data is not None and result.last_eval_step != state.step:
        evaluate()
    events.end(result)
    return result
