"""The training loop: one explicit loop on accelerate.

Each optimizer step takes the next `batch_size × grad_accum × processes` examples (preference pairs,
or unpaired rows) of a seeded per-epoch permutation, runs them as micro-batches, and scales each
micro-batch's summed loss by 1 / (examples in the whole step), so batch 8 × accum 1, batch 4 × accum 2
and 2 processes × batch 4 all give the same gradient (for every loss but the ones that look across a
micro-batch: KTO's KL estimate and AOT's sorting are taken per micro-batch). The data position is
the (epoch, step) pair, so a resumed run draws exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from prefalign.config import TrainConfig
from prefalign.eval.evaluate import evaluate_held_out
from prefalign.model.reference import Reference, Rows
from prefalign.objective import Objective
from prefalign.training.checkpoint import (
    TrainState,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
)
from prefalign.training.metrics import MetricsLog, MetricSums
from prefalign.training.watch import Finding, LikelihoodWatch


@dataclass
class LoopResult:
    state: TrainState
    last_train: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)
    last_eval_step: int = -1
    history: list[dict] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)


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


def fit(
    *,
    accelerator: Accelerator,
    scorer: torch.nn.Module,
    reference: Reference,
    objective: Objective,
    train_data,
    eval_data,
    pad_id: int,
    cfg: TrainConfig,
    run_dir: Path,
    console: Console | None = None,
) -> LoopResult:
    console = console or Console()
    world, rank = accelerator.num_processes, accelerator.process_index
    is_main = accelerator.is_main_process
    steps_per_epoch, total_steps = plan(len(train_data), cfg, world)
    global_batch = cfg.batch_size * cfg.grad_accum * world
    params = [p for p in scorer.parameters() if p.requires_grad]

    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}[cfg.schedule]
    scheduler = get_scheduler(
        schedule,
        optimizer,
        num_warmup_steps=math.ceil(cfg.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    scorer, optimizer = accelerator.prepare(scorer, optimizer)
    trainable = {n: p for n, p in accelerator.unwrap_model(scorer).named_parameters() if p.requires_grad}

    log = MetricsLog(run_dir / "metrics.jsonl", enabled=is_main)
    checkpoint_root = run_dir / "checkpoints"
    state = TrainState()
    if cfg.resume and (last := latest_checkpoint(checkpoint_root)) is not None:
        state = load_checkpoint(last, trainable, optimizer, scheduler, rank)
        log.truncate_after(state.step)
        if is_main:
            console.print(f"Resuming from {last} (step {state.step} of {total_steps})")

    result = LoopResult(state)
    device = accelerator.device
    eval_batch_size = cfg.eval_batch_size or cfg.batch_size

    def run_eval() -> None:
        sums = evaluate_held_out(
            scorer,
            reference,
            eval_data,
            objective,
            eval_batch_size,
            pad_id,
            device,
            rank=rank,
            world=world,
        )
        metrics = sums.means(reduce=lambda t: accelerator.reduce(t.to(device), "sum"))
        record = {
            "step": state.step,
            "epoch": round(state.step / steps_per_epoch, 4),
            "split": "eval",
            **metrics,
        }
        log.write(record)
        result.history.append(record)
        result.last_eval = metrics
        result.last_eval_step = state.step

    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not is_main,
    )
    task = progress.add_task("train", total=total_steps, completed=state.step, info="")
    accuracy, margin = objective.headline
    # Rewards relative to a reference show whether the chosen answers gain or only the rejected ones lose.
    watch = LikelihoodWatch(accuracy) if objective.needs_reference and margin == "rewards/margins" else None
    scorer.train()
    with progress:
        while state.step < total_steps:
            if state.step_in_epoch >= steps_per_epoch:
                state.epoch, state.step_in_epoch = state.epoch + 1, 0
            indices = step_examples(len(train_data), cfg.seed, state.epoch, state.step_in_epoch, global_batch)
            if len(indices) < world:  # too few examples left to give every process one
                state.epoch, state.step_in_epoch = state.epoch + 1, 0
                continue
            started = time.perf_counter()
            sums, tokens, scored = MetricSums(), 0, 0
            parts = micro_batches(indices, rank, world, cfg.batch_size)
            for i, part in enumerate(parts):
                batch = objective.batch(train_data.select(part.tolist()), pad_id).to(device)
                ref_logps = reference.logps(batch, Rows("train", part.tolist()))
                sync = i == len(parts) - 1
                with nullcontext() if sync else accelerator.no_sync(scorer):
                    policy_out = objective.model_outputs(scorer, batch)  # log-probs, or a reward model's rewards
                    losses, metrics = objective(policy_out, ref_logps, batch)
                    # Sum over examples / examples in the whole step (× processes: DDP averages gradients).
                    accelerator.backward(losses.sum() * world / len(indices))
                sums.add(losses, metrics)
                tokens += batch.num_tokens
                scored += batch.num_scored_tokens
            grad_norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm or float("inf"))
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.step_in_epoch += 1
            elapsed = time.perf_counter() - started

            if state.step % cfg.log_every == 0 or state.step == total_steps:
                metrics = sums.means(reduce=lambda t: accelerator.reduce(t.to(device), "sum"))
                counts = accelerator.reduce(torch.tensor([tokens, scored], device=device), "sum").tolist()
                record = {
                    "step": state.step,
                    "epoch": round(state.step / steps_per_epoch, 4),
                    "split": "train",
                    **metrics,
                    "grad_norm": float(grad_norm),
                    "lr": lr,
                    "tokens_per_s": counts[0] / elapsed,
                    "scored_tokens_per_s": counts[1] / elapsed,
                    "examples_per_s": len(indices) / elapsed,
                }
                log.write(record)
                result.history.append(record)
                result.last_train = metrics
                # A step of unpaired rows with only one label has no margin: show what there is.
                shown = (("loss", "loss", ".4f"), (accuracy, "acc", ".2f"), (margin, "margin", ".3f"))
                info = "  ".join(f"{label} {metrics[name]:{fmt}}" for name, label, fmt in shown if name in metrics)
                progress.update(task, info=info)
                if is_main and not console.is_terminal:
                    console.print(f"step {state.step}/{total_steps}  {info}  {len(indices) / elapsed:.2f} examples/s")
                for finding in watch.update(record) if watch else []:
                    result.warnings.append(finding)
                    if is_main:
                        progress.console.print(f"[yellow]warning:[/yellow] {finding}")
            progress.update(task, completed=state.step)

            if eval_data is not None and cfg.eval_every and state.step % cfg.eval_every == 0:
                run_eval()
                scorer.train()
            if cfg.save_every and state.step % cfg.save_every == 0 and state.step < total_steps:
                rng_states = gather_object([rng_state()])  # every process's RNG, for dropout on resume
                if is_main:
                    save_checkpoint(
                        checkpoint_root,
                        state,
                        trainable,
                        optimizer,
                        scheduler,
                        rng_states,
                        cfg.keep_checkpoints,
                    )
                accelerator.wait_for_everyone()

    if eval_data is not None and result.last_eval_step != state.step:
        run_eval()
    result.state = state
    return result
