"""The memory plan as the table `prefalign plan` and a run's start-up print."""

from __future__ import annotations

from rich.table import Table

from prefalign.memory.estimate import Settings
from prefalign.memory.plan import RunPlan
from prefalign.sizes import describe_bytes


def plan_table(run_plan: RunPlan) -> Table:
    plan = run_plan.plan
    title = f"Memory plan ({plan_scope(plan.settings)})"
    table = Table("component", "size", "what", title=title, title_justify="left", show_edge=False)
    for component in plan.components:
        if component.bytes or component.name in ("weights", "activations"):
            table.add_row(component.name, describe_bytes(component.bytes), component.note)
    table.add_row("[bold]peak[/bold]", f"[bold]{describe_bytes(plan.peak)}[/bold]",
                  f"at the {plan.moment}: not the sum (backward frees activations as gradients appear)")  # fmt: skip
    if run_plan.budget is not None:
        table.add_row("budget", describe_bytes(run_plan.budget), run_plan.budget_source)
    return table


SHARDING_NAMES = {
    "optimizer": "optimizer state sharded",
    "gradients": "gradients and optimizer state sharded",
    "parameters": "weights, gradients and optimizer state sharded",
}


def plan_scope(settings: Settings) -> str:
    """Whose memory the plan is: 'one process', or 'per process, 2 processes, weights, ... sharded'."""
    if settings.processes == 1:
        return "one process"
    sharding = SHARDING_NAMES.get(settings.sharding, "nothing sharded")
    return f"per process, {settings.processes} processes, {sharding}"
