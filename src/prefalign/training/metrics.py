"""metrics.jsonl: one JSON object per logged step, with `step`, `epoch` and `split`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate import Accelerator

from prefalign.training.events import Listener

# Metrics that are the difference of two others' means, where no example has a value of its own: on unpaired
# data an example has a chosen or a rejected reward, never both (TRL's KTO logs rewards/margins this way).
DIFFERENCES = {"rewards/margins": ("rewards/chosen", "rewards/rejected")}

# Metrics reduced to their extreme over the examples rather than their mean (TRL's min_reward, max_reward).
_EXTREMES = {"min_": torch.amin, "max_": torch.amax}


def _extreme(name: str):
    return next((reduce for prefix, reduce in _EXTREMES.items() if name.startswith(prefix)), None)


def _per_process(values: torch.Tensor, reduce) -> torch.Tensor:
    """[processes, K]: every process's `values`, through `reduce` (a sum across processes), each in its own row."""
    world = dist.get_world_size() if reduce is not None and dist.is_available() and dist.is_initialized() else 1
    if world == 1:
        return values[None]
    rows = values.new_zeros(world, len(values))
    rows[dist.get_rank()] = values
    return reduce(rows).cpu()


class MetricSums:
    """Sums per-example metric values so that the mean over a step or an eval pass weighs every example once.

    NaN marks an example a metric does not apply to (KTO's rewards/chosen on an undesirable answer); it
    counts for neither the sum nor the count. A metric named min_* or max_* is the extreme over the
    examples instead of their mean (over a whole step: TRL takes it per micro-batch and averages those).
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}
        self.extremes: dict[str, torch.Tensor] = {}
        self.examples = 0

    def add(self, losses: torch.Tensor, metrics: dict[str, torch.Tensor]) -> None:
        for name, values in {"loss": losses.detach(), **metrics}.items():
            values = values.detach().float()
            if (extreme := _extreme(name)) is not None:
                empty = float("inf") if extreme is torch.amin else float("-inf")  # what no example gives
                value = extreme(torch.cat([values.nan_to_num(empty), values.new_tensor([empty])]))
                self.extremes[name] = extreme(torch.stack([self.extremes.get(name, value), value]))
                continue
            seen = ~values.isnan()
            total, count = values.nan_to_num(0.0).sum(), seen.sum().float()
            self.sums[name] = self.sums[name] + total if name in self.sums else total
            self.counts[name] = self.counts[name] + count if name in self.counts else count
        self.examples += int(losses.numel())

    def means(self, reduce=None) -> dict[str, float]:
        """Means over the examples each metric applies to; `reduce` sums a tensor across processes."""
        if not self.sums:
            return {}
        names = sorted(self.sums)
        stacked = torch.stack([self.sums[n].cpu() for n in names] + [self.counts[n].cpu() for n in names])
        if reduce is not None:
            stacked = reduce(stacked)
        k = len(names)
        means = {
            name: stacked[i].item() / stacked[k + i].item() for i, name in enumerate(names) if stacked[k + i].item() > 0
        }
        if self.extremes:
            extremes = sorted(self.extremes)
            rows = _per_process(torch.stack([self.extremes[n].cpu() for n in extremes]), reduce)
            for i, name in enumerate(extremes):
                value = _extreme(name)(rows[:, i]).item()
                if abs(value) != float("inf"):
                    means[name] = value
        for name, (first, second) in DIFFERENCES.items():
            if name not in means and first in means and second in means:
                means[name] = means[first] - means[second]
        return dict(sorted(means.items()))


class MetricsLog(Listener):
    """metrics.jsonl, a listener: every logged train step and every evaluation, one JSON object per line."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = path
        self.enabled = enabled

    def on_start(self, step: int, total_steps: int) -> None:
        if self.enabled:  # on resume, forget what a killed run logged after its last checkpoint
            truncate_jsonl_after(self.path, step)

    def on_log(self, record: dict) -> None:
        self.write(record)

    def on_eval(self, record: dict) -> None:
        self.write(record)

    def write(self, record: dict) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def truncate_jsonl_after(path: Path, step: int) -> None:
    """Drop the lines of a JSONL log whose `step` is past `step`."""
    if path.is_file():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


def reduce_sum(accelerator: Accelerator) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function that sums a tensor over the processes (moved to the device the process group reduces on)."""
    return lambda tensor: accelerator.reduce(tensor.to(accelerator.device), "sum")


def read_metrics(path: Path | str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
