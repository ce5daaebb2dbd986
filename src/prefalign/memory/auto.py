"""`train.memory: auto`: the settings a run uses so that its planned peak fits the budget, and why.

A run that does not fit first splits each step's batch into smaller micro-batches (the loop scales every
micro-batch's loss by the whole step's size, so the gradient is the same; only losses that look across a
micro-batch — KTO's KL estimate, AOT's sorting — would change, and for them splitting is skipped), then turns
on gradient checkpointing (the same gradient, about a third more compute), then both. When nothing fits, the
run is refused with the fixes spelled out.

A run that fits runs as configured, with one exception on a CPU: when activations are the largest part of
its plan (beyond the runtime's fixed share), it is split into micro-batches of at least `CPU_LEAN_POSITIONS`
positions. A CPU's time per position does not improve with larger micro-batches past a few hundred
positions (`benchmarks/speed.py --memory` measures it: its memory-auto row against checkpointing off), so the
smaller peak costs nothing there. On a GPU larger micro-batches are faster, so a run that fits runs exactly
as configured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prefalign.config import ConfigError
from prefalign.memory.estimate import MemoryPlan
from prefalign.sizes import describe_bytes


@dataclass(frozen=True)
class MemoryChoice:
    batch_size: int  # examples per micro-batch
    grad_accum: int  # micro-batches per optimizer step
    gradient_checkpointing: bool
    plan: MemoryPlan  # the plan of these settings
    reason: str  # what was chosen and why, for the start-up line and the summary
    changed: bool  # whether the settings differ from the config's

    def as_dict(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "gradient_checkpointing": self.gradient_checkpointing,
            "reason": self.reason,
            "changed": self.changed,
        }


# The smallest micro-batch, in positions, that a lean split on a CPU keeps (see the module's docstring).
CPU_LEAN_POSITIONS = 1024

PlanFn = Callable[[int, bool], MemoryPlan]  # (micro-batch size, gradient checkpointing) -> the plan


def _splits(batch_size: int) -> list[int]:
    """Smaller micro-batch sizes that divide the batch exactly (so every step keeps its examples), largest first."""
    return [size for size in range(batch_size - 1, 0, -1) if batch_size % size == 0]


def fit_to_budget(
    plan: PlanFn,
    budget: int,
    *,
    batch_size: int,
    grad_accum: int,
    gradient_checkpointing: bool,
    can_split: bool = True,
    budget_source: str = "the budget",
    fixes: list[str] | None = None,
    lean_positions: int | None = None,
) -> MemoryChoice:
    """The first of: as configured; smaller micro-batches; checkpointing; both, whose plan fits `budget` bytes.

    `plan(micro_batch, checkpointing)` estimates one setting. `fixes` are the config changes to suggest when
    nothing fits (the caller knows which apply: LoRA, quantisation, a shorter max_length, an 8-bit optimizer).
    `lean_positions`: split a run that fits when activations dominate, down to micro-batches of at least this
    many positions (None: a run that fits runs as configured).
    """
    configured = plan(batch_size, gradient_checkpointing)
    if configured.peak <= budget:
        if lean_positions is not None and can_split:
            lean = _lean_split(plan, configured, batch_size, grad_accum, gradient_checkpointing, lean_positions)
            if lean is not None:
                return lean
        return MemoryChoice(batch_size, grad_accum, gradient_checkpointing, configured,
                            f"fits as configured: {describe_bytes(configured.peak)} of {describe_bytes(budget)} "
                            f"({budget_source})", changed=False)  # fmt: skip
    weights = configured.component("weights") + configured.component("reference")
    if weights > budget:
        raise ConfigError(
            f"train.memory_budget: {describe_bytes(budget)} ({budget_source}) is less than the model's weights "
            f"alone ({describe_bytes(weights)}); " + _fix_text(fixes)
        )
    candidates = [(size, gradient_checkpointing) for size in (_splits(batch_size) if can_split else [])]
    if not gradient_checkpointing:
        candidates += [(size, True) for size in [batch_size, *(_splits(batch_size) if can_split else [])]]
    smallest = (configured, batch_size, gradient_checkpointing)
    for size, checkpointing in candidates:
        candidate = plan(size, checkpointing)
        if candidate.peak < smallest[0].peak:
            smallest = (candidate, size, checkpointing)
        if candidate.peak <= budget:
            accum = grad_accum * (batch_size // size)
            what = []
            if size != batch_size:
                what.append(f"micro-batches of {size} × {accum} per step instead of {batch_size} × {grad_accum} "
                            "(the same gradient)")  # fmt: skip
            if checkpointing and not gradient_checkpointing:
                what.append("gradient checkpointing on")
            reason = (f"as configured the plan needs {describe_bytes(configured.peak)}, more than "
                      f"{describe_bytes(budget)} ({budget_source}); {' and '.join(what)}: "
                      f"{describe_bytes(candidate.peak)}")  # fmt: skip
            return MemoryChoice(size, accum, checkpointing, candidate, reason, changed=True)
    raise ConfigError(
        f"the run does not fit: the plan needs {describe_bytes(configured.peak)} as configured and "
        f"{describe_bytes(smallest[0].peak)} at least (micro-batch {smallest[1]}, gradient checkpointing "
        f"{'on' if smallest[2] else 'off'}), more than {describe_bytes(budget)} ({budget_source}); " + _fix_text(fixes)
    )


def _lean_split(
    plan: PlanFn, configured: MemoryPlan, batch_size: int, grad_accum: int, checkpointing: bool, positions: int
) -> MemoryChoice | None:
    """The smallest micro-batch whose heaviest workload keeps `positions`, when activations are the plan's
    largest part and the split lowers the peak; None otherwise (the run stays as configured)."""
    sized = [c for c in configured.components if c.name != "runtime"]  # the parts the run's settings size
    largest = max(sized, key=lambda component: component.bytes)
    if largest.name != "activations":
        return None
    best = None
    for size in _splits(batch_size):  # largest first: stop at the first that keeps too few positions
        candidate = plan(size, checkpointing)
        if candidate.workload.tokens < positions:
            break
        best = (size, candidate)
    if best is None or best[1].peak >= configured.peak:
        return None
    size, candidate = best
    accum = grad_accum * (batch_size // size)
    reason = (f"fits as configured ({describe_bytes(configured.peak)}), but activations are its largest part "
              f"({describe_bytes(largest.bytes)}) and on a CPU smaller micro-batches cost no speed: micro-batches "
              f"of {size} × {accum} per step instead of {batch_size} × {grad_accum} (the same gradient, at least "
              f"{positions} positions each): {describe_bytes(candidate.peak)}")  # fmt: skip
    return MemoryChoice(size, accum, checkpointing, candidate, reason, changed=True)


def _fix_text(fixes: list[str] | None) -> str:
    options = fixes or []
    options = [*options, "a larger train.memory_budget or a machine with more memory"]
    return "to fit, " + "; or ".join(options)
