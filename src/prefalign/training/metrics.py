"""metrics.jsonl: one JSON object per logged step, with `step`, `epoch` and `split`."""

from __future__ import annotations

import json
from pathlib import Path

import torch


class MetricSums:
    """Sums per-example metric values so that the mean over a step or an eval pass weighs every example once.

    NaN marks an example a metric does not apply to (KTO's rewards/chosen on an undesirable answer); it
    counts for neither the sum nor the count.
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}
        self.examples = 0

    def add(self, losses: torch.Tensor, metrics: dict[str, torch.Tensor]) -> None:
        for name, values in {"loss": losses.detach(), **metrics}.items():
            values = values.detach().float()
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
        return {
            name: stacked[i].item() / stacked[k + i].item() for i, name in enumerate(names) if stacked[k + i].item() > 0
        }


class MetricsLog:
    def __init__(self, path: Path, enabled: bool = True):
        self.path = path
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        """On resume, forget what a killed run logged after its last checkpoint."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def read_metrics(path: Path | str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
