"""metrics.jsonl: one JSON object per logged step, with `step`, `epoch` and `split`."""

from __future__ import annotations

import json
from pathlib import Path

import torch


class MetricSums:
    """Sums per-pair metric values so that the mean over a step or an eval pass weighs every pair once."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.pairs = 0

    def add(self, losses: torch.Tensor, metrics: dict[str, torch.Tensor]) -> None:
        for name, values in {"loss": losses.detach(), **metrics}.items():
            total = values.float().sum()
            self.sums[name] = self.sums[name] + total if name in self.sums else total
        self.pairs += int(losses.numel())

    def means(self, reduce=None) -> dict[str, float]:
        """Means over all pairs; `reduce` sums a tensor across processes (accelerator.reduce)."""
        if not self.sums:
            return {}
        names = sorted(self.sums)
        stacked = torch.stack([self.sums[n] for n in names] + [torch.tensor(float(self.pairs))])
        if reduce is not None:
            stacked = reduce(stacked)
        count = stacked[-1].item()
        return {name: stacked[i].item() / count for i, name in enumerate(names)}


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
