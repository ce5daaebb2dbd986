"""Data: sources -> canonical rows (formats, load) -> token ids (render) -> batches (layout)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import datasets

from prefalign.config import DataConfig
from prefalign.data.load import DataError, DataReport, canonical_rows
from prefalign.data.render import RenderSettings, tokenize_rows

__all__ = ["DataError", "DataReport", "PreparedData", "prepare_data"]


@dataclass
class PreparedData:
    train: datasets.Dataset  # columns prompt_ids, chosen_ids, rejected_ids, truncated
    eval: datasets.Dataset | None
    eval_prompts: datasets.Dataset | None  # canonical rows of the eval split (for generations)
    report: DataReport


def prepare_data(config: DataConfig, tokenizer: Any, seed: int) -> PreparedData:
    """Read, convert, split and tokenise the training and held-out data."""
    read = dict(skip_bad_rows=config.skip_bad_rows, num_proc=config.num_proc)
    train_rows, report = canonical_rows(config.train, config.format, **read)
    eval_rows = None
    if config.eval:
        eval_rows, eval_report = canonical_rows(config.eval, config.format, **read)
        report.merge(eval_report)
    elif config.eval_fraction > 0:
        split = train_rows.train_test_split(test_size=config.eval_fraction, seed=seed)
        train_rows, eval_rows = split["train"], split["test"]
    settings = RenderSettings(
        config.template, config.max_length, config.max_prompt_length, config.max_completion_length
    )
    train, train_report = tokenize_rows(train_rows, tokenizer, settings, num_proc=config.num_proc)
    report.merge(train_report)
    if len(train) == 0:
        raise DataError("data.train: no usable rows after tokenisation")
    evaluation = None
    if eval_rows is not None:
        evaluation, eval_report = tokenize_rows(eval_rows, tokenizer, settings, num_proc=config.num_proc)
        report.merge(eval_report)
    return PreparedData(train, evaluation, eval_rows, report)
