"""A process's share of a dataset, in batches: what evaluation and the reference's one pass both walk."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from prefalign.data.layout import Batch


@dataclass(frozen=True)
class Rows:
    """The examples a batch holds: their split ("train", "eval") and their indices in its dataset, in batch order."""

    split: str
    indices: Sequence[int]


def shard_batches(
    dataset,
    make_batch: Callable[[Any], Batch],
    batch_size: int,
    device: torch.device | str,
    *,
    rank: int = 0,
    world: int = 1,
    split: str = "eval",
) -> Iterator[tuple[Rows, Batch]]:
    """Every `world`-th example from `rank` on, `batch_size` at a time: each batch on `device` with its Rows."""
    indices = list(range(rank, len(dataset), world))
    for start in range(0, len(indices), batch_size):
        rows = Rows(split, indices[start : start + batch_size])
        yield rows, make_batch(dataset.select(rows.indices)).to(device)
