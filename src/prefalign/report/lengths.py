"""Length percentiles of the tokenised data, for data.json and the report's data summary."""

from __future__ import annotations

from typing import Any

import numpy as np

from prefalign.data.check import PERCENTILES

COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids", "completion_ids")


def length_percentiles(splits: dict[str, Any]) -> dict[str, dict[str, dict[str, int]]]:
    """{split: {column: {"p50": …, "max": …}}} in tokens, after truncation (what training sees), for each
    datasets.Dataset in `splits` (None is skipped) and each of its prompt_ids / chosen_ids / rejected_ids /
    completion_ids columns. Nearest-rank percentiles, as `prefalign data validate` gives before truncation."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for split, dataset in splits.items():
        if dataset is None or len(dataset) == 0:
            continue
        columns = {}
        for column in COLUMNS:
            if column not in dataset.column_names:
                continue
            lengths = np.fromiter((len(ids) for ids in dataset[column]), dtype=np.int64, count=len(dataset))
            picked = np.percentile(lengths, PERCENTILES, method="inverted_cdf")
            values = {f"p{q}": int(v) for q, v in zip(PERCENTILES, picked, strict=True)}
            columns[column.removesuffix("_ids")] = {**values, "max": int(lengths.max())}
        out[split] = columns
    return out
